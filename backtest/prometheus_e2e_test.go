//go:build e2e

package backtest

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/prom"
)

// TestPrometheusLoad reads a backfilled history from a real Prometheus server: promtool
// writes blocks from OpenMetrics, prometheus serves them. PRESCALE_TOOLS_BIN names the
// directory holding both binaries; without it, or if they do not run, the test fails.
func TestPrometheusLoad(t *testing.T) {
	const minutes = 360
	from := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
	want := make(Trace, minutes)
	for m := range want {
		want[m] = math.Round(600 + 400*math.Sin(float64(m)/40))
	}
	gap := [2]int{100, 120} // the gauge has no samples in these minutes
	client, err := prom.Options{URL: promtest.Start(t, promtest.Options{Backfill: openMetrics(from, want, gap)}).URL()}.Client()
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	t.Run("rate of the counter, in chunks", func(t *testing.T) {
		l := PrometheusLoad{Client: client, Query: "sum(rate(inference_requests_total[1m]))", From: from, To: from.Add(minutes * time.Minute), PointsPerQuery: 100}
		got, st, err := l.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 360 points in chunks of 100: 4 queries. A counter that grows linearly within each
		// minute gives each minute's rate exactly, up to float rounding.
		if st.Queries != 4 || st.Points != minutes || st.Missing != 0 || len(got) != minutes {
			t.Fatalf("stats %+v, %d minutes", st, len(got))
		}
		for m := range want {
			if math.Abs(got[m]-want[m]) > 1e-6*want[m] {
				t.Fatalf("minute %d: %v requests, want %v", m, got[m], want[m])
			}
		}
	})
	t.Run("a gauge with a gap, at a 15 s step", func(t *testing.T) {
		l := PrometheusLoad{Client: client, Query: "backtest_load_rps", From: from, To: from.Add(minutes * time.Minute), Step: 15 * time.Second}
		got, st, err := l.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The last sample before the gap stays visible for the 5 min lookback: the steps of
		// the gap's last 15 minutes (60 of 15 s), give or take the lookback's edge, are missing.
		t.Logf("stats %+v", st)
		if st.Queries != 1 || st.Points != 4*minutes || st.Missing < 59 || st.Missing > 61 {
			t.Fatalf("stats %+v", st)
		}
		for m := range want {
			if m >= gap[0] && m < gap[1]+1 {
				continue
			}
			if math.Abs(got[m]-want[m]) > 1e-6*want[m] {
				t.Fatalf("minute %d: %v requests, want %v", m, got[m], want[m])
			}
		}
	})
	t.Run("several series", func(t *testing.T) {
		l := PrometheusLoad{Client: client, Query: `{__name__=~"backtest_load_rps|inference_requests_total"}`, From: from, To: from.Add(time.Hour)}
		_, _, err := l.Load(ctx)
		if err == nil || !strings.Contains(err.Error(), "want one series (wrap it in sum(...)), got 2") {
			t.Errorf("error = %v", err)
		}
	})
}

// openMetrics writes the trace as a counter inference_requests_total (linear within each
// minute, a sample every 15 s) and a gauge backtest_load_rps (each minute's rate, sampled
// within the minute and at its end), leaving the gauge out in the gap's minutes.
func openMetrics(from time.Time, tr Trace, gap [2]int) string {
	var b strings.Builder
	b.WriteString("# TYPE inference_requests counter\n")
	total := 0.0
	fmt.Fprintf(&b, "inference_requests_total 0 %d\n", from.Unix())
	for m, v := range tr {
		for k := 1; k <= 4; k++ {
			fmt.Fprintf(&b, "inference_requests_total %g %d\n", total+v*float64(k)/4, from.Unix()+int64(m*60+15*k))
		}
		total += v
	}
	b.WriteString("# TYPE backtest_load_rps gauge\n")
	for m, v := range tr {
		if m >= gap[0] && m < gap[1] {
			continue
		}
		for k := 1; k <= 4; k++ {
			fmt.Fprintf(&b, "backtest_load_rps %g %d\n", v/60, from.Unix()+int64(m*60+15*k))
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}
