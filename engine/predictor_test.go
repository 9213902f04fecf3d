package engine

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// at is t0 plus seconds.
func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

// The gate's transitions through the predictor: a forecast that tracks the load stays
// on; one whose load exceeds its interval's Hi in more than maxError of the window's
// observations is gated off, with one change reported on the transition; it comes back
// once the window holds few enough misses.
func TestPredictorGate(t *testing.T) {
	spec := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.NewAutoFloat(10)}, Method: forecast.MethodHolt,
		Gate: &policy.GateSpec{MaxError: ptrTo(0.2), Window: &policy.Duration{Duration: 10 * time.Minute}}}
	step, h := time.Minute, 2*time.Minute
	pr, err := newPredictor(spec, step, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		Gated, Changed bool
	}
	var got []state
	minute := 0
	feed := func(n int, load func(int) float64) {
		for range n {
			pr.Observe(load(minute), true, t0.Add(time.Duration(minute)*step), h)
			g, c, _, _ := pr.Gate()
			if c || len(got) == 0 {
				got = append(got, state{g, c})
			}
			minute++
		}
	}
	// Steady load 100: Holt predicts it exactly, every residual is 0 and Hi = 100: closed.
	feed(30, func(int) float64 { return 100 })
	// The load jumps to 300 and stays. A miss is a load above Hi x 1.1 (the gate's slack,
	// the HPA's tolerance). The predictions made 2 minutes before minutes 30 and 31 are
	// 100 (Hi 100): misses. Holt (α 0.5, β 0.1 without history) then climbs to 300 over a
	// few minutes (at minute 30 its 2-step forecast is 200 + 2 x 10 = 220), its interval
	// still narrow from the zero residuals: a miss at minute 32 too (Hi 220, 242 < 300),
	// none at 33 (Hi 284: 312.4 > 300). The gate compares from minute 23 on (after the
	// warm-up), so at minute 31 its window (21, 31] holds 9 comparisons, 2 of them misses:
	// 0.22 > 0.2, gated at minute 31, once (3 of 10 at minute 32). Holt then overshoots
	// (Hi above 300): no more misses. At minute 40 the miss at minute 30 leaves the window
	// (30, 40]: 2 of 10 is not above 0.2, and the gate closes, once.
	feed(70, func(int) float64 { return 300 })
	want := []state{{false, false}, {true, true}, {false, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("gate transitions (-want +got):\n%s", diff)
	}
	in := pr.Observe(100, true, t0.Add(time.Duration(minute)*step), h)
	if in == nil || in.Gated || !in.PerReplicaKnown || in.PerReplica != 10 || in.Method != "holt" {
		t.Errorf("forecast input after recovery = %+v, want ungated, perReplica 10, holt", in)
	}
}

func ptrTo[T any](v T) *T { return &v }

