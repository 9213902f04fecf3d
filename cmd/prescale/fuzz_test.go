package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/backtest"
)

// backtestFlags are the flags FuzzBacktestFlags sets, in the order of its arguments; bit i
// of its mask gives flag i.
var backtestFlags = []string{"tick", "startup", "peak-replicas", "target-utilization", "queue-target", "min-replicas",
	"max-replicas", "slo", "gpus-per-replica", "sweep", "budget", "plot-from", "plot-window", "from", "to", "step", "pool-gpus"}

// The other bits of the mask: where the load comes from, and the outputs.
const (
	bitPrometheus = 1 << (iota + 17) // --prometheus (a fake one) instead of --trace
	bitPool                          // pool mode: --pool-trace of two policies (needs pool-gpus)
	bitJSON                          // --json
	bitPlot                          // --plot and --html into a temporary directory
	bitObjective                     // the policy with an objective (a comparison to run)
)

// FuzzBacktestFlags runs prescale backtest with fuzzed values of its model, sweep, budget,
// plot, Prometheus range and pool flags, on a 20-minute trace (or a fake Prometheus, or a
// pool of two policies). It never panics; it exits 0, 1 or 2, saying why on standard error
// when not 0; and with --json, what it prints on success is JSON. Inputs that would only
// run long are skipped: more than 1000 replicas, a sweep of more than 4 values, a
// Prometheus range over a day.
func FuzzBacktestFlags(f *testing.F) {
	dir := f.TempDir()
	var csv strings.Builder
	csv.WriteString("minute,requests\n")
	for m := range 20 {
		fmt.Fprintf(&csv, "%d,%d\n", m, 100+40*(m%7))
	}
	trace := filepath.Join(dir, "trace.csv")
	pool := filepath.Join(dir, "pool.yaml")
	for path, content := range map[string]string{trace: csv.String(), pool: poolObjectivePolicies} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	prom := httptest.NewServer(fakePrometheus(func(*http.Request) error { return nil }))
	f.Cleanup(prom.Close)

	all := uint32(1)<<16 - 1 // every flag but --pool-gpus
	f.Add("15s", "180s", "40", "0.7", "5", "1", "0", "2s", "1", "queueTarget=2,5", "1%", "0s", "1h", "0", "1200", "1m", "80", uint32(0))
	f.Add("1s", "0s", "3", "1", "0.5", "0", "6", "1ms", "2", "startup=0,60", "0.5", "5m", "30s", "NaN", "Inf", "7s", "2", all)
	f.Add("1ns", "-1s", "0", "2", "0", "-1", "-2", "0s", "NaN", "foo=1", "60%", "-1m", "0s", "1767225600000", "1e300", "1s", "-5", all|bitJSON)
	f.Add("1m", "24h", "1000", "1e-300", "1e308", "1000", "1000", "1h", "1024", "slo=1,2,3", "abc", "48h", "1m", "0", "2026-01-01T00:00:00Z", "1s", "9000000000000000000",
		uint32(1<<13|1<<14|1<<15)|bitPrometheus|bitJSON)
	f.Add("15s", "60s", "8", "0.7", "5", "1", "0", "3s", "1", "", "", "", "", "", "", "", "79", uint32(1<<16|1<<7)|bitPool|bitJSON)
	f.Add("30s", "30s", "10", "0.5", "5", "0", "0", "2s", "1", "", "0.1%", "", "10m", "", "", "", "", uint32(1<<10|1<<12)|bitObjective|bitPlot|bitJSON)
	f.Fuzz(func(t *testing.T, tick, startup, peak, util, queue, minR, maxR, slo, gpus, sweep, budget, plotFrom, plotWindow, from, to, step, poolGPUs string, mask uint32) {
		values := []string{tick, startup, peak, util, queue, minR, maxR, slo, gpus, sweep, budget, plotFrom, plotWindow, from, to, step, poolGPUs}
		policyFile := "../../examples/backtest-policy.yaml"
		if mask&bitObjective != 0 {
			policyFile = "../../examples/slo-policy.yaml"
		}
		args := []string{"backtest", "-f", policyFile}
		if mask&bitPool != 0 {
			args = []string{"backtest", "-f", pool, "--pool-trace", "chat=" + trace, "--pool-trace", "code=" + trace}
		}
		switch {
		case mask&bitPrometheus != 0:
			args = append(args, "--prometheus", prom.URL)
			l := backtest.PrometheusLoad{Step: time.Minute}
			var errFrom, errTo, errStep error
			l.From, errFrom = parseTime(from)
			l.To, errTo = parseTime(to)
			if mask&(1<<15) != 0 {
				l.Step, errStep = time.ParseDuration(step)
			}
			if errFrom == nil && errTo == nil && errStep == nil && l.Validate() == nil && l.To.Sub(l.From) > 24*time.Hour {
				t.Skip("a long range Validate allows only takes long to serve")
			}
		case mask&bitPool == 0:
			args = append(args, "--trace", trace)
		}
		for i, flag := range backtestFlags {
			if mask&(1<<i) == 0 {
				continue
			}
			v := values[i]
			switch flag {
			case "peak-replicas", "min-replicas", "max-replicas":
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 1000 {
					t.Skip("many replicas only take long")
				}
			case "sweep":
				if strings.Count(v, ",") > 3 {
					t.Skip("a large grid only takes long")
				}
			}
			args = append(args, "--"+flag+"="+v)
		}
		if mask&bitJSON != 0 {
			args = append(args, "--json")
		}
		if mask&bitPlot != 0 {
			out := t.TempDir()
			args = append(args, "--plot", filepath.Join(out, "plot.png"), "--html", filepath.Join(out, "report.html"))
		}
		code, stdout, stderr := runPrescale(t, "", args...)
		t.Logf("%q: exit %d, stderr %.300q", args, code, stderr)
		switch {
		case code != 0 && code != 1 && code != 2:
			t.Fatalf("%q: exit %d, stderr %q", args, code, stderr)
		case code != 0 && stderr == "":
			t.Fatalf("%q: exit %d and nothing said", args, code)
		case code == 0 && mask&bitJSON != 0 && !json.Valid([]byte(stdout)):
			t.Fatalf("%q: --json printed no JSON: %.500s", args, stdout)
		}
	})
}
