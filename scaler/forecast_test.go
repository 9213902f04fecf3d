package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

func TestForecastReplicas(t *testing.T) {
	now := epoch.Add(time.Hour)
	spec := &policy.Forecast{Load: policy.Load{Query: "load", PerReplica: policy.NewAutoFloat(10)}}
	off := &policy.Forecast{Load: policy.Load{Query: "load", PerReplica: policy.NewAutoFloat(10)}, Method: forecast.MethodOff}
	mape := 0.42
	tests := []struct {
		name    string
		spec    *policy.Forecast
		last    policy.Decision
		st      *ForecastStatus
		want    int32
		wantErr error
		wantMsg string
	}{
		{name: "no forecast block", spec: nil, wantErr: ErrForecastNotConfigured},
		{name: "method off", spec: off, wantErr: ErrForecastNotConfigured},
		{name: "no tick yet", spec: spec, wantErr: ErrForecastMissing},
		{
			name: "an ungated proposal is served", spec: spec, st: &ForecastStatus{},
			last: policy.Decision{Time: now.Add(-time.Second), Forecast: &policy.ForecastResult{Value: 55, PerReplica: 10, Proposal: 6}},
			want: 6,
		},
		{
			// max(2 x 15 s, 2 m) = 2 m: exactly 2 m old still counts
			name: "a proposal as old as the staleness is served", spec: spec, st: &ForecastStatus{},
			last: policy.Decision{Time: now.Add(-2 * time.Minute), Forecast: &policy.ForecastResult{Proposal: 6}},
			want: 6,
		},
		{
			name: "a proposal older than the staleness is stale", spec: spec, st: &ForecastStatus{},
			last:    policy.Decision{Time: now.Add(-2*time.Minute - time.Millisecond), Forecast: &policy.ForecastResult{Proposal: 6}},
			wantErr: ErrForecastStale,
		},
		{
			name: "gated", spec: spec, st: &ForecastStatus{Error: &mape},
			last:    policy.Decision{Time: now, Forecast: &policy.ForecastResult{Gated: true, Reason: policy.ReasonForecastGated}},
			wantErr: ErrForecastGated, wantMsg: "its error 0.420 is above gate.maxError 0.3",
		},
		{
			name: "perReplica not learned", spec: spec, st: &ForecastStatus{},
			last:    policy.Decision{Time: now, Forecast: &policy.ForecastResult{Reason: policy.ReasonForecastLearning}},
			wantErr: ErrForecastLearning,
		},
		{
			name: "warming up", spec: spec, st: &ForecastStatus{},
			last: policy.Decision{Time: now}, wantErr: ErrForecastLearning,
		},
		{
			name: "the load is missing", spec: spec, st: &ForecastStatus{LoadError: "empty result"},
			last: policy.Decision{Time: now}, wantErr: ErrForecastMissing, wantMsg: "empty result",
		},
		{
			// no load ahead: ceil(0 / 10) = 0 replicas, served as such
			name: "a forecast of no load proposes 0", spec: spec, st: &ForecastStatus{},
			last: policy.Decision{Time: now, Forecast: &policy.ForecastResult{Value: 0, PerReplica: 10, Proposal: 0}},
			want: 0,
		},
		{
			name: "a negative forecast has no proposal", spec: spec, st: &ForecastStatus{},
			last:    policy.Decision{Time: now, Forecast: &policy.ForecastResult{Value: -3, PerReplica: 10}},
			wantErr: ErrForecastMissing,
		},
		{
			name: "a NaN forecast has no proposal", spec: spec, st: &ForecastStatus{},
			last:    policy.Decision{Time: now, Forecast: &policy.ForecastResult{Value: policy.Float(math.NaN()), PerReplica: 10}},
			wantErr: ErrForecastMissing,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := policy.Policy{Name: "llm", Forecast: tc.spec}
			tg := &policyState{}
			tg.status.last, tg.status.forecast = tc.last, tc.st
			c := &Controller{opts: Options{Interval: 15 * time.Second, Staleness: 2 * time.Minute},
				policies: []policy.Policy{p}, targets: map[string]*policyState{"llm": tg}}
			got, err := c.ForecastReplicas("llm", now)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q, want it to say %q", err, tc.wantMsg)
			}
			if got != tc.want {
				t.Errorf("replicas %d, want %d", got, tc.want)
			}
		})
	}
}

