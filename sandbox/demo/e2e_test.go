//go:build e2e

package demo_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/demo"
)

// TestDemo runs a shortened demo (the surge, 14 model minutes instead of 30) on its own
// sandbox and asserts, from the values it measured, what make demo claims: prescale had
// fewer minutes over the SLO than the real HPA at no more replica-minutes, and nothing is
// left running.
func TestDemo(t *testing.T) {
	bin := os.Getenv("PRESCALE_SANDBOX_BIN")
	if bin == "" {
		t.Fatal("PRESCALE_SANDBOX_BIN is not set: run the e2e tests with make test (it builds the tools)")
	}
	prescale := filepath.Join(t.TempDir(), "prescale")
	if out, err := exec.Command("go", "build", "-o", prescale, "../../cmd/prescale").CombinedOutput(); err != nil {
		t.Fatalf("build prescale: %v\n%s", err, out)
	}
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	state := filepath.Join(dir, "sandbox")
	o := demo.Options{
		Sandbox:     sandbox.Options{BinDir: bin, StateDir: state, Nodes: 8, HPASyncPeriod: 1500 * time.Millisecond, ScrapeInterval: 1500 * time.Millisecond},
		PrescaleBin: prescale, Dir: filepath.Join(dir, "demo"), Duration: 14 * time.Minute,
	}
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, o, &out)
	t.Logf("demo output:\n%s", out.String())
	if err != nil {
		t.Fatalf("Run: %v\nprescale's log:\n%s", err, readTail(filepath.Join(o.Dir, "prescale.log")))
	}
	h, p := res.HPA, res.Prescale
	t.Logf("HPA: %+v", h)
	t.Logf("prescale: %+v", p)
	if h.Ticks == 0 || h.Ticks != p.Ticks || len(res.Rows) != h.Ticks {
		t.Fatalf("ticks: HPA %d, prescale %d, rows %d; want the same, non-zero", h.Ticks, p.Ticks, len(res.Rows))
	}
	if h.SLOViolationMinutes == 0 {
		t.Errorf("the HPA had no minute over the SLO: the surge did not happen")
	}
	if p.SLOViolationMinutes >= h.SLOViolationMinutes {
		t.Errorf("minutes over the SLO: prescale %d, HPA %d; want prescale fewer", p.SLOViolationMinutes, h.SLOViolationMinutes)
	}
	if p.ReplicaMinutes > h.ReplicaMinutes {
		t.Errorf("replica-minutes: prescale %.1f, HPA %.1f; want prescale no more", p.ReplicaMinutes, h.ReplicaMinutes)
	}
	// prescale's forecast planned ahead of the surge at minute 8: before minute 8 it asked
	// for more replicas than the HPA.
	ahead := false
	for _, r := range res.Rows {
		if r.Time < 8*time.Minute && r.Planned && r.Prescale.Desired > r.HPA.Desired {
			ahead = true
		}
	}
	if !ahead {
		t.Errorf("prescale never planned above the HPA before the surge")
	}
	text := out.String()
	for _, w := range []string{"backfilled", "== summary", "prescale won", "no process left"} {
		if !strings.Contains(text, w) {
			t.Errorf("the demo's output lacks %q", w)
		}
	}
	if _, err := os.Stat(res.Plot); err != nil {
		t.Errorf("plot: %v", err)
	}
	if _, err := sandbox.Load(state); err == nil {
		t.Errorf("the sandbox's state is still there after the demo: not torn down")
	}
	// No process is left: none runs the demo's prescale or names the demo's folder.
	if left := processesNaming(t, dir, prescale); len(left) > 0 {
		t.Errorf("processes left after the demo:\n%s", strings.Join(left, "\n"))
	}
}

// processesNaming lists the running processes whose command line contains one of names.
func processesNaming(t *testing.T, names ...string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("list processes: %v", err)
	}
	var left []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // gone meanwhile
		}
		line := strings.ReplaceAll(string(cmd), "\x00", " ")
		for _, n := range names {
			if strings.Contains(line, n) {
				left = append(left, e.Name()+": "+line)
				break
			}
		}
	}
	return left
}

func readTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(string(data), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}
