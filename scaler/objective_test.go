package scaler

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/prescale/prescale/policy"
)

// objectivePolicy is webPolicy with a forecast of the load query lq and an objective: at
// most 1 % of minutes with the latency query lat over 2 s.
const objectivePolicy = webPolicy + `    forecast:
      load: {query: lq, perReplica: 10}
    objective: {query: lat, slo: 2s, budget: 1%}
`

// The controller runs the objective's query each tick and hands its value to the engine:
// the status, the decision annotation and the metrics show it. A minute counts once it ends,
// if it had a sample; a minute whose samples are all missing counts for nothing, and a
// missing sample is reported as such, never as 0. +Inf is a latency over the SLO.
func TestObjective(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(objectivePolicy, options())
	lead(c)
	cl.source.set("lq", policy.Sample{Value: 20})
	missing := policy.Sample{Err: errors.New(`query "lat": empty result`)}
	labels := []string{"web"}
	steps := []struct {
		at      time.Duration
		latency policy.Sample
		// want is the status's objective after the tick: its latency (nil: missing), the
		// minutes and violated minutes counted so far.
		wantLatency           *float64
		wantError             string
		wantMinutes, wantOver int64
	}{
		{at: 0, latency: policy.Sample{Value: 1}, wantLatency: ptr(1.0)},
		{at: 30 * time.Second, latency: policy.Sample{Value: 3}, wantLatency: ptr(3.0)}, // over 2 s
		{at: 45 * time.Second, latency: missing, wantError: `query "lat": empty result`},
		// 1m: the minute [0, 1m) ends: sampled, over at 30 s.
		{at: time.Minute, latency: missing, wantError: `query "lat": empty result`, wantMinutes: 1, wantOver: 1},
		{at: 90 * time.Second, latency: missing, wantError: `query "lat": empty result`, wantMinutes: 1, wantOver: 1},
		// 2m: the minute [1m, 2m) had no sample: it counts for nothing.
		{at: 2 * time.Minute, latency: policy.Sample{Value: 0}, wantLatency: ptr(0.0), wantMinutes: 1, wantOver: 1},
		// 3m: [2m, 3m) was within the SLO (0 s is a latency, not a missing one).
		{at: 3 * time.Minute, latency: policy.Sample{Value: math.Inf(1)}, wantLatency: ptr(math.Inf(1)), wantMinutes: 2, wantOver: 1},
		// 4m: [3m, 4m) was at +Inf: over.
		{at: 4 * time.Minute, latency: policy.Sample{PerPod: map[string]float64{"web-0": 1}},
			wantError: `query "lat": want one series, got a result per pod`, wantMinutes: 3, wantOver: 2},
	}
	for _, s := range steps {
		cl.source.set("lat", s.latency)
		events := cl.tickAt(c, s.at)
		for _, e := range events {
			if strings.Contains(e, "lat") {
				t.Errorf("at %s: event %q about the latency, want none (a missing latency changes nothing)", s.at, e)
			}
		}
		st := c.Status()[0]
		o := st.Objective
		if o == nil {
			t.Fatalf("at %s: status without an objective", s.at)
		}
		got := objectiveStep{latency: o.Latency, err: o.LatencyError, minutes: o.Minutes, over: o.ViolatedMinutes}
		want := objectiveStep{latency: s.wantLatency, err: s.wantError, minutes: s.wantMinutes, over: s.wantOver}
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(objectiveStep{})); diff != "" {
			t.Errorf("at %s: objective (-want +got):\n%s", s.at, diff)
		}
		if o.SLOSeconds != 2 || o.Budget != 0.01 || o.Fixed {
			t.Errorf("at %s: objective %+v, want slo 2, budget 0.01, adaptive", s.at, *o)
		}

		// The metrics mirror the status; a missing latency is an absent series.
		m := cl.metrics
		if v := testutil.ToFloat64(m.ObjectiveMinutes.WithLabelValues(labels...)); v != float64(s.wantMinutes) {
			t.Errorf("at %s: prescale_objective_minutes_total = %v, want %d", s.at, v, s.wantMinutes)
		}
		if v := testutil.ToFloat64(m.ObjectiveViolatedMinutes.WithLabelValues(labels...)); v != float64(s.wantOver) {
			t.Errorf("at %s: prescale_objective_violated_minutes_total = %v, want %d", s.at, v, s.wantOver)
		}
		if v := testutil.ToFloat64(m.ObjectiveQuantile.WithLabelValues(labels...)); v != o.Quantile {
			t.Errorf("at %s: prescale_objective_quantile = %v, want the status's %v", s.at, v, o.Quantile)
		}
		if v := testutil.ToFloat64(m.ObjectiveTightness.WithLabelValues(labels...)); v != o.Tightness {
			t.Errorf("at %s: prescale_objective_tightness = %v, want the status's %v", s.at, v, o.Tightness)
		}
		if v := testutil.ToFloat64(m.ObjectiveBank.WithLabelValues(labels...)); v != o.BankMinutes {
			t.Errorf("at %s: prescale_objective_bank_minutes = %v, want the status's %v", s.at, v, o.BankMinutes)
		}
		if v := testutil.ToFloat64(m.ObjectiveBudget.WithLabelValues(labels...)); v != 0.01 {
			t.Errorf("at %s: prescale_objective_budget_ratio = %v, want 0.01", s.at, v)
		}
		if n := testutil.CollectAndCount(m.ObjectiveLatency); (n == 1) != (s.wantLatency != nil) {
			t.Errorf("at %s: %d prescale_objective_latency_seconds series, want one only with a latency", s.at, n)
		} else if s.wantLatency != nil {
			if v := testutil.ToFloat64(m.ObjectiveLatency.WithLabelValues(labels...)); v != *s.wantLatency {
				t.Errorf("at %s: prescale_objective_latency_seconds = %v, want %v", s.at, v, *s.wantLatency)
			}
		}
	}

	// The quantile moved: up 0.01 x (1 - 0.9 x 0.01) at each violated minute, down
	// 0.01 x 0.9 x 0.01 at the other: 0.9 + 2 x 0.00991 - 0.00009 = 0.91973.
	if q := c.Status()[0].Objective.Quantile; math.Abs(q-0.91973) > 1e-9 {
		t.Errorf("quantile %v, want 0.91973", q)
	}

	// The decision annotation carries the objective.
	var ann struct {
		Objective *ObjectiveStatus `json:"objective"`
	}
	if err := json.Unmarshal([]byte(cl.annotation()), &ann); err != nil {
		t.Fatal(err)
	}
	if ann.Objective == nil || ann.Objective.Minutes != 3 || ann.Objective.ViolatedMinutes != 2 ||
		!strings.Contains(ann.Objective.LatencyError, "want one series") {
		t.Errorf("annotation's objective = %+v, want 3 minutes, 2 violated, the per-pod result's error", ann.Objective)
	}

	// Removing the policy removes its objective's series.
	c.SetPolicies(nil)
	for name, n := range map[string]int{
		"quantile": testutil.CollectAndCount(cl.metrics.ObjectiveQuantile), "minutes": testutil.CollectAndCount(cl.metrics.ObjectiveMinutes),
		"violated": testutil.CollectAndCount(cl.metrics.ObjectiveViolatedMinutes), "budget": testutil.CollectAndCount(cl.metrics.ObjectiveBudget),
		"slo": testutil.CollectAndCount(cl.metrics.ObjectiveSLO), "latency": testutil.CollectAndCount(cl.metrics.ObjectiveLatency),
		"beyond reach": testutil.CollectAndCount(cl.metrics.ObjectiveBeyondReach),
	} {
		if n != 0 {
			t.Errorf("after the policy left: %d series of the objective's %s, want none", n, name)
		}
	}
}

