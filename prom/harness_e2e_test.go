//go:build e2e

package prom

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The environment variable naming the directory that holds the prometheus binary.
const toolsBinEnv = "PRESCALE_TOOLS_BIN"

const (
	// startTimeout bounds Prometheus' start, to /-/ready.
	startTimeout = 30 * time.Second
	// stopTimeout bounds its exit after SIGTERM, before SIGKILL.
	stopTimeout = 10 * time.Second
	// pollInterval is how often a wait checks its condition.
	pollInterval = 100 * time.Millisecond
	// logTail is how much of Prometheus' log a failure shows.
	logTail = 4000
)

// prometheusBin returns the prometheus binary of $PRESCALE_TOOLS_BIN, failing the test when
// there is none: these tests never skip.
func prometheusBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(toolsBinEnv)
	if dir == "" {
		t.Fatalf("%s is not set: it must name a directory holding the prometheus binary", toolsBinEnv)
	}
	bin := filepath.Join(dir, "prometheus")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("prometheus binary: %v", err)
	}
	return bin
}

// freeAddr returns a loopback address with a port that was free a moment ago. Prometheus
// cannot listen on port 0 and report the port, so the test picks one.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// promProcess is one Prometheus server started by a test.
type promProcess struct {
	addr    string // host:port
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the process' exit, once exited is closed
	stop    sync.Once
}

// promConfig is a Prometheus configuration with a 1 s scrape of each of targets.
func promConfig(targets ...string) string {
	cfg := "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
	if len(targets) == 0 {
		return cfg
	}
	cfg += "scrape_configs:\n  - job_name: exporter\n    static_configs:\n      - targets:\n"
	for _, t := range targets {
		cfg += "          - " + strconv.Quote(t) + "\n"
	}
	return cfg
}

// startPrometheus starts Prometheus with config (prometheus.yml) and, when webConfig is not
// empty, --web.config.file, and extraArgs; it returns once /-/ready answers 200 to client, over scheme. The
// process is stopped, and its exit checked, in t.Cleanup.
func startPrometheus(t *testing.T, config, webConfig string, scheme string, client *http.Client, extraArgs ...string) *promProcess {
	t.Helper()
	bin := prometheusBin(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatalf("write prometheus config: %v", err)
	}
	p := &promProcess{addr: freeAddr(t), logPath: filepath.Join(dir, "prometheus.log"), exited: make(chan struct{})}
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + p.addr,
		"--log.level=warn",
	}
	if webConfig != "" {
		webPath := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(webPath, []byte(webConfig), 0o600); err != nil {
			t.Fatalf("write prometheus web config: %v", err)
		}
		args = append(args, "--web.config.file="+webPath)
	}
	args = append(args, extraArgs...)
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatalf("create prometheus log: %v", err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start prometheus: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	t.Cleanup(func() { p.Stop(t) })
	p.waitReady(t, scheme, client)
	return p
}

// Stop sends SIGTERM, waits for the exit, and SIGKILL after stopTimeout. The test fails if
// the process outlives that.
func (p *promProcess) Stop(t *testing.T) {
	t.Helper()
	p.stop.Do(func() {
		select {
		case <-p.exited:
			t.Errorf("prometheus exited before the test stopped it: %v\n%s", p.waitErr, p.log())
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
		select {
		case <-p.exited:
			return
		case <-time.After(stopTimeout):
		}
		t.Errorf("prometheus pid %d still running %s after SIGTERM: killing it", p.cmd.Process.Pid, stopTimeout)
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
}

func (p *promProcess) waitReady(t *testing.T, scheme string, client *http.Client) {
	t.Helper()
	url := scheme + "://" + p.addr + "/-/ready"
	deadline := time.Now().Add(startTimeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			t.Fatalf("prometheus exited during start: %v\n%s", p.waitErr, p.log())
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(pollInterval)
	}
	t.Fatalf("prometheus not ready after %s (last: %s)\n%s", startTimeout, last, p.log())
}

// URL is the server's base URL for scheme.
func (p *promProcess) URL(scheme string) string { return scheme + "://" + p.addr }

// log returns the tail of the server's log.
func (p *promProcess) log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > logTail {
		b = append([]byte("..."), b[len(b)-logTail:]...)
	}
	return string(bytes.TrimSpace(b))
}

// waitFor polls cond until it returns nil, failing the test with its last error after
// timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

// blackhole returns the address of a listener that accepts connections and never answers;
// they are closed in t.Cleanup.
func blackhole(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
