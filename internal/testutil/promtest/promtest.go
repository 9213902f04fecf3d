// Package promtest starts a real Prometheus server for the I/O tests (build tag e2e) of any
// package: one started per test, on a free loopback port, with its own data directory,
// optionally backfilled from OpenMetrics text, behind TLS or basic auth when given a web
// configuration, and stopped when the test ends. The binaries (prometheus, and promtool to
// backfill) are the pinned tools in the directory PRESCALE_TOOLS_BIN names (make tools).
// A test that cannot start Prometheus fails; it never skips.
//
// Frozen is a collector for such a test's exporter: a sample that only ages. The sandbox's
// own Prometheus (sandbox.Up) is the one scraping the simulated servers; this one is for
// tests that bring their own targets.
package promtest

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil"
)

// BinEnv is the environment variable naming the directory that holds the prometheus and
// promtool binaries.
const BinEnv = "PRESCALE_TOOLS_BIN"

const (
	// readyTimeout bounds a start, to /-/ready answering 200: a minute, for a machine busy
	// with a sandbox.
	readyTimeout = 60 * time.Second
	// stopTimeout bounds the exit after SIGTERM, before SIGKILL.
	stopTimeout = 10 * time.Second
	// logTail is how much of Prometheus' log a failure shows.
	logTail = 4000
)

// Bin returns the directory that PRESCALE_TOOLS_BIN names, failing the test when it is not
// set.
func Bin(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv(BinEnv)
	if dir == "" {
		tb.Fatalf("%s is not set: it must name a directory holding the prometheus and promtool binaries (make tools)", BinEnv)
	}
	return dir
}

// Options say how to start a Prometheus. The zero value is a server with no scrape targets.
type Options struct {
	// Bin is the directory holding prometheus (and promtool); "" is Bin(tb).
	Bin string
	// Config is prometheus.yml; "" is a configuration with no scrape targets.
	Config string
	// WebConfig, when not empty, is the --web.config.file (TLS, basic auth).
	WebConfig string
	// Backfill, when not empty, is OpenMetrics text (ending "# EOF") that promtool writes
	// into the data directory before the start; the retention is then 30 days, so that
	// history days old is served.
	Backfill string
	// Args are more flags for prometheus.
	Args []string
	// HTTPS says that the server speaks TLS (WebConfig has a tls_server_config).
	HTTPS bool
	// Client checks the readiness; nil is http.DefaultClient. A server behind TLS or auth
	// needs one that trusts and passes them.
	Client *http.Client
}

// ScrapeConfig is a Prometheus configuration that scrapes targets (host:port) as job every
// interval, with a scrape timeout of at most interval.
func ScrapeConfig(job string, interval time.Duration, targets ...string) string {
	cfg := fmt.Sprintf("global:\n  scrape_interval: %[1]s\n  scrape_timeout: %[1]s\n  evaluation_interval: %[1]s\n", duration(interval))
	if len(targets) == 0 {
		return cfg
	}
	cfg += "scrape_configs:\n  - job_name: " + strconv.Quote(job) + "\n    static_configs:\n      - targets:\n"
	for _, t := range targets {
		cfg += "          - " + strconv.Quote(t) + "\n"
	}
	return cfg
}

// duration writes d as Prometheus reads it: whole milliseconds with a unit ("1s", "500ms").
func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Server is one Prometheus started by a test.
type Server struct {
	addr    string // host:port
	scheme  string
	client  *http.Client
	bin     string
	args    []string
	logPath string

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the process' exit, once exited is closed
	stopped bool          // Stop has run since the last start
}

// Start starts Prometheus as o says and returns once /-/ready answers 200. It is stopped,
// and the test fails if it exited on its own, when the test ends.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	bin := o.Bin
	if bin == "" {
		bin = Bin(tb)
	}
	dir := tb.TempDir()
	data := filepath.Join(dir, "data")
	config := o.Config
	if config == "" {
		config = "global: {}\n"
	}
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		tb.Fatalf("write prometheus config: %v", err)
	}
	s := &Server{addr: testutil.FreeAddr(tb), scheme: "http", client: o.Client, bin: bin, logPath: filepath.Join(dir, "prometheus.log")}
	if o.HTTPS {
		s.scheme = "https"
	}
	if s.client == nil {
		s.client = http.DefaultClient
	}
	s.args = []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + data,
		"--web.listen-address=" + s.addr,
		"--log.level=warn",
	}
	if o.WebConfig != "" {
		webPath := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(webPath, []byte(o.WebConfig), 0o600); err != nil {
			tb.Fatalf("write prometheus web config: %v", err)
		}
		s.args = append(s.args, "--web.config.file="+webPath)
	}
	if o.Backfill != "" {
		om := filepath.Join(dir, "backfill.om")
		if err := os.WriteFile(om, []byte(o.Backfill), 0o600); err != nil {
			tb.Fatalf("write backfill: %v", err)
		}
		out, err := exec.Command(filepath.Join(bin, "promtool"), "tsdb", "create-blocks-from", "openmetrics", om, data).CombinedOutput()
		if err != nil {
			tb.Fatalf("backfill prometheus with promtool: %v\n%s", err, out)
		}
		s.args = append(s.args, "--storage.tsdb.retention.time=30d")
	}
	s.args = append(s.args, o.Args...)
	tb.Cleanup(func() {
		if !s.stopped {
			s.Stop(tb)
		}
	})
	s.Restart(tb)
	return s
}

// Restart starts a stopped server again, on the same address, configuration and data, and
// returns once it is ready. Start calls it the first time.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if s.cmd != nil && !s.stopped {
		tb.Fatalf("restart prometheus on %s: it was not stopped", s.addr)
	}
	logFile, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		tb.Fatalf("open prometheus log: %v", err)
	}
	cmd := exec.Command(filepath.Join(s.bin, "prometheus"), s.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		tb.Fatalf("start prometheus: %v", err)
	}
	s.cmd, s.exited, s.waitErr, s.stopped = cmd, make(chan struct{}), nil, false
	exited := s.exited
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	s.waitReady(tb)
}

// Stop sends SIGTERM and waits for the exit, sending SIGKILL after 10 s. The test fails if
// the process had exited before, or outlives the SIGTERM.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if s.stopped || s.cmd == nil {
		return
	}
	s.stopped = true
	select {
	case <-s.exited:
		tb.Errorf("prometheus exited before the test stopped it: %v\n%s", s.waitErr, s.Log())
		return
	default:
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Errorf("stop prometheus: %v", err)
	}
	select {
	case <-s.exited:
		return
	case <-time.After(stopTimeout):
	}
	tb.Errorf("prometheus pid %d still running %s after SIGTERM: killing it", s.cmd.Process.Pid, stopTimeout)
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func (s *Server) waitReady(tb testing.TB) {
	tb.Helper()
	url := s.URL() + "/-/ready"
	deadline := time.Now().Add(readyTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			tb.Fatalf("prometheus exited during start: %v\n%s", s.waitErr, s.Log())
		default:
		}
		resp, err := s.client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("prometheus not ready at %s after %s (last: %s)\n%s", url, readyTimeout, last, s.Log())
}

// URL is the server's base URL: http://host:port, or https:// with Options.HTTPS.
func (s *Server) URL() string { return s.scheme + "://" + s.addr }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Log returns the last 4000 bytes of the server's log.
func (s *Server) Log() string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return testutil.Tail(string(bytes.TrimSpace(b)), logTail)
}
