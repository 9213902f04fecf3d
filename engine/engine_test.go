package engine

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// parse returns the only policy of a policy file's policies list (YAML, indented as an item).
func parse(t testing.TB, item string) *policy.Policy {
	t.Helper()
	f, err := policy.Parse(strings.NewReader("policies:\n" + item))
	if err != nil {
		t.Fatalf("parse policy: %v", err)
	}
	return &f.Policies[0]
}

// limited scales on one scalar metric (desired = ceil(value / 10)) and adds at most one pod
// a minute; it scales down at once.
const limited = `
  - name: limited
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: model}
    minReplicas: 1
    maxReplicas: 20
    metrics:
      - {name: load, query: q, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleUp:   {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 1, periodSeconds: 60}]}
      scaleDown: {stabilizationWindowSeconds: 0}
`

// predictive is limited with a forecast of the load q over 2h of history.
const predictive = limited + `    forecast:
      load: {query: lq, perReplica: 10}
      history: 2h
`

func newEngine(t *testing.T, p *policy.Policy, opts Options) *Engine {
	t.Helper()
	if opts.Tick == 0 {
		opts.Tick = 15 * time.Second
	}
	e, err := New(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func input(spec int32, value float64, writes bool) Input {
	return Input{Observation: policy.Observation{SpecReplicas: spec, StatusReplicas: spec,
		Metrics: []policy.Sample{{Value: value}}}, Writes: writes}
}

func TestStepCountsAnotherWritersChange(t *testing.T) {
	// At t0 the spec is 2 and the metric asks for 100 / 10 = 10 replicas; one pod a minute
	// allows 3. Another writer then sets 3. At t0+15s the limit is (3 - pods added in the
	// last minute) + 1: 3 when the other writer's +1 counts, 4 when it does not.
	tests := []struct {
		name          string
		writes1       bool
		writes2       bool
		want          int32
		wantHPAEquiv  int32
		hpaEquivalent bool
	}{
		{name: "a dry-run counts the other writer's change", writes1: false, writes2: false, want: 3},
		{name: "a new leader counts the change it saw as a follower", writes1: false, writes2: true, want: 3},
		{name: "a leader counts only its own writes, as the HPA does", writes1: true, writes2: true, want: 4},
		{name: "the HPA-equivalent counts it too", writes1: false, writes2: false, want: 3, hpaEquivalent: true, wantHPAEquiv: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, parse(t, limited), Options{HPAEquivalent: tc.hpaEquivalent})
			if got := e.Step(input(2, 100, tc.writes1), t0).Decision.DesiredReplicas; got != 3 {
				t.Fatalf("first step desired %d, want 3", got)
			}
			res := e.Step(input(3, 100, tc.writes2), t0.Add(15*time.Second))
			if got := res.Decision.DesiredReplicas; got != tc.want {
				t.Errorf("desired %d, want %d", got, tc.want)
			}
			if got := res.HPAEquivalent.DesiredReplicas; got != tc.wantHPAEquiv {
				t.Errorf("HPA-equivalent desired %d, want %d", got, tc.wantHPAEquiv)
			}
		})
	}
}

func TestScaledIsRecordedOnce(t *testing.T) {
	// At most 1 pod a minute and 2 in ten minutes. The engine writes 2 -> 3 at t0 and then
	// loses the right to write: the spec of 3 it sees next is its own write, not another
	// writer's. At t0+75s the minute's policy allows 3 + 1 = 4 and the ten minutes' 3 - 1 +
	// 2 = 4 with the write counted once; counted twice, 3 - 2 + 2 = 3.
	p := parse(t, strings.Replace(limited, "policies: [{type: Pods, value: 1, periodSeconds: 60}]",
		"selectPolicy: Min, policies: [{type: Pods, value: 1, periodSeconds: 60}, {type: Pods, value: 2, periodSeconds: 600}]", 1))
	e := newEngine(t, p, Options{})
	res := e.Step(input(2, 100, true), t0)
	if res.Decision.DesiredReplicas != 3 {
		t.Fatalf("first step desired %d, want 3", res.Decision.DesiredReplicas)
	}
	e.Scaled(2, 3, t0)
	e.Step(input(3, 100, false), t0.Add(15*time.Second))
	if got := e.Step(input(3, 100, false), t0.Add(75*time.Second)).Decision.DesiredReplicas; got != 4 {
		t.Errorf("desired %d, want 4", got)
	}
}

func TestResetForgetsTheHistory(t *testing.T) {
	// After 2 -> 3 is written, a recreated target at 3 starts without that event: the limit
	// is 3 + 1 = 4, not 3.
	e := newEngine(t, parse(t, limited), Options{})
	e.Step(input(2, 100, true), t0)
	e.Scaled(2, 3, t0)
	e.Reset()
	if got := e.Step(input(3, 100, true), t0.Add(15*time.Second)).Decision.DesiredReplicas; got != 4 {
		t.Errorf("desired %d after Reset, want 4", got)
	}
}