type objectiveStep struct {
	latency       *float64
	err           string
	minutes, over int64
}

func ptr[T any](v T) *T { return &v }

// A latency that is always missing decides nothing: the policy writes what the same
// policy without an objective writes, and sends the same events.
func TestMissingLatencyChangesNothing(t *testing.T) {
	run := func(file string) ([]int32, []string) {
		cl := newCluster(t, 2)
		c := cl.controller(file, options())
		lead(c)
		cl.source.set("lq", policy.Sample{Value: 20})
		cl.source.set("lat", policy.Sample{Err: errors.New(`query "lat": timeout`)})
		var events []string
		for i, load := range []float64{50, 50, 50, 10, 10, 80, 0, 0} {
			cl.source.set("load", policy.Sample{Value: load})
			events = append(events, reasons(cl.tickAt(c, time.Duration(i)*40*time.Second))...)
		}
		return cl.writes(), events
	}
	wantWrites, wantEvents := run(strings.Replace(objectivePolicy, "    objective: {query: lat, slo: 2s, budget: 1%}\n", "", 1))
	if len(wantWrites) < 2 {
		t.Fatalf("the policy without an objective wrote %v: too few writes to compare", wantWrites)
	}
	gotWrites, gotEvents := run(objectivePolicy)
	if diff := cmp.Diff(wantWrites, gotWrites); diff != "" {
		t.Errorf("writes with a missing latency (-without objective +with):\n%s", diff)
	}
	if diff := cmp.Diff(wantEvents, gotEvents); diff != "" {
		t.Errorf("events with a missing latency (-without objective +with):\n%s", diff)
	}
}