// The decision record carries the forecast: the decision's part and what went into it.
func TestAnnotationHasTheForecast(t *testing.T) {
	dec := policy.Decision{CurrentReplicas: 2, DesiredReplicas: 4, Reason: policy.ReasonDesiredWithinRange, Metric: policy.ForecastMetric,
		Proposal: 4, Forecast: &policy.ForecastResult{Method: "holt", Point: 35, Value: 38, PerReplica: 10, Proposal: 4, Won: true}}
	fst := &ForecastStatus{ForecastResult: dec.Forecast, HorizonSeconds: 3, StartupSeconds: 2, StartupMeasured: true, HistorySamples: 30}
	var r struct {
		Metric   string `json:"metric"`
		Forecast struct {
			Method          string  `json:"method"`
			Proposal        int32   `json:"proposal"`
			Won             bool    `json:"won"`
			HorizonSeconds  float64 `json:"horizonSeconds"`
			StartupSeconds  float64 `json:"startupSeconds"`
			StartupMeasured bool    `json:"startupMeasured"`
			HistorySamples  int     `json:"historySamples"`
		} `json:"forecast"`
	}
	if err := json.Unmarshal([]byte(annotationFor(dec, fst, nil, nil, false)), &r); err != nil {
		t.Fatal(err)
	}
	f := r.Forecast
	if r.Metric != "forecast" || f.Method != "holt" || f.Proposal != 4 || !f.Won || f.HorizonSeconds != 3 || f.StartupSeconds != 2 ||
		!f.StartupMeasured || f.HistorySamples != 30 {
		t.Errorf("record = %+v, want the forecast's part", r)
	}
}

// fakeHistory answers every range query with n samples of load 100, or fails with err; it
// records the end of each query.
type fakeHistory struct {
	n    int
	err  error
	ends []time.Time
}

func (f *fakeHistory) History(_ context.Context, _ string, start, end time.Time, step, _ time.Duration) ([]forecast.Sample, error) {
	f.ends = append(f.ends, end)
	if f.err != nil {
		return nil, f.err
	}
	out := make([]forecast.Sample, f.n)
	for i := range out {
		out[i] = forecast.Sample{At: start.Add(time.Duration(i) * step), Value: 100}
	}
	return out, nil
}