func TestHorizon(t *testing.T) {
	tests := []struct {
		name     string
		loadStep time.Duration
		startup  time.Duration
		measured bool
		lag      time.Duration
		want     time.Duration
	}{
		// horizon: auto = start-up + one tick (15 s) + the load query's lag + loadStep - tick
		{name: "default start-up, load every tick", startup: 0, want: 195 * time.Second},
		{name: "a load query that trails by 30 s reaches 30 s further", lag: 30 * time.Second, want: 225 * time.Second},
		{name: "lag and a measured start-up add up", startup: time.Minute, measured: true, lag: 150 * time.Second,
			loadStep: time.Minute, want: 60*time.Second + 15*time.Second + 150*time.Second + 45*time.Second},
		{name: "default start-up, load every minute", loadStep: time.Minute, want: 240 * time.Second},
		{name: "a measured start-up", startup: time.Minute, measured: true, want: 75 * time.Second},
		{name: "an unmeasured start-up falls back to the default", startup: time.Minute, measured: false, want: 195 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, parse(t, predictive), Options{LoadStep: tc.loadStep, DefaultStartup: 180 * time.Second})
			if tc.startup > 0 {
				e.SetStartup(tc.startup, tc.measured)
			}
			e.SetLoadLag(tc.lag)
			if got, ok := e.Horizon(); !ok || got != tc.want {
				t.Errorf("horizon %s (%v), want %s", got, ok, tc.want)
			}
		})
	}
	if _, ok := newEngine(t, parse(t, limited), Options{}).Horizon(); ok {
		t.Error("a policy without a forecast has a horizon")
	}
}