// prescale status prints the objective: SLO, budget, minutes, violated minutes and their
// share, the quantile planned for, and the last latency or why it is missing.
func TestStatusTableShowsTheObjective(t *testing.T) {
	st := []PolicyStatus{
		{Policy: "a", Target: "apps/v1/Deployment/default/a", Objective: &ObjectiveStatus{SLOSeconds: 2, Budget: 0.001,
			Latency: ptr(1.25), Quantile: 0.9312, Minutes: 400, ViolatedMinutes: 2, Tightness: 0.25, BankMinutes: 3.75}},
		{Policy: "b", Target: "apps/v1/Deployment/default/b"},
		{Policy: "c", Target: "apps/v1/Deployment/default/c", Objective: &ObjectiveStatus{SLOSeconds: 0.5, Budget: 0.05,
			LatencyError: "empty result", Quantile: 0.95, Fixed: true}},
		{Policy: "d", Target: "apps/v1/Deployment/default/d", Objective: &ObjectiveStatus{SLOSeconds: 2, Budget: 0.01,
			Latency: ptr(math.Inf(1)), Quantile: 0.99, Minutes: 1, ViolatedMinutes: 1}},
	}
	var b bytes.Buffer
	WriteStatusTable(&b, st)
	out := b.String()
	_, objectives, ok := strings.Cut(out, "\n\n")
	if !ok {
		t.Fatalf("no objectives' table after the scorecard:\n%s", out)
	}
	want := []string{
		"POLICY  SLO   BUDGET  MINUTES  VIOLATED     QUANTILE        TIGHTNESS            LATENCY",
		"a       2s    0.1%    400      2 (0.50%)    0.931 adaptive  0.25 (bank 3.8 min)  1.25s",
		"c       0.5s  5%      0        0            0.95 fixed      0.00 (bank 0.0 min)  missing: empty result",
		"d       2s    1%      1        1 (100.00%)  0.990 adaptive  0.00 (bank 0.0 min)  +Inf",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimRight(objectives, "\n"), "\n")); diff != "" {
		t.Errorf("objectives' table (-want +got):\n%s", diff)
	}

	b.Reset()
	WriteStatusTable(&b, st[1:2])
	if strings.Contains(b.String(), "SLO") {
		t.Errorf("an objectives' table without objectives:\n%s", b.String())
	}
}

// annotation returns the decision annotation on Deployment default/web.
func (cl *cluster) annotation() string {
	cl.t.Helper()
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	u, err := cl.dyn.Resource(gvr).Namespace("default").Get(cl.ctx, "web", metav1.GetOptions{})
	if err != nil {
		cl.t.Fatal(err)
	}
	return u.GetAnnotations()[DecisionAnnotation]
}