// The controller loads the history the engine asks for: at the first sync, then
// engine.RefitPeriod after it (plus the policy's stagger), each range ending one interval
// before now; a refit whose history fails is an event, and is retried an hour later.
func TestRefit(t *testing.T) {
	p := &policy.Policy{Name: "llm", Forecast: &policy.Forecast{Load: policy.Load{Query: "load", PerReplica: policy.NewAutoFloat(10)},
		Method: forecast.MethodHolt}}
	fh := &fakeHistory{n: 30}
	rec := record.NewFakeRecorder(10)
	c := &Controller{opts: Options{Interval: time.Minute, Staleness: 2 * time.Minute},
		deps: Deps{History: fh, Clock: clocktesting.NewFakeClock(epoch), Recorder: rec, Metrics: NewMetrics(prometheus.NewRegistry())}}
	c.writer = kubeWriter{recorder: rec}
	tg := &policyState{}
	ctx := context.Background()
	if err := c.ensureEngine(p, tg); err != nil {
		t.Fatal(err)
	}
	// A tick's part of the history: observe starts or takes the load, decide hands it to
	// the engine, act reports it.
	tick := func(now time.Time) {
		r := historyPass(c, p, tg)
		c.observeHistory(ctx, r, now)
		r.handHistory(now)
		r.reportHistory(ctx)
	}
	// A tick at now, then, once the history load it started in the background is done,
	// the next tick's that hands it over (at the same instant: the schedule is the test's).
	fitAt := func(now time.Time) {
		tick(now)
		if h := tg.history; h != nil {
			<-h.done
			tick(now)
		}
	}
	fitAt(epoch)
	if len(fh.ends) != 1 {
		t.Fatalf("built with %d history queries, want 1", len(fh.ends))
	}
	first := epoch.Add(engine.RefitPeriod + engine.Stagger(p.Name))
	steps := []struct {
		at        time.Time
		fail      bool
		queries   int // history queries so far
		wantEvent string
	}{
		{at: first.Add(-time.Second), queries: 1}, // not yet
		{at: first, queries: 2},                   // refitted
		{at: first.Add(engine.RefitPeriod), fail: true, queries: 3, wantEvent: ReasonForecastRefitFailed}, // retry in 1 h
		{at: first.Add(engine.RefitPeriod + engine.RefitRetry - time.Second), queries: 3},
		{at: first.Add(engine.RefitPeriod + engine.RefitRetry), queries: 4},
	}
	for i, s := range steps {
		fh.err = nil
		if s.fail {
			fh.err = errors.New("prometheus down")
		}
		before := len(fh.ends)
		fitAt(s.at)
		if len(fh.ends) != s.queries {
			t.Errorf("step %d at %s: %d history queries, want %d", i, s.at.Sub(epoch), len(fh.ends), s.queries)
		}
		if n := len(fh.ends); n > before && !fh.ends[n-1].Equal(s.at.Add(-time.Minute)) {
			t.Errorf("step %d: the history ends at %s, want one interval before now", i, fh.ends[n-1].Sub(epoch))
		}
		select {
		case e := <-rec.Events:
			if s.wantEvent == "" || !strings.Contains(e, s.wantEvent) {
				t.Errorf("step %d: event %q, want %q", i, e, s.wantEvent)
			}
		default:
			if s.wantEvent != "" {
				t.Errorf("step %d: no event, want %s", i, s.wantEvent)
			}
		}
	}
}

// historyPass is a pass of p on tg that writes, on a target named as the policy.
func historyPass(c *Controller, p *policy.Policy, tg *policyState) *pass {
	return &pass{c: c, p: p, t: tg, obs: observed{ref: &corev1.ObjectReference{Name: p.Name}}, writes: true, leading: true,
		timer: c.phaseTimer()}
}

// blockingHistory answers a range query with n samples once release is closed.
type blockingHistory struct {
	n       int
	release chan struct{}
}

func (b *blockingHistory) History(ctx context.Context, _ string, start, _ time.Time, step, _ time.Duration) ([]forecast.Sample, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	out := make([]forecast.Sample, b.n)
	for i := range out {
		out[i] = forecast.Sample{At: start.Add(time.Duration(i) * step), Value: 100}
	}
	return out, nil
}