// perReplica: auto learns load / (pods x ratio) wherever the binding metric sits in
// [0.05, 1.1] of its target (linear in the load), over the pods the metric averaged.
func TestPredictorLearn(t *testing.T) {
	spec := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.AutoFloat{Auto: true}}, Method: forecast.MethodHolt}
	inTol := policy.Decision{CurrentReplicas: 4, Metrics: []policy.MetricResult{
		{Name: "gpu", Ratio: 0.95, Proposal: 4}, {Name: "queue", Ratio: 0, Proposal: 0}}}
	pods := func(cur int32, ratio float64, withSample, missing, pending int) policy.Decision {
		return policy.Decision{CurrentReplicas: cur, Metrics: []policy.MetricResult{
			{Name: "gpu", Semantics: policy.SemanticsPods, Ratio: policy.Float(ratio), PodsWithSample: withSample, PodsMissing: missing, PodsPending: pending},
			{Name: "queue", Semantics: policy.SemanticsPods, Ratio: 0, PodsWithSample: withSample, PodsMissing: missing, PodsPending: pending}}}
	}
	tests := []struct {
		name    string
		dec     policy.Decision
		load    float64
		ok      bool
		wantOK  bool
		wantPer float64
	}{
		// 38 / (4 x 0.95) = 10
		{"within tolerance: learned", inTol, 38, true, true, 10},
		{"the load missing: nothing learned", inTol, 38, false, false, 0},
		{"zero load: nothing learned", inTol, 0, true, false, 0},
		{"a metric missing: nothing learned", policy.Decision{CurrentReplicas: 4, Metrics: []policy.MetricResult{
			{Name: "gpu", Ratio: 0.95, Proposal: 4}, {Name: "queue", Error: "timeout"}}}, 38, true, false, 0},
		{"pods starting under a non-Pods metric: nothing learned", policy.Decision{CurrentReplicas: 4, Metrics: []policy.MetricResult{
			{Name: "gpu", Ratio: 0.95, Proposal: 4, PodsMissing: 1}}}, 38, true, false, 0},
		{"above the tolerance band: saturated, nothing learned", policy.Decision{CurrentReplicas: 4, Metrics: []policy.MetricResult{
			{Name: "gpu", Ratio: 1.5, Proposal: 6}}}, 38, true, false, 0},
		// Well below target, linear: 20 / (10 x 0.5) = 4.
		{"half the target: learned", pods(10, 0.5, 10, 0, 0), 20, true, true, 4},
		// 6 pods starting report nothing and serve nothing: 38 / (4 x 0.95) = 10.
		{"pods starting under a Pods metric: over the pods with a sample", pods(10, 0.95, 4, 6, 0), 38, true, true, 10},
		{"a Pending pod: nothing learned", pods(10, 0.95, 4, 0, 1), 38, true, false, 0},
		// The band's upper edge 1.1 is in: 44 / (4 x 1.1) = 10.
		{"at the tolerance edge: learned", pods(4, 1.1, 4, 0, 0), 44, true, true, 10},
		{"just above the tolerance edge: nothing learned", pods(4, 1.1001, 4, 0, 0), 44, true, false, 0},
		// The lower edge 0.05 is in: 2 / (4 x 0.05) = 10.
		{"at 5 % of the target: learned", pods(4, 0.05, 4, 0, 0), 2, true, true, 10},
		{"below 5 % of the target: nothing learned", pods(4, 0.0499, 4, 0, 0), 2, true, false, 0},
		// The queue's ratio 2 is the binding metric and above the band.
		{"the queue above its target: nothing learned", policy.Decision{CurrentReplicas: 4, Metrics: []policy.MetricResult{
			{Name: "gpu", Ratio: 0.9}, {Name: "queue", Ratio: 2}}}, 38, true, false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := newPredictor(spec, time.Minute, 4*time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range learnMin {
				pr.Learn(tc.dec, tc.load, tc.ok)
			}
			per, ok := pr.PerReplica()
			if ok != tc.wantOK || (ok && math.Abs(per-tc.wantPer) > 1e-9) {
				t.Errorf("perReplica = %v, %v; want %v, %v", per, ok, tc.wantPer, tc.wantOK)
			}
		})
	}
	t.Run("one sample short of learnMin: not known", func(t *testing.T) {
		pr, _ := newPredictor(spec, time.Minute, 4*time.Minute, nil)
		for range learnMin - 1 {
			pr.Learn(inTol, 38, true)
		}
		if _, ok := pr.PerReplica(); ok {
			t.Error("known before learnMin samples")
		}
	})
	t.Run("the median ignores a spike", func(t *testing.T) {
		pr, _ := newPredictor(spec, time.Minute, 4*time.Minute, nil)
		// 9 samples of 10 per replica and one of 100: the median is 10.
		for range 9 {
			pr.Learn(inTol, 38, true)
		}
		pr.Learn(inTol, 380, true)
		if per, ok := pr.PerReplica(); !ok || per != 10 {
			t.Errorf("perReplica = %v, %v; want 10, true", per, ok)
		}
	})
	t.Run("a fixed perReplica is not learned", func(t *testing.T) {
		fixed := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.NewAutoFloat(3.5)}}
		pr, _ := newPredictor(fixed, time.Minute, 4*time.Minute, nil)
		pr.Learn(inTol, 38, true)
		if per, ok := pr.PerReplica(); !ok || per != 3.5 {
			t.Errorf("perReplica = %v, %v; want 3.5, true", per, ok)
		}
	})
}

// Observe predicts only once the forecaster is warm (20 samples plus the horizon's steps,
// and a gate window: here 10 minutes); between samples it returns the forecast made at the
// last one, for less than a horizon.
func TestPredictorObserve(t *testing.T) {
	window := policy.Duration{Duration: 10 * time.Minute}
	spec := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.NewAutoFloat(1)}, Method: forecast.MethodHolt,
		Gate: &policy.GateSpec{Window: &window}}
	h := 3 * time.Minute
	pr, err := newPredictor(spec, time.Minute, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in := pr.Observe(0, false, t0, h); in != nil {
		t.Errorf("forecast before any load = %+v, want nil", in)
	}
	// A load rising 10 a minute: Holt follows the trend. Warm after 20 + 3 samples.
	var in *policy.ForecastInput
	for m := range 60 {
		in = pr.Observe(float64(10*m), true, at(60*m), h)
		if (in != nil) != (m >= 22) {
			t.Fatalf("minute %d (sample %d): forecast %v, want one from the 23rd sample", m, m+1, in)
		}
	}
	// Last sample 590 at minute 59: the forecast 3 minutes on is about 620.
	if in.Point < 615 || in.Point > 625 {
		t.Errorf("forecast 3 minutes after the last sample = %+v, want a point near 620", in)
	}
	// 30 s later, no sample: the same forecast.
	made := *in
	if again := pr.Observe(0, false, at(60*59+30), h); again == nil || *again != made {
		t.Errorf("forecast between samples = %+v, want %+v", again, made)
	}
	// One horizon after the last sample, still none: no forecast.
	if stale := pr.Observe(0, false, at(60*62), h); stale != nil {
		t.Errorf("forecast one horizon after the last sample = %+v, want nil", stale)
	}
}