// The minute counters count the minutes that end while this instance leads: a hot
// standby's engine counts too (its status says so), but its counters stay where they are,
// and a new leader adds only the minutes that end after it took over.
func TestObjectiveCountersCountTheLeadersMinutes(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(objectivePolicy, options())
	cl.source.set("lq", policy.Sample{Value: 20})
	cl.source.set("lat", policy.Sample{Value: 3}) // over 2 s: every minute is violated
	counts := func() (float64, float64) {
		return testutil.ToFloat64(cl.metrics.ObjectiveMinutes.WithLabelValues("web")),
			testutil.ToFloat64(cl.metrics.ObjectiveViolatedMinutes.WithLabelValues("web"))
	}
	// Following: the minutes [0, 1m) and [1m, 2m) end, counted by the engine only.
	for _, at := range []time.Duration{0, time.Minute, 2 * time.Minute} {
		cl.tickAt(c, at)
	}
	if o := c.Status()[0].Objective; o.Minutes != 2 || o.ViolatedMinutes != 2 {
		t.Fatalf("the follower's engine counted %d minutes, %d violated, want 2 and 2", o.Minutes, o.ViolatedMinutes)
	}
	if m, v := counts(); m != 0 || v != 0 {
		t.Errorf("a follower's counters: %v minutes, %v violated, want 0 and 0", m, v)
	}
	// Leading from 2m30s: the minute [2m, 3m) ends at 3m, the first the leader counts.
	lead(c)
	cl.tickAt(c, 150*time.Second)
	if m, v := counts(); m != 0 || v != 0 {
		t.Errorf("taking over: %v minutes, %v violated, want 0 and 0 (the follower's minutes are not the leader's)", m, v)
	}
	cl.tickAt(c, 3*time.Minute)
	if m, v := counts(); m != 1 || v != 1 {
		t.Errorf("a minute after taking over: %v minutes, %v violated, want 1 and 1", m, v)
	}
}

// withReason keeps the events of one reason.
func withReason(events []string, reason string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, "Warning "+reason+" ") || strings.HasPrefix(e, "Normal "+reason+" ") {
			out = append(out, e)
		}
	}
	return out
}