// A history that takes long to load never holds a tick: fit returns at once, the engine
// forecasts nothing while it loads (its status says so) and decides on its metrics, and
// the first tick after the load completes fits the forecaster on it.
func TestHistoryLoadsInTheBackground(t *testing.T) {
	five := policy.MustQuantity("5")
	p := &policy.Policy{Name: "llm", Target: policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "a", Name: "llm"},
		MaxReplicas: 10, Metrics: []policy.Metric{{Name: "q", Query: "q", Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &five}}},
		Forecast: &policy.Forecast{Load: policy.Load{Query: "load", PerReplica: policy.NewAutoFloat(10)}, Method: forecast.MethodHolt}}
	bh := &blockingHistory{n: 30, release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	c := &Controller{opts: Options{Interval: time.Minute, Staleness: 2 * time.Minute},
		deps: Deps{History: bh, Clock: clocktesting.NewFakeClock(epoch), Recorder: record.NewFakeRecorder(10), Metrics: NewMetrics(reg)}}
	tg := &policyState{}
	if err := c.ensureEngine(p, tg); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// A tick's observe (of the history: the rest is given) and decide.
	tick := func(now time.Time) engine.Result {
		r := historyPass(c, p, tg)
		r.obs.in = policy.Observation{SpecReplicas: 2, StatusReplicas: 2,
			Pods:    []policy.Pod{{Name: "a", Phase: policy.PodRunning, Ready: true}, {Name: "b", Phase: policy.PodRunning, Ready: true}},
			Metrics: []policy.Sample{{PerPod: map[string]float64{"a": 10, "b": 10}}}}
		r.in.Load = &policy.Sample{Value: 100}
		c.observeHistory(ctx, r, now)
		r.decide(now)
		return r.res
	}
	for i := range 3 { // three ticks while Prometheus is slow
		now := epoch.Add(time.Duration(i) * time.Minute)
		res := tick(now)
		if res.Forecast == nil || !res.Forecast.HistoryLoading || res.Forecast.Fitted || res.Decision.Forecast != nil {
			t.Fatalf("tick %d while the history loads: forecast %+v, decision forecast %v; want loading, no forecast", i, res.Forecast, res.Decision.Forecast)
		}
		if res.Decision.DesiredReplicas != 4 {
			t.Errorf("tick %d: desired %d, want 4 (the metric's, 2 x 10/5)", i, res.Decision.DesiredReplicas)
		}
	}
	h := tg.history
	if h == nil {
		t.Fatal("no history load in flight")
	}
	close(bh.release)
	<-h.done
	res := tick(epoch.Add(3 * time.Minute))
	if res.Forecast == nil || res.Forecast.HistoryLoading || !res.Forecast.Fitted || res.Forecast.HistorySamples != 30 {
		t.Errorf("the tick after the load: forecast %+v, want fitted on 30 samples", res.Forecast)
	}
	if tg.history != nil {
		t.Error("the load is still in flight after its hand-over")
	}
	var m dto.Metric
	if err := c.deps.Metrics.TickPhaseDuration.WithLabelValues(tickPhaseHistory).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("tick phase history: %d loads timed, want 1", n)
	}
}

// horizon: auto reaches as far past the start-up as the load query trails demand, and a
// reload that changes the query changes the horizon.
func TestEngineHorizonFollowsTheLoadQuerysLag(t *testing.T) {
	file := func(query string) *policy.Policy {
		t.Helper()
		f, err := policy.Parse(strings.NewReader(`policies:
  - name: llm
    target: {apiVersion: apps/v1, kind: Deployment, namespace: a, name: llm}
    minReplicas: 1
    maxReplicas: 10
    metrics: [{name: q, query: q, target: {type: AverageValue, averageValue: 5}}]
    forecast: {load: {query: '` + query + `', perReplica: 10}}
`))
		if err != nil {
			t.Fatal(err)
		}
		return &f.Policies[0]
	}
	c := &Controller{opts: Options{Interval: 15 * time.Second}}
	tg := &policyState{}
	// 180 s default start-up + one 15 s tick + the lag, before any pod is measured.
	steps := []struct {
		query string
		want  time.Duration
	}{
		{query: `sum(rate(gateway_requests_total[2m]))`, want: 180*time.Second + 15*time.Second + time.Minute},
		{query: `sum(vllm:num_requests_waiting)`, want: 180*time.Second + 15*time.Second},
	}
	for _, s := range steps {
		if err := c.ensureEngine(file(s.query), tg); err != nil {
			t.Fatal(err)
		}
		if got, ok := tg.eng.Horizon(); !ok || got != s.want {
			t.Errorf("load %s: horizon %s (%v), want %s", s.query, got, ok, s.want)
		}
	}
}
