//go:build e2e

package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil/promtest"
)

// TestBacktestCommandPrometheus reads two hours of a counter from a real Prometheus through
// the command's --prometheus flags and backtests them.
func TestBacktestCommandPrometheus(t *testing.T) {
	from := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	// 120 minutes at 600 requests a minute, then one at 1200: a counter sampled every 15 s.
	var om strings.Builder
	om.WriteString("# TYPE inference_requests counter\n")
	total := 0.0
	for s := 0; s <= 121*60; s += 15 {
		fmt.Fprintf(&om, "inference_requests_total %g %d\n", total, from.Unix()+int64(s))
		if s < 120*60 {
			total += 600.0 / 4
		} else {
			total += 1200.0 / 4
		}
	}
	om.WriteString("# EOF\n")
	url := promtest.Start(t, promtest.Options{Backfill: om.String()}).URL()

	code, out, stderr := runPrescale(t, "", "backtest", "-f", "../../examples/backtest-policy.yaml", "--prometheus", url,
		"--from", from.Format(time.RFC3339), "--to", fmt.Sprint(from.Add(121*time.Minute).Unix()))
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	// 121 minutes read; the peak minute is 1200 requests.
	if !strings.Contains(out, "121 minutes (2.0 hours), 484 ticks of 15s; peak 1200 req/min") || stderr != "" {
		t.Errorf("stdout:\n%s\nstderr: %s", out, stderr)
	}
}