// An objective without an observation, or a forecast without a usable load, sets its
// prescale_*_missing gauge from the first tick; once the run has lasted MissingAfter it is
// a Warning event, once per run: a new run after a usable sample is a new event. The
// clock is a fake one, stepped tick by tick.
func TestMissingObjectiveAndLoadSaySoOnceSustained(t *testing.T) {
	cl := newCluster(t, 2)
	opts := options()
	opts.MissingAfter = time.Minute
	c := cl.controller(objectivePolicy, opts)
	lead(c)
	empty := policy.Sample{Err: errors.New(`query "lat": empty result`)}
	nan := policy.Sample{Value: math.NaN()}
	steps := []struct {
		name         string
		lat, lq      policy.Sample
		objMissing   float64 // prescale_objective_missing after the tick
		loadMissing  float64 // prescale_forecast_load_missing
		objEvent     bool    // an ObjectiveMissing event at the tick
		loadEvent    bool    // a ForecastLoadMissing event at the tick
		eventSubstrs []string
	}{
		// 0s
		{name: "both usable", lat: policy.Sample{Value: 1}, lq: policy.Sample{Value: 20}},
		// 15s: the run starts.
		{name: "the latency is empty", lat: empty, lq: policy.Sample{Value: 20}, objMissing: 1},
		{name: "30s: still", lat: empty, lq: policy.Sample{Value: 20}, objMissing: 1},
		{name: "45s: still", lat: nan, lq: policy.Sample{Value: 20}, objMissing: 1},
		// 60s: 45 s since the run began at 15 s: below the minute.
		{name: "60s: 45s missing, no event", lat: nan, lq: policy.Sample{Value: 20}, objMissing: 1},
		// 75s: exactly a minute since 15 s: sustained.
		{name: "75s: a minute missing: the event", lat: nan, lq: policy.Sample{Value: 20}, objMissing: 1, objEvent: true,
			eventSubstrs: []string{"for 1m0s", "since 2026-01-01T00:00:15Z", "not a latency: NaN"}},
		{name: "90s: once per run", lat: empty, lq: policy.Sample{Value: 20}, objMissing: 1},
		{name: "105s: a latency ends the run", lat: policy.Sample{Value: 1}, lq: policy.Sample{Value: 20}},
		// 120s: a new run of the latency; the load's starts too.
		{name: "120s: both missing", lat: empty, lq: policy.Sample{Err: errors.New(`query "lq": stale`)}, objMissing: 1, loadMissing: 1},
		{name: "135s", lat: empty, lq: policy.Sample{Value: math.Inf(1)}, objMissing: 1, loadMissing: 1},
		{name: "150s", lat: empty, lq: policy.Sample{Value: -1}, objMissing: 1, loadMissing: 1},
		{name: "165s", lat: empty, lq: policy.Sample{Value: math.NaN()}, objMissing: 1, loadMissing: 1},
		// 180s: a minute since 120 s for both: two events, the objective's anew.
		{name: "180s: both sustained", lat: empty, lq: policy.Sample{Value: math.NaN()}, objMissing: 1, loadMissing: 1,
			objEvent: true, loadEvent: true, eventSubstrs: []string{"since 2026-01-01T00:02:00Z"}},
		// 195s: the load is back at 0: nothing arrives, so a missing latency is idle.
		{name: "195s: the load at 0: idle, not missing", lat: empty, lq: policy.Sample{Value: 0}},
	}
	for i, s := range steps {
		if i > 0 {
			cl.clock.Step(15 * time.Second)
		}
		cl.source.set("lat", s.lat)
		cl.source.set("lq", s.lq)
		c.Tick(cl.ctx)
		c.awaitRecords()
		awaitHistories(t, c)
		var events []string
		for len(cl.events.Events) > 0 {
			events = append(events, <-cl.events.Events)
		}
		obj, load := withReason(events, ReasonObjectiveMissing), withReason(events, ReasonForecastLoadMissing)
		if (len(obj) == 1) != s.objEvent || len(obj) > 1 {
			t.Errorf("%s: ObjectiveMissing events %q, want one: %v", s.name, obj, s.objEvent)
		}
		if (len(load) == 1) != s.loadEvent || len(load) > 1 {
			t.Errorf("%s: ForecastLoadMissing events %q, want one: %v", s.name, load, s.loadEvent)
		}
		for _, e := range append(obj, load...) {
			if !strings.HasPrefix(e, "Warning ") {
				t.Errorf("%s: event %q, want a Warning", s.name, e)
			}
			for _, sub := range s.eventSubstrs {
				if !strings.Contains(e, sub) {
					t.Errorf("%s: event %q, want it to say %q", s.name, e, sub)
				}
			}
		}
		if v := testutil.ToFloat64(cl.metrics.ObjectiveMissing.WithLabelValues("web")); v != s.objMissing {
			t.Errorf("%s: prescale_objective_missing = %v, want %v", s.name, v, s.objMissing)
		}
		if v := testutil.ToFloat64(cl.metrics.ForecastLoadMissing.WithLabelValues("web")); v != s.loadMissing {
			t.Errorf("%s: prescale_forecast_load_missing = %v, want %v", s.name, v, s.loadMissing)
		}
	}

	// The record and the status say since when.
	st := c.Status()[0]
	if !st.Objective.MissingSince.IsZero() || !st.Forecast.LoadMissingSince.IsZero() {
		t.Errorf("status after the runs ended: missingSince %v, loadMissingSince %v, want neither", st.Objective.MissingSince, st.Forecast.LoadMissingSince)
	}

	// Removing the objective and the forecast removes their gauges.
	c.SetPolicies(nil)
	if n := testutil.CollectAndCount(cl.metrics.ObjectiveMissing) + testutil.CollectAndCount(cl.metrics.ForecastLoadMissing); n != 0 {
		t.Errorf("after the policy left: %d missing series, want none", n)
	}
}

