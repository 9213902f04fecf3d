package scaler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clienttesting "k8s.io/client-go/testing"

	"github.com/prescale/prescale/policy"
)

// A sample that comes with Prometheus' warnings (a partial response) is used as it is; each
// is counted in prescale_query_warnings_total{policy,metric}, and the decision's annotation
// lists the warnings with the metric.
func TestQueryWarnings(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lead(c)
	const warning = "partial response: store 10.0.0.7:10901 did not answer"
	// Load 50 with warnings: proposal ceil(50 / 10) = 5, limited to 2 + 1 = 3, written.
	cl.source.set("load", policy.Sample{Value: 50, Warnings: []string{warning}})
	cl.tickAt(c, 0)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("a sample with warnings is used: accepted scale writes (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(cl.metrics.QueryWarnings.WithLabelValues("web", "load")); got != 1 {
		t.Errorf(`prescale_query_warnings_total{policy="web",metric="load"} = %v, want 1`, got)
	}
	var annotation string
	for _, a := range cl.dyn.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			annotation = string(p.GetPatch())
		}
	}
	if want := `\"warnings\":[\"` + warning + `\"]`; !strings.Contains(annotation, want) {
		t.Errorf("the decision annotation's patch %s does not contain %s", annotation, want)
	}

	// Without warnings, nothing more is counted.
	cl.source.set("load", policy.Sample{Value: 50})
	cl.tickAt(c, 15*time.Second)
	if got := testutil.ToFloat64(cl.metrics.QueryWarnings.WithLabelValues("web", "load")); got != 1 {
		t.Errorf(`prescale_query_warnings_total{policy="web",metric="load"} after a tick without warnings = %v, want 1`, got)
	}
}

// The warnings of the forecast's load and of the objective's latency are in their parts of
// the status, and counted as metric "forecast" and "objective".
func TestQueryWarningsOfLoadAndLatency(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(objectivePolicy, options())
	lead(c)
	warn := []string{"partial response"}
	cl.source.set("load", policy.Sample{Value: 20})
	cl.source.set("lq", policy.Sample{Value: 20, Warnings: warn})
	cl.source.set("lat", policy.Sample{Value: 1, Warnings: warn})
	cl.tickAt(c, 0)
	st := c.Status()[0]
	if st.Forecast == nil || !cmp.Equal(warn, st.Forecast.LoadWarnings) {
		t.Errorf("forecast status %+v, want load warnings %q", st.Forecast, warn)
	}
	if st.Objective == nil || !cmp.Equal(warn, st.Objective.LatencyWarnings) {
		t.Errorf("objective status %+v, want latency warnings %q", st.Objective, warn)
	}
	for _, metric := range []string{"load", "forecast", "objective"} {
		want := 1.0
		if metric == "load" {
			want = 0
		}
		if got := testutil.ToFloat64(cl.metrics.QueryWarnings.WithLabelValues("web", metric)); got != want {
			t.Errorf(`prescale_query_warnings_total{policy="web",metric=%q} = %v, want %v`, metric, got, want)
		}
	}
}