func TestASetHorizonIgnoresTheLag(t *testing.T) {
	p := parse(t, predictive)
	p.Forecast.Horizon = &policy.AutoDuration{Duration: 10 * time.Minute}
	e := newEngine(t, p, Options{})
	e.SetLoadLag(time.Minute)
	if got, _ := e.Horizon(); got != 10*time.Minute {
		t.Errorf("horizon %s with horizon: 10m and a 1m lag, want the 10m written", got)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	p := parse(t, limited)
	for _, o := range []Options{{Tick: 0}, {Tick: time.Second, LoadStep: 1500 * time.Millisecond}, {Tick: time.Second, DefaultStartup: -1}} {
		if _, err := New(p, o); err == nil {
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

func TestMissingLoadHoldsScaleDown(t *testing.T) {
	// The spec is 5 and the metric asks for 1 (10 / 10): a scale-down, which a missing load
	// holds (it counts as one more missing metric) and a load not sampled this tick does not.
	tests := []struct {
		name        string
		load        *policy.Sample
		want        int32
		wantLoadErr bool
	}{
		{name: "a failed load query holds the scale-down", load: &policy.Sample{Err: errors.New("timeout")}, want: 5, wantLoadErr: true},
		{name: "NaN is missing, not zero", load: &policy.Sample{Value: math.NaN()}, want: 5, wantLoadErr: true},
		{name: "an empty per-pod result is missing", load: &policy.Sample{PerPod: map[string]float64{}}, want: 5, wantLoadErr: true},
		{name: "a negative load is missing", load: &policy.Sample{Value: -1}, want: 5, wantLoadErr: true},
		{name: "a usable load lets the metrics scale down", load: &policy.Sample{Value: 10}, want: 1},
		{name: "a load not sampled this tick is not missing", load: nil, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, parse(t, predictive), Options{})
			in := input(5, 10, true)
			in.Load = tc.load
			res := e.Step(in, t0)
			if got := res.Decision.DesiredReplicas; got != tc.want {
				t.Errorf("desired %d, want %d", got, tc.want)
			}
			if (res.LoadErr != nil) != tc.wantLoadErr || (res.Forecast.LoadError != "") != tc.wantLoadErr {
				t.Errorf("LoadErr %v, status %q; want an error: %v", res.LoadErr, res.Forecast.LoadError, tc.wantLoadErr)
			}
		})
	}
}

// A load sample's warnings (a partial answer) are in the forecast's status; the load is
// used as it is.
func TestLoadWarnings(t *testing.T) {
	e := newEngine(t, parse(t, predictive), Options{})
	in := input(5, 10, true)
	warn := []string{"partial response"}
	in.Load = &policy.Sample{Value: 10, Warnings: warn}
	res := e.Step(in, t0)
	if res.LoadErr != nil {
		t.Errorf("LoadErr %v, want none", res.LoadErr)
	}
	if diff := cmp.Diff(warn, res.Forecast.LoadWarnings); diff != "" {
		t.Errorf("LoadWarnings (-want +got):\n%s", diff)
	}
}

// steady returns n samples of a constant load, step apart, ending at end.
func steady(n int, step time.Duration, end time.Time) []forecast.Sample {
	s := make([]forecast.Sample, n)
	for i := range s {
		s[i] = forecast.Sample{At: end.Add(-time.Duration(n-1-i) * step), Value: 40 + float64(i%7)}
	}
	return s
}

func TestFitSchedule(t *testing.T) {
	tick := 15 * time.Second
	e := newEngine(t, parse(t, predictive), Options{Tick: tick, RefitDelay: 10 * time.Minute})
	want := func(now time.Time, wantOK bool, wantRefit bool) {
		t.Helper()
		r, ok := e.HistoryWanted(now)
		if ok != wantOK {
			t.Fatalf("HistoryWanted(%s) = %v, want %v", now.Sub(t0), ok, wantOK)
		}
		if !ok {
			return
		}
		// forecast.history (2h) up to one step before now, every tick
		w := HistoryRequest{Query: "lq", Start: now.Add(-2 * time.Hour), End: now.Add(-tick), Step: tick, Refit: wantRefit}
		if diff := cmp.Diff(w, r); diff != "" {
			t.Fatalf("HistoryWanted(%s) (-want +got):\n%s", now.Sub(t0), diff)
		}
	}
	want(t0, true, false)
	// The first fit's history failed to load: it starts without it.
	f, err := e.Fit(nil, errors.New("prometheus down"), t0)
	if err != nil || f.Samples != 0 || !f.Next.Equal(t0.Add(24*time.Hour+10*time.Minute)) {
		t.Fatalf("first fit: %+v, %v; want no samples, next refit at 24h10m", f, err)
	}
	want(t0, false, false)
	// Due RefitPeriod plus the delay after the first fit.
	want(t0.Add(24*time.Hour+10*time.Minute-time.Second), false, false)
	at := t0.Add(24*time.Hour + 10*time.Minute)
	want(at, true, true)
	// An empty history keeps the fit and is retried after RefitRetry.
	if f, err := e.Fit(nil, nil, at); err == nil || !f.Next.Equal(at.Add(RefitRetry)) {
		t.Fatalf("refit on no samples: %+v, %v; want an error and a retry in an hour", f, err)
	}
	want(at.Add(RefitRetry-time.Second), false, false)
	at = at.Add(RefitRetry)
	want(at, true, true)
	h := steady(480, tick, at.Add(-tick))
	f, err = e.Fit(h, nil, at)
	if err != nil || f.Samples != 480 || !f.Next.Equal(at.Add(RefitPeriod)) {
		t.Fatalf("refit: %+v, %v; want 480 samples, the next a day later", f, err)
	}
	want(at, false, false)
	if st := e.Step(input(3, 30, true), at).Forecast; st == nil || st.HistorySamples != 480 || !st.Fitted {
		t.Errorf("status after the refit %+v, want 480 history samples", st)
	}
}

func TestHistoryWantedWithoutASource(t *testing.T) {
	// A history shorter than a step has nothing to load: the first Step fits without it.
	p := parse(t, limited+`    forecast:
      load: {query: lq, perReplica: 10}
      history: 10s
`)
	e := newEngine(t, p, Options{Tick: 15 * time.Second})
	if _, ok := e.HistoryWanted(t0); ok {
		t.Error("HistoryWanted with a 10s history and a 15s step")
	}
	if st := e.Step(input(3, 30, true), t0).Forecast; st == nil || !st.Fitted {
		t.Errorf("status %+v, want a fitted forecaster", st)
	}
	// KeepLoad: the engine keeps the load itself.
	e = newEngine(t, parse(t, predictive), Options{KeepLoad: true})
	if _, ok := e.HistoryWanted(t0); ok {
		t.Error("HistoryWanted with KeepLoad")
	}
}

func TestSetPolicyRefitsOnlyAChangedForecast(t *testing.T) {
	e := newEngine(t, parse(t, predictive), Options{})
	if _, err := e.Fit(nil, nil, t0); err != nil {
		t.Fatal(err)
	}
	e.SetPolicy(parse(t, predictive)) // equal, another pointer
	if _, ok := e.HistoryWanted(t0); ok {
		t.Error("an unchanged forecast asks for history again")
	}
	changed := parse(t, predictive+"      quantile: 0.95\n")
	e.SetPolicy(changed)
	if r, ok := e.HistoryWanted(t0); !ok || r.Refit {
		t.Errorf("a changed forecast: HistoryWanted %+v, %v; want a first fit", r, ok)
	}
	e.SetPolicy(parse(t, limited))
	if st := e.Step(input(3, 30, true), t0).Forecast; st != nil {
		t.Errorf("a policy whose forecast was removed still forecasts: %+v", st)
	}
}

func TestKeepLoadRefitsDaily(t *testing.T) {
	// One sample a minute from t0. The first refit is due at t0 + 24h, on the samples of
	// the last forecast.history (2h) before it: 120.
	e := newEngine(t, parse(t, predictive), Options{Tick: time.Minute, KeepLoad: true})
	var last *ForecastStatus
	for now := t0; !now.After(t0.Add(24 * time.Hour)); now = now.Add(time.Minute) {
		in := input(3, 30, true)
		in.Load = &policy.Sample{Value: 30}
		st := e.Step(in, now).Forecast
		if now.Before(t0.Add(24*time.Hour)) && st.HistorySamples != 0 {
			t.Fatalf("refitted at %s, before a day", now.Sub(t0))
		}
		last = st
	}
	if last.HistorySamples != 120 {
		t.Errorf("refitted on %d samples, want 120", last.HistorySamples)
	}
}