// Refit replaces the forecaster and keeps the rest: the gate, the learner.
func TestPredictorRefit(t *testing.T) {
	spec := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.AutoFloat{Auto: true}}, Method: forecast.MethodHolt,
		Gate: &policy.GateSpec{MaxError: ptrTo(0.2), Window: &policy.Duration{Duration: 10 * time.Minute}}}
	h := 2 * time.Minute
	pr, err := newPredictor(spec, time.Minute, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	inTol := policy.Decision{CurrentReplicas: 4, Metrics: []policy.MetricResult{{Name: "gpu", Ratio: 1, Proposal: 4}}}
	var history []forecast.Sample
	for m := range 33 {
		// 100, then 300 from minute 30: the gate opens at minute 31 (TestPredictorGate)
		load := 100.0
		if m >= 30 {
			load = 300
		}
		history = append(history, forecast.Sample{At: at(60 * m), Value: load})
		pr.Observe(load, true, at(60*m), h)
		pr.Learn(inTol, 40, true)
	}
	gated, _, _, _ := pr.Gate()
	if !gated {
		t.Fatal("gate closed before the refit, want open")
	}
	if err := pr.Refit(history); err != nil {
		t.Fatal(err)
	}
	gated, _, _, _ = pr.Gate()
	per, known := pr.PerReplica()
	in := pr.Observe(300, true, at(60*33), h)
	if !gated || !known || per != 10 || in == nil || !in.Gated {
		t.Errorf("after the refit: gated %v, perReplica %v %v, forecast %+v; want the gate open, 10 learned, a forecast", gated, per, known, in)
	}
}

// method: auto compares its methods at the quantile the policy plans for: the
// predictor passes the policy's quantile (0.9 when unset) to the forecaster, and keeps it
// across a Refit. The load alternates 10 and 190 so that every method has residuals and
// auto compares them (20 residuals after 20 + 2 samples).
func TestPredictorAutoComparesAtThePlannedQuantile(t *testing.T) {
	cases := []struct {
		name     string
		quantile *float64
		want     string
	}{
		{name: "quantile unset: the default 0.9", want: "pinball loss at quantile 0.9 "},
		{name: "quantile 0.75", quantile: ptrTo(0.75), want: "pinball loss at quantile 0.75 "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.NewAutoFloat(10)}, Method: forecast.MethodAuto,
				Quantile: tc.quantile}
			h := 2 * time.Minute
			pr, err := newPredictor(spec, time.Minute, h, nil)
			if err != nil {
				t.Fatal(err)
			}
			var history []forecast.Sample
			for m := range 60 {
				load := 10 + 180*float64(m%2)
				history = append(history, forecast.Sample{At: at(60 * m), Value: load})
				pr.Observe(load, true, at(60*m), h)
			}
			check := func(when string) {
				t.Helper()
				a, ok := pr.f.(*forecast.Auto)
				if !ok {
					t.Fatalf("%s: forecaster %T, want *forecast.Auto", when, pr.f)
				}
				if m, why := a.Chosen(); m == "" || !strings.Contains(why, tc.want) {
					t.Errorf("%s: Chosen() = %q, %q; want a method and %q", when, m, why, tc.want)
				}
			}
			check("after 60 samples")
			if err := pr.Refit(history); err != nil {
				t.Fatal(err)
			}
			check("after the refit")
		})
	}
}

// A forecaster is trusted only after a whole gate window of samples (history included):
// without history, a policy scales as the HPA would for that long.
func TestPredictorTrustsAfterAGateWindow(t *testing.T) {
	spec := &policy.Forecast{Load: policy.Load{Query: "q", PerReplica: policy.NewAutoFloat(1)}, Method: forecast.MethodHolt}
	h := 3 * time.Minute
	pr, err := newPredictor(spec, time.Minute, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The default window is 2h: 120 one-minute samples.
	for m := range 130 {
		in := pr.Observe(float64(100+m), true, at(60*m), h)
		if (in != nil) != (m >= 119) {
			t.Fatalf("minute %d (sample %d): forecast %v, want one from the 120th sample", m, m+1, in)
		}
	}
	// With two hours of history, the first sample already forecasts.
	var history []forecast.Sample
	for m := range 120 {
		history = append(history, forecast.Sample{At: at(60 * m), Value: float64(100 + m)})
	}
	pr, err = newPredictor(spec, time.Minute, h, history)
	if err != nil {
		t.Fatal(err)
	}
	if in := pr.Observe(220, true, at(60*120), h); in == nil {
		t.Error("no forecast at the first sample after 2h of history, want one")
	}
}