// With objective.waiting, a tick without a latency sample while requests wait is over the
// SLO: the minute counts as violated (and as waited), the objective is not missing, and
// the status, the record and the status table say why.
func TestWaitingWithoutLatencyIsViolated(t *testing.T) {
	cl := newCluster(t, 2)
	file := strings.Replace(objectivePolicy, "budget: 1%}", "budget: 1%, waiting: wq}", 1)
	c := cl.controller(file, options())
	lead(c)
	cl.source.set("lq", policy.Sample{Value: 20})
	cl.source.set("lat", policy.Sample{Value: math.NaN()})
	cl.source.set("wq", policy.Sample{PerPod: map[string]float64{"web-0": 4, "web-1": 3}})
	cl.tickAt(c, 0)
	st := c.Status()[0].Objective
	if !st.WaitedWithoutLatency || st.Waiting == nil || *st.Waiting != 7 || !st.MissingSince.IsZero() {
		t.Errorf("objective %+v, want waitedWithoutLatency with 7 waiting, not missing", *st)
	}
	if v := testutil.ToFloat64(cl.metrics.ObjectiveMissing.WithLabelValues("web")); v != 0 {
		t.Errorf("prescale_objective_missing = %v, want 0: requests waiting are an observation", v)
	}
	var ann struct {
		Objective map[string]any `json:"objective"`
	}
	if err := json.Unmarshal([]byte(cl.annotation()), &ann); err != nil {
		t.Fatal(err)
	}
	if ann.Objective["waitedWithoutLatency"] != true || ann.Objective["waitingRequests"] != 7.0 {
		t.Errorf("annotation's objective %v, want waitedWithoutLatency and 7 waitingRequests", ann.Objective)
	}
	var table bytes.Buffer
	writeObjectives(&table, c.Status())
	if !strings.Contains(table.String(), "none while 7 wait: over the SLO") {
		t.Errorf("status table:\n%s\nwant the latency column to say that 7 waited without a latency", table.String())
	}

	// The minute ends: violated, and waited.
	cl.source.set("lat", policy.Sample{Value: 1})
	cl.tickAt(c, time.Minute)
	st = c.Status()[0].Objective
	if st.Minutes != 1 || st.ViolatedMinutes != 1 || st.WaitedMinutes != 1 {
		t.Errorf("after the minute: %d minutes, %d violated, %d waited; want 1, 1, 1", st.Minutes, st.ViolatedMinutes, st.WaitedMinutes)
	}
	for name, v := range map[string]float64{
		"prescale_objective_violated_minutes_total": testutil.ToFloat64(cl.metrics.ObjectiveViolatedMinutes.WithLabelValues("web")),
		"prescale_objective_waited_minutes_total":   testutil.ToFloat64(cl.metrics.ObjectiveWaitedMinutes.WithLabelValues("web")),
	} {
		if v != 1 {
			t.Errorf("%s = %v, want 1", name, v)
		}
	}
}

// A policy that loses its forecast and its objective on a reload keeps its state, and its
// next tick drops their series; the series of what it still has stay.
func TestLostForecastAndObjectiveDropTheirSeries(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(objectivePolicy, options())
	lead(c)
	cl.source.set("lq", policy.Sample{Value: 20})
	cl.source.set("lat", policy.Sample{Value: 1})
	cl.tickAt(c, 0)
	m := cl.metrics
	families := map[string]*SeriesVec{"forecast horizon": m.ForecastHorizon, "forecast history samples": m.ForecastHistorySamples,
		"forecast load missing": m.ForecastLoadMissing, "objective quantile": m.ObjectiveQuantile, "objective budget": m.ObjectiveBudget}
	for name, v := range families {
		if n := testutil.CollectAndCount(v); n != 1 {
			t.Fatalf("with a forecast and an objective: %d series of the %s, want 1", n, name)
		}
	}
	f, err := policy.Parse(strings.NewReader(webPolicy))
	if err != nil {
		t.Fatal(err)
	}
	c.SetPolicies(f.Policies)
	for _, at := range []time.Duration{15 * time.Second, 30 * time.Second} {
		cl.tickAt(c, at)
		for name, v := range families {
			if n := testutil.CollectAndCount(v); n != 0 {
				t.Errorf("at %s, without them: %d series of the %s, want none", at, n, name)
			}
		}
		if n := testutil.CollectAndCount(m.MetricValue); n == 0 {
			t.Errorf("at %s: no series of the metrics' values, want the policy's", at)
		}
	}
}
