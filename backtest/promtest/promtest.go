// Package promtest starts a real Prometheus server on backfilled data, for the e2e tests
// (build tag e2e) of the backtest's Prometheus reader. It needs the prometheus and promtool
// binaries in the directory that PRESCALE_TOOLS_BIN names.
package promtest

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Bin returns PRESCALE_TOOLS_BIN, and fails the test when it is not set.
func Bin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("PRESCALE_TOOLS_BIN")
	if bin == "" {
		t.Fatal("PRESCALE_TOOLS_BIN must name a directory holding the prometheus and promtool binaries")
	}
	return bin
}

// Start backfills the OpenMetrics text into a fresh data directory, starts
// prometheus on a free loopback port, and returns its URL once it is ready.
func Start(t testing.TB, bin, om string) string {
	t.Helper()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(filepath.Join(dir, "history.om"), []byte(om), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(bin, "promtool"), "tsdb", "create-blocks-from", "openmetrics", filepath.Join(dir, "history.om"), data).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool backfill: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte("global: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "prometheus"), "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+data, "--web.listen-address="+addr, "--storage.tsdb.retention.time=30d")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Fatalf("prometheus not ready at %s after 30 s: %v\n%s", url, err, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
