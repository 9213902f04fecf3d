package policy

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// queuePolicy is a one-metric policy (per-pod queue, target 5) with the given behavior.
func queuePolicy(b *Behavior) *Policy {
	return &Policy{Name: "p", MinReplicas: i32(1), MaxReplicas: 20, Metrics: []Metric{avg("queue", "5")}, Behavior: b}
}

// widePolicy is queuePolicy with maxReplicas 1000 and the given rules (nil: a 0 s window
// and the default rate policies).
func widePolicy(up, down *Rules) *Policy {
	if up == nil {
		up = &Rules{StabilizationWindowSeconds: i32(0)}
	}
	if down == nil {
		down = &Rules{StabilizationWindowSeconds: i32(0)}
	}
	p := queuePolicy(&Behavior{ScaleUp: up, ScaleDown: down})
	p.MaxReplicas = 1000
	return p
}

// queueAt observes cur ready pods, each with a queue of q: the Pods metric then proposes
// ceil(q/5 * cur) outside tolerance.
func queueAt(cur int32, q float64) Observation {
	pods := make([]Pod, cur)
	s := map[string]float64{}
	for i := range pods {
		name := string(rune('a' + i))
		pods[i] = Pod{Name: name, Phase: PodRunning, Ready: true}
		s[name] = q
	}
	return Observation{SpecReplicas: cur, StatusReplicas: cur, Pods: pods, Metrics: []Sample{{PerPod: s}}}
}

// zeroWindows is a behavior with no stabilization either way and the default rate policies.
func zeroWindows() *Behavior {
	return &Behavior{ScaleUp: &Rules{StabilizationWindowSeconds: i32(0)}, ScaleDown: &Rules{StabilizationWindowSeconds: i32(0)}}
}

type outcome struct {
	Desired  int32
	Reason   Reason
	Proposal int32
	Clamps   []Clamp
}

func outcomeOf(d Decision) outcome {
	return outcome{Desired: d.DesiredReplicas, Reason: d.Reason, Proposal: d.Proposal, Clamps: d.Clamps}
}

// Several metrics, and missing ones.
func TestSeveralMetrics(t *testing.T) {
	p := &Policy{Name: "p", MinReplicas: i32(1), MaxReplicas: 20, Behavior: zeroWindows(),
		Metrics: []Metric{avg("queue", "5"), avg("gpu", "70"), val("latency", "4")}}
	pods := readyPods("a", "b", "c", "d")
	tests := []struct {
		name       string
		samples    []Sample
		want       outcome
		wantMetric string
	}{
		{
			// queue 2.0 -> 8, gpu 35/70 -> 2, latency 6/4 * 4 ready -> 6: the largest wins
			name:       "the largest proposal wins",
			samples:    []Sample{perPod("a", 10, "b", 10, "c", 10, "d", 10), perPod("a", 35, "b", 35, "c", 35, "d", 35), scalar(6)},
			want:       outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
			wantMetric: "queue",
		},
		{
			// gpu 140/70 -> 8 and latency 8/4 * 4 -> 8 tie: the first in policy order wins
			name:       "a tie goes to the first metric",
			samples:    []Sample{perPod("a", 5, "b", 5, "c", 5, "d", 5), perPod("a", 140, "b", 140, "c", 140, "d", 140), scalar(8)},
			want:       outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
			wantMetric: "gpu",
		},
		{
			name:    "every metric missing holds",
			samples: []Sample{failed("timeout"), failed("timeout"), failed("no data")},
			want:    outcome{Desired: 4, Reason: ReasonFailedGetMetric},
		},
		{
			// queue 0.2 -> 1 and latency 0.25 -> 1 would scale down, but gpu is missing
			name:    "a missing metric blocks a scale-down",
			samples: []Sample{perPod("a", 1, "b", 1, "c", 1, "d", 1), failed("timeout"), scalar(1)},
			want:    outcome{Desired: 4, Reason: ReasonFailedGetMetric},
		},
		{
			// queue 2.0 -> 8 even with gpu missing: a scale-up goes ahead
			name:       "a missing metric does not block a scale-up",
			samples:    []Sample{perPod("a", 10, "b", 10, "c", 10, "d", 10), failed("timeout"), scalar(1)},
			want:       outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
			wantMetric: "queue",
		},
		{
			// queue at target -> 4 = current; gpu missing: no scale-down, so proceed at 4
			name:       "a missing metric with the rest at current proceeds at current",
			samples:    []Sample{perPod("a", 5, "b", 5, "c", 5, "d", 5), failed("timeout"), scalar(4)},
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: "queue",
		},
		{
			name:    "fewer samples than metrics count as missing",
			samples: []Sample{perPod("a", 1, "b", 1, "c", 1, "d", 1)},
			want:    outcome{Desired: 4, Reason: ReasonFailedGetMetric},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := Observation{SpecReplicas: 4, StatusReplicas: 4, Pods: pods, Metrics: tc.samples}
			d, _ := Decide(p, in, seasoned(), at(0))
			if diff := cmp.Diff(tc.want, outcomeOf(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if d.Metric != tc.wantMetric {
				t.Errorf("winning metric = %q, want %q", d.Metric, tc.wantMetric)
			}
		})
	}
}

func TestMissingMetricsRecordNoRecommendation(t *testing.T) {
	p := queuePolicy(zeroWindows())
	hist := seasoned()
	in := queueAt(4, 0)
	in.Metrics = []Sample{failed("timeout")}
	_, got := Decide(p, in, hist, at(0))
	// The HPA returns before normalizing, so the failed sync leaves no recommendation.
	if n := len(got.Recommendations); n != 1 {
		t.Errorf("recommendations = %d, want 1 (only the initial one)", n)
	}
}

// A pod of the target is also another policy's target's: like the HPA (AmbiguousSelector),
// Decide computes no metric and holds the current replicas, wherever it would compute
// them. Where the HPA computes none (replicas out of range, a zero it did not set), the
// same rules apply as without the overlap.
func TestAmbiguousSelector(t *testing.T) {
	zeroMin := &Policy{Name: "p", MinReplicas: i32(0), MaxReplicas: 20, Metrics: []Metric{val("rps", "5")}}
	scaledToZero := History{Recommendations: []Recommendation{{0, at(-1000)}}, ScaledToZero: true}
	tests := []struct {
		name string
		p    *Policy
		in   Observation
		hist History
		want outcome
	}{
		{
			// queue 10 / 5 * 4 = 8 without the overlap
			name: "a scale-up is held",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(4, 10),
			want: outcome{Desired: 4, Reason: ReasonAmbiguousSelector},
		},
		{
			// queue 1 / 5 * 4 = 0.8 -> 1 without the overlap
			name: "a scale-down is held",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(4, 1),
			want: outcome{Desired: 4, Reason: ReasonAmbiguousSelector},
		},
		{
			name: "above maxReplicas still goes to max, computing no metric",
			p:    queuePolicy(nil),
			in:   queueAt(25, 10),
			want: outcome{Desired: 20, Reason: ReasonTooManyReplicas, Clamps: []Clamp{{ReasonTooManyReplicas, 25, 20}}},
		},
		{
			name: "below minReplicas still goes to min, computing no metric",
			p:    &Policy{Name: "p", MinReplicas: i32(3), MaxReplicas: 20, Metrics: []Metric{avg("queue", "5")}},
			in:   queueAt(2, 0),
			want: outcome{Desired: 3, Reason: ReasonTooFewReplicas, Clamps: []Clamp{{ReasonTooFewReplicas, 2, 3}}},
		},
		{
			name: "a zero set by someone else stays scaling disabled",
			p:    zeroMin,
			in:   Observation{SpecReplicas: 0, Metrics: []Sample{scalar(50)}},
			want: outcome{Desired: 0, Reason: ReasonScalingDisabled},
		},
		{
			// ceil(50 / 5) = 10, limited to 4, without the overlap
			name: "the zero the autoscaler set is held",
			p:    zeroMin,
			in:   Observation{SpecReplicas: 0, Metrics: []Sample{scalar(50)}},
			hist: scaledToZero,
			want: outcome{Desired: 0, Reason: ReasonAmbiguousSelector},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := tc.hist
			if hist.Recommendations == nil {
				hist = seasoned()
			}
			n := len(hist.Recommendations)
			in := tc.in
			in.AmbiguousSelector = true
			d, got := Decide(tc.p, in, hist, at(0))
			if diff := cmp.Diff(tc.want, outcomeOf(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if len(d.Metrics) != 0 {
				t.Errorf("metrics computed: %+v, want none", d.Metrics)
			}
			// The HPA returns before normalizing: the held sync leaves no recommendation.
			if len(got.Recommendations) != n {
				t.Errorf("recommendations = %d, want %d (none added)", len(got.Recommendations), n)
			}
		})
	}
}

// Out-of-range current replicas, and zero.
func TestLimitsWithoutMetrics(t *testing.T) {
	missing := func(cur int32) Observation {
		in := queueAt(cur, 0)
		in.Metrics = []Sample{failed("timeout")}
		return in
	}
	tests := []struct {
		name string
		p    *Policy
		in   Observation
		hist History
		want outcome
	}{
		{
			name: "above maxReplicas goes to max without metrics",
			p:    queuePolicy(nil),
			in:   missing(25),
			want: outcome{Desired: 20, Reason: ReasonTooManyReplicas, Clamps: []Clamp{{ReasonTooManyReplicas, 25, 20}}},
		},
		{
			name: "at maxReplicas computes metrics",
			p:    queuePolicy(nil),
			in:   missing(20),
			want: outcome{Desired: 20, Reason: ReasonFailedGetMetric},
		},
		{
			name: "below minReplicas goes to min without metrics",
			p:    &Policy{Name: "p", MinReplicas: i32(3), MaxReplicas: 20, Metrics: []Metric{avg("queue", "5")}},
			in:   missing(2),
			want: outcome{Desired: 3, Reason: ReasonTooFewReplicas, Clamps: []Clamp{{ReasonTooFewReplicas, 2, 3}}},
		},
		{
			name: "at minReplicas computes metrics",
			p:    &Policy{Name: "p", MinReplicas: i32(3), MaxReplicas: 20, Metrics: []Metric{avg("queue", "5")}},
			in:   missing(3),
			want: outcome{Desired: 3, Reason: ReasonFailedGetMetric},
		},
		{
			name: "zero replicas set by someone else disable scaling",
			p:    &Policy{Name: "p", MinReplicas: i32(0), MaxReplicas: 20, Metrics: []Metric{val("rps", "5")}},
			in:   Observation{SpecReplicas: 0, Metrics: []Sample{scalar(50)}},
			want: outcome{Desired: 0, Reason: ReasonScalingDisabled},
		},
		{
			// ceil(50000 / 5000) = 10, limited by the behavior-less max(2*0, 4) = 4
			name: "zero replicas set by the autoscaler scale up on a scalar metric",
			p:    &Policy{Name: "p", MinReplicas: i32(0), MaxReplicas: 20, Metrics: []Metric{val("rps", "5")}},
			in:   Observation{SpecReplicas: 0, Metrics: []Sample{scalar(50)}},
			hist: History{Recommendations: []Recommendation{{0, at(-1000)}}, ScaledToZero: true},
			want: outcome{Desired: 4, Reason: ReasonScaleUpLimit, Proposal: 10, Clamps: []Clamp{{ReasonScaleUpLimit, 10, 4}}},
		},
		{
			// minReplicas was raised to 2 while at zero: ceil(1000/5000) = 1 is raised to 2
			name: "scaling from zero goes to at least minReplicas",
			p:    &Policy{Name: "p", MinReplicas: i32(2), MaxReplicas: 20, Metrics: []Metric{val("rps", "5")}},
			in:   Observation{SpecReplicas: 0, Metrics: []Sample{scalar(1)}},
			hist: History{Recommendations: []Recommendation{{0, at(-1000)}}, ScaledToZero: true},
			want: outcome{Desired: 2, Reason: ReasonTooFewReplicas, Proposal: 1, Clamps: []Clamp{{ReasonTooFewReplicas, 1, 2}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hist := tc.hist
			if hist.Recommendations == nil {
				hist = seasoned()
			}
			d, _ := Decide(tc.p, tc.in, hist, at(0))
			if diff := cmp.Diff(tc.want, outcomeOf(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

// Behavior.
func TestBehavior(t *testing.T) {
	rec := func(r int32, s int) Recommendation { return Recommendation{Replicas: r, At: at(s)} }
	up := func(change int32, s int) ScaleEvent { return ScaleEvent{Change: change, At: at(s)} }
	tests := []struct {
		name string
		p    *Policy
		in   Observation
		hist History
		want outcome
	}{
		{
			// The first sync records current (10) at now; the default 300 s scale-down
			// window then holds the proposal of 2 at 10.
			name: "first sync holds a scale-down through the initial recommendation",
			p:    queuePolicy(&Behavior{}),
			in:   queueAt(10, 1),
			want: outcome{Desired: 10, Reason: ReasonScaleDownStabilized, Proposal: 2, Clamps: []Clamp{{ReasonScaleDownStabilized, 2, 10}}},
		},
		{
			// With a 0 s window the initial recommendation (at now, not after now) is out
			// of the window: 10 -> 2, within the default 100% per 15 s.
			name: "first sync with a zero scale-down window scales down",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(10, 1),
			want: outcome{Desired: 2, Reason: ReasonDesiredWithinRange, Proposal: 2},
		},
		{
			// A recommendation 299 s old is inside the 300 s window: max(2, 8) = 8.
			name: "scale-down stabilization takes the max inside the window",
			p:    queuePolicy(&Behavior{}),
			in:   queueAt(10, 1),
			hist: seasoned(rec(8, -299)),
			want: outcome{Desired: 8, Reason: ReasonScaleDownStabilized, Proposal: 2, Clamps: []Clamp{{ReasonScaleDownStabilized, 2, 8}}},
		},
		{
			// Exactly 300 s old is not after the cutoff: out of the window.
			name: "a recommendation exactly one window old no longer holds the scale-down",
			p:    queuePolicy(&Behavior{}),
			in:   queueAt(10, 1),
			hist: seasoned(rec(8, -300)),
			want: outcome{Desired: 2, Reason: ReasonDesiredWithinRange, Proposal: 2},
		},
		{
			// The behavior-less path keeps a recommendation exactly 300 s old (it drops only
			// those before the cutoff): max(2, 8) = 8.
			name: "without behavior a recommendation exactly one window old still holds",
			p:    queuePolicy(nil),
			in:   queueAt(10, 1),
			hist: seasoned(rec(8, -300)),
			want: outcome{Desired: 8, Reason: ReasonScaleDownStabilized, Proposal: 2, Clamps: []Clamp{{ReasonScaleDownStabilized, 2, 8}}},
		},
		{
			name: "without behavior a recommendation older than the window is dropped",
			p:    queuePolicy(nil),
			in:   queueAt(10, 1),
			hist: seasoned(rec(8, -301)),
			want: outcome{Desired: 2, Reason: ReasonDesiredWithinRange, Proposal: 2},
		},
		{
			// Scale-up window 60 s: min(8, 5 from 59 s ago) = 5
			name: "scale-up stabilization takes the min inside the window",
			p:    queuePolicy(&Behavior{ScaleUp: &Rules{StabilizationWindowSeconds: i32(60)}}),
			in:   queueAt(4, 10),
			hist: seasoned(rec(5, -59)),
			want: outcome{Desired: 5, Reason: ReasonScaleUpStabilized, Proposal: 8, Clamps: []Clamp{{ReasonScaleUpStabilized, 8, 5}}},
		},
		{
			name: "a recommendation exactly one scale-up window old no longer holds the scale-up",
			p:    queuePolicy(&Behavior{ScaleUp: &Rules{StabilizationWindowSeconds: i32(60)}}),
			in:   queueAt(4, 10),
			hist: seasoned(rec(5, -60)),
			want: outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
		},
		{
			// 2 -> proposal 10 (queue 25/5 * 2): Pods 4 gives 6, Percent 100 gives 4; Max -> 6
			name: "default scale-up rate picks the larger policy",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(2, 25),
			want: outcome{Desired: 6, Reason: ReasonScaleUpLimit, Proposal: 10, Clamps: []Clamp{{ReasonScaleUpLimit, 10, 6}}},
		},
		{
			name: "selectPolicy Min picks the smaller policy",
			p:    queuePolicy(&Behavior{ScaleUp: &Rules{SelectPolicy: sel(SelectMin)}, ScaleDown: &Rules{StabilizationWindowSeconds: i32(0)}}),
			in:   queueAt(2, 25),
			want: outcome{Desired: 4, Reason: ReasonScaleUpLimit, Proposal: 10, Clamps: []Clamp{{ReasonScaleUpLimit, 10, 4}}},
		},
		{
			name: "selectPolicy Disabled never scales up",
			p:    queuePolicy(&Behavior{ScaleUp: &Rules{SelectPolicy: sel(SelectDisabled)}, ScaleDown: &Rules{StabilizationWindowSeconds: i32(0)}}),
			in:   queueAt(2, 25),
			want: outcome{Desired: 2, Reason: ReasonScaleUpLimit, Proposal: 10, Clamps: []Clamp{{ReasonScaleUpLimit, 10, 2}}},
		},
		{
			// 3 pods added 14 s ago: the period started at 6 - 3 = 3; Pods 4 -> 7,
			// Percent 100 -> 6: Max 7
			name: "scale events inside the period count against the rate",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(6, 25),
			hist: History{Recommendations: []Recommendation{rec(1, -100000)}, ScaleUpEvents: []ScaleEvent{up(3, -14)}},
			want: outcome{Desired: 7, Reason: ReasonScaleUpLimit, Proposal: 30, Clamps: []Clamp{{ReasonScaleUpLimit, 30, 7}}},
		},
		{
			// The event exactly 15 s old is outside the period: start 6, Pods -> 10, 100% -> 12
			name: "a scale event exactly one period old no longer counts",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(6, 25),
			hist: History{Recommendations: []Recommendation{rec(1, -100000)}, ScaleUpEvents: []ScaleEvent{up(3, -15)}},
			want: outcome{Desired: 12, Reason: ReasonScaleUpLimit, Proposal: 30, Clamps: []Clamp{{ReasonScaleUpLimit, 30, 12}}},
		},
		{
			// 25 * (1 + 12/100) is 28.000000000000004 in float64, so the HPA's ceil gives 29
			// where exact arithmetic would give 28. Proposal ceil(2 * 25) = 50.
			name: "percent scale-up rounds up in float64 as the HPA does",
			p: &Policy{Name: "p", MinReplicas: i32(1), MaxReplicas: 100, Metrics: []Metric{avg("queue", "5")},
				Behavior: &Behavior{ScaleUp: &Rules{Policies: []RatePolicy{{Type: PercentPolicy, Value: 12, PeriodSeconds: 60}}}}},
			in:   queueAt(25, 10),
			want: outcome{Desired: 29, Reason: ReasonScaleUpLimit, Proposal: 50, Clamps: []Clamp{{ReasonScaleUpLimit, 50, 29}}},
		},
		{
			// 10 * (1 - 80/100) is 1.9999999999999996 in float64, truncated to 1 (exact
			// arithmetic would give 2), so the proposal ceil(0.1 * 10) = 1 passes unclamped.
			name: "percent scale-down truncates in float64 as the HPA does",
			p: queuePolicy(&Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(0),
				Policies: []RatePolicy{{Type: PercentPolicy, Value: 80, PeriodSeconds: 60}}}}),
			in:   queueAt(10, 0.5),
			want: outcome{Desired: 1, Reason: ReasonDesiredWithinRange, Proposal: 1},
		},
		{
			// 5 * (1 - 50/100) = 2.5, truncated to 2; proposal ceil(0.2 * 5) = 1
			name: "percent scale-down truncates",
			p: queuePolicy(&Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(0),
				Policies: []RatePolicy{{Type: PercentPolicy, Value: 50, PeriodSeconds: 60}}}}),
			in:   queueAt(5, 1),
			want: outcome{Desired: 2, Reason: ReasonScaleDownLimit, Proposal: 1, Clamps: []Clamp{{ReasonScaleDownLimit, 1, 2}}},
		},
		{
			// Pods 1 per 60 s, one pod removed 30 s ago: start 5 + 1 = 6, limit 5 = current:
			// no further scale-down yet.
			name: "a scale-down rate already used holds at current",
			p: queuePolicy(&Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(0),
				Policies: []RatePolicy{{Type: PodsPolicy, Value: 1, PeriodSeconds: 60}}}}),
			in:   queueAt(5, 1),
			hist: History{Recommendations: []Recommendation{rec(1, -100000)}, ScaleDownEvents: []ScaleEvent{{Change: 1, At: at(-30)}}},
			want: outcome{Desired: 5, Reason: ReasonScaleDownLimit, Proposal: 1, Clamps: []Clamp{{ReasonScaleDownLimit, 1, 5}}},
		},
		{
			name: "selectPolicy Disabled never scales down",
			p:    queuePolicy(&Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(0), SelectPolicy: sel(SelectDisabled)}}),
			in:   queueAt(5, 1),
			want: outcome{Desired: 5, Reason: ReasonScaleDownLimit, Proposal: 1, Clamps: []Clamp{{ReasonScaleDownLimit, 1, 5}}},
		},
		{
			// 5.75/5 = 1.15: outside the default 0.1, inside a scale-up tolerance of 0.2
			name: "per-direction scale-up tolerance widens the band",
			p:    queuePolicy(&Behavior{ScaleUp: &Rules{Tolerance: qty("0.2")}}),
			in:   queueAt(4, 5.75),
			want: outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
		},
		{
			// ceil(1.15 * 4) = ceil(4.6) = 5 with the default tolerance
			name: "default tolerance scales at 1.15",
			p:    queuePolicy(&Behavior{}),
			in:   queueAt(4, 5.75),
			want: outcome{Desired: 5, Reason: ReasonDesiredWithinRange, Proposal: 5},
		},
		{
			// 4.75/5 = 0.95: within 0.1, but a scale-down tolerance of 0.01 scales:
			// ceil(0.95 * 20) = 19
			name: "per-direction scale-down tolerance narrows the band",
			p:    &Policy{Name: "p", MinReplicas: i32(1), MaxReplicas: 40, Metrics: []Metric{avg("queue", "5")}, Behavior: &Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(0), Tolerance: qty("0.01")}}},
			in:   queueAt(20, 4.75),
			want: outcome{Desired: 19, Reason: ReasonDesiredWithinRange, Proposal: 19},
		},
		{
			// Behavior-less scale-up limit max(2*3, 4) = 6
			name: "without behavior scale-up is limited to twice the current",
			p:    queuePolicy(nil),
			in:   queueAt(3, 25),
			want: outcome{Desired: 6, Reason: ReasonScaleUpLimit, Proposal: 15, Clamps: []Clamp{{ReasonScaleUpLimit, 15, 6}}},
		},
		{
			// max(2*1, 4) = 4
			name: "without behavior scale-up from one is limited to four",
			p:    queuePolicy(nil),
			in:   queueAt(1, 50),
			want: outcome{Desired: 4, Reason: ReasonScaleUpLimit, Proposal: 10, Clamps: []Clamp{{ReasonScaleUpLimit, 10, 4}}},
		},
		{
			// queue 25 on 12 pods proposes 60; the rate limit max(12+4, 2*12) = 24 is above
			// maxReplicas 20, so max is the tighter limit and names the clamp.
			name: "maxReplicas is named when it is the tighter limit",
			p:    queuePolicy(zeroWindows()),
			in:   queueAt(12, 25),
			want: outcome{Desired: 20, Reason: ReasonTooManyReplicas, Proposal: 60, Clamps: []Clamp{{ReasonTooManyReplicas, 60, 20}}},
		},
		{
			// proposal 1 is below minReplicas 3; the 100% rate allows 0: TooFewReplicas
			name: "minReplicas is named when it is the tighter limit",
			p:    &Policy{Name: "p", MinReplicas: i32(3), MaxReplicas: 20, Metrics: []Metric{avg("queue", "5")}, Behavior: zeroWindows()},
			in:   queueAt(6, 0.5),
			want: outcome{Desired: 3, Reason: ReasonTooFewReplicas, Proposal: 1, Clamps: []Clamp{{ReasonTooFewReplicas, 1, 3}}},
		},
		{
			// Proposal ceil(4 * 4) = 16; the 30 s scale-up window holds it to min(16, 9) = 9;
			// then Pods 1 per 15 s limits 4 -> 5. Both clamps are recorded, in order.
			name: "stabilization and a rate limit are both recorded in order",
			p: queuePolicy(&Behavior{ScaleUp: &Rules{StabilizationWindowSeconds: i32(30), Policies: []RatePolicy{{Type: PodsPolicy, Value: 1, PeriodSeconds: 15}}},
				ScaleDown: &Rules{StabilizationWindowSeconds: i32(0)}}),
			in:   queueAt(4, 20),
			hist: seasoned(rec(9, -20)),
			want: outcome{Desired: 5, Reason: ReasonScaleUpLimit, Proposal: 16, Clamps: []Clamp{{ReasonScaleUpStabilized, 16, 9}, {ReasonScaleUpLimit, 9, 5}}},
		},
		{
			// Percent 2147483647 from 200 allows 200 * (1 + 21474836.47), about 4.3e9,
			// beyond int32 (a conversion that wraps or goes negative froze the scale-up at
			// 200): saturated at 2^31-1, it lets the proposal ceil(200 * 10/5) = 400 through.
			name: "a Percent rate beyond int32 saturates and lets the scale-up through",
			p:    widePolicy(&Rules{StabilizationWindowSeconds: i32(0), Policies: []RatePolicy{{Type: PercentPolicy, Value: math.MaxInt32, PeriodSeconds: 15}}}, nil),
			in:   queueAt(200, 10),
			want: outcome{Desired: 400, Reason: ReasonDesiredWithinRange, Proposal: 400},
		},
		{
			// Pods 2147483647 from 4 wraps to a negative limit in int32; saturated at
			// 2^31-1, the proposal ceil(4 * 20/5) = 16 goes through.
			name: "a Pods rate beyond int32 saturates and lets the scale-up through",
			p:    widePolicy(&Rules{StabilizationWindowSeconds: i32(0), Policies: []RatePolicy{{Type: PodsPolicy, Value: math.MaxInt32, PeriodSeconds: 15}}}, nil),
			in:   queueAt(4, 20),
			want: outcome{Desired: 16, Reason: ReasonDesiredWithinRange, Proposal: 16},
		},
		{
			// Percent 2147483647 down from 200 allows 200 * (1 - 21474836.47), about
			// -4.3e9, below int32: saturated at -2^31, the proposal ceil(200 * 0.5/5) = 20
			// goes through.
			name: "a Percent scale-down rate beyond int32 saturates",
			p:    widePolicy(nil, &Rules{StabilizationWindowSeconds: i32(0), Policies: []RatePolicy{{Type: PercentPolicy, Value: math.MaxInt32, PeriodSeconds: 15}}}),
			in:   queueAt(200, 0.5),
			want: outcome{Desired: 20, Reason: ReasonDesiredWithinRange, Proposal: 20},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := Decide(tc.p, tc.in, tc.hist, at(0))
			if diff := cmp.Diff(tc.want, outcomeOf(d)); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRecordScale(t *testing.T) {
	p := queuePolicy(&Behavior{ScaleUp: &Rules{Policies: []RatePolicy{{Type: PodsPolicy, Value: 4, PeriodSeconds: 60}}}})
	var h History
	h = h.RecordScale(p, 2, 6, at(0))
	h = h.RecordScale(p, 6, 6, at(10)) // no change: nothing recorded
	h = h.RecordScale(p, 6, 8, at(30))
	// At 61 s the first event (0 s) is older than the longest period (60 s): its slot is
	// reused for the new one.
	h = h.RecordScale(p, 8, 9, at(61))
	h = h.RecordScale(p, 9, 7, at(70))
	want := History{
		ScaleUpEvents:   []ScaleEvent{{Change: 1, At: at(61)}, {Change: 2, At: at(30)}},
		ScaleDownEvents: []ScaleEvent{{Change: 2, At: at(70)}},
	}
	if diff := cmp.Diff(want, h, cmp.AllowUnexported(History{})); diff != "" {
		t.Errorf("history (-want +got):\n%s", diff)
	}

	// Without behavior the HPA keeps no events.
	if got := (History{}).RecordScale(queuePolicy(nil), 2, 6, at(0)); got.ScaleUpEvents != nil {
		t.Errorf("behavior-less policy recorded events: %v", got.ScaleUpEvents)
	}
}

func TestScaledToZero(t *testing.T) {
	p := &Policy{Name: "p", MinReplicas: i32(0), MaxReplicas: 10, Metrics: []Metric{val("rps", "5")}, Behavior: zeroWindows()}
	in := Observation{SpecReplicas: 2, StatusReplicas: 2, Pods: readyPods("a", "b"), Metrics: []Sample{scalar(0)}}
	d, h := Decide(p, in, History{}, at(0))
	if d.DesiredReplicas != 0 {
		t.Fatalf("desired = %d, want 0 (value 0 on a scalar metric with minReplicas 0)", d.DesiredReplicas)
	}
	h = h.RecordScale(p, 2, 0, at(0))
	if !h.ScaledToZero {
		t.Fatal("scaling to zero with a scalar metric did not set ScaledToZero")
	}
	// Now at zero, the autoscaler may scale up again: 10/5 -> ceil(2) = 2.
	d, h = Decide(p, Observation{Metrics: []Sample{scalar(10)}}, h, at(15))
	if d.DesiredReplicas != 2 || d.Reason != ReasonDesiredWithinRange {
		t.Fatalf("from zero: desired %d reason %s, want 2 DesiredWithinRange", d.DesiredReplicas, d.Reason)
	}
	if h = h.RecordScale(p, 0, 2, at(15)); h.ScaledToZero {
		t.Error("scaling up from zero left ScaledToZero set")
	}
}

// The record answers "why this number".
func TestDecisionRecord(t *testing.T) {
	p := &Policy{Name: "llama", MinReplicas: i32(1), MaxReplicas: 32,
		Metrics:  []Metric{avg("queue", "5"), avg("gpu", "70"), val("p95-latency", "4")},
		Behavior: &Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(300)}}}
	in := Observation{SpecReplicas: 4, StatusReplicas: 4,
		Pods:    []Pod{{Name: "a", Ready: true}, {Name: "b", Ready: true}, {Name: "c"}, {Name: "d", Phase: PodPending}},
		Metrics: []Sample{perPod("a", 12, "b", 9), failed("timeout"), scalar(3.1)}}
	d, _ := Decide(p, in, seasoned(), at(15))
	// queue: (12000 + 9000) / 2 = 10500m, ratio 2.1 > 1 with c missing and d pending, both
	// 0: 21000 / 4 = 5250m, 1.05 is within tolerance: hold at 4.
	// gpu: missing. latency: 3100/4000 = 0.775 -> ceil(0.775 * 2 ready) = 2.
	// Largest proposal 4 = current, so the missing gpu does not block: desired 4.
	want := Decision{
		Time: at(15), CurrentReplicas: 4, DesiredReplicas: 4, Reason: ReasonDesiredWithinRange, Metric: "queue", Proposal: 4,
		Metrics: []MetricResult{
			{Name: "queue", Semantics: SemanticsPods, Value: 10.5, Target: 5, Ratio: 2.1, Proposal: 4, PodsWithSample: 2, PodsPending: 1, PodsMissing: 1},
			{Name: "gpu", Target: 70, Error: "timeout"},
			{Name: "p95-latency", Semantics: SemanticsValue, Value: 3.1, Target: 4, Ratio: 0.775, Proposal: 2},
		},
	}
	if diff := cmp.Diff(want, d, cmpFloat); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
}

// A sample with warnings (a partial answer) is used as it is, and its part of the record
// carries the warnings; so does a sample that turns out invalid.
func TestSampleWarningsInTheRecord(t *testing.T) {
	p := &Policy{Name: "llama", MinReplicas: i32(1), MaxReplicas: 32, Metrics: []Metric{val("latency", "4"), val("queue", "5")}}
	warn := []string{"store 10.0.0.7:10901 did not answer: partial response"}
	latency, queue := scalar(6), scalar(math.NaN())
	latency.Warnings, queue.Warnings = warn, warn
	in := Observation{SpecReplicas: 2, StatusReplicas: 2, Pods: []Pod{{Name: "a", Ready: true}, {Name: "b", Ready: true}},
		Metrics: []Sample{latency, queue}}
	d, _ := Decide(p, in, seasoned(), at(15))
	// latency: 6000m / 4000m = 1.5 -> ceil(1.5 * 2 ready) = 3, warnings or not.
	if d.DesiredReplicas != 3 {
		t.Errorf("desired = %d, want 3: a sample with warnings is used", d.DesiredReplicas)
	}
	for i, r := range d.Metrics {
		if diff := cmp.Diff(warn, r.Warnings); diff != "" {
			t.Errorf("metrics[%d] (%s) warnings (-want +got):\n%s", i, r.Name, diff)
		}
	}
	if d.Metrics[1].Error == "" {
		t.Errorf("a NaN sample with warnings: no error in %+v", d.Metrics[1])
	}
}

func TestDecideIsDeterministicAndPure(t *testing.T) {
	p := queuePolicy(&Behavior{})
	in := queueAt(4, 12)
	h1 := seasoned(Recommendation{Replicas: 6, At: at(-20)})
	h2 := seasoned(Recommendation{Replicas: 6, At: at(-20)})
	d1, n1 := Decide(p, in, h1, at(0))
	d2, n2 := Decide(p, in, h2, at(0))
	if diff := cmp.Diff(d1, d2); diff != "" {
		t.Errorf("same input, different decisions:\n%s", diff)
	}
	if diff := cmp.Diff(n1, n2, cmp.AllowUnexported(History{})); diff != "" {
		t.Errorf("same input, different histories:\n%s", diff)
	}
	_ = time.Second
}

// Syncs at one instant (a replay of lines sharing a timestamp) keep only that instant's
// fewest and most replicas: the windows take only their minimum and maximum, so the
// decisions are those of the full history, and n such syncs cost O(n), not O(n²).
func TestSyncsAtOneInstantKeepTwoRecommendations(t *testing.T) {
	p := queuePolicy(&Behavior{ScaleUp: &Rules{StabilizationWindowSeconds: i32(60)}, ScaleDown: &Rules{StabilizationWindowSeconds: i32(300)}})
	hist := seasoned()
	// 10 pods with a queue of q propose ceil(q/5 × 10) = ceil(2q): 6, 12, 9, 4, and 10
	// (q = 5, ratio 1, within tolerance: the current 10).
	for _, q := range []float64{3, 6, 4.5, 2, 5} {
		_, hist = Decide(p, queueAt(10, q), hist, at(0))
	}
	// The 6 takes the place of the seasoned recommendation, out of both windows; the 12
	// joins it; the 9 is within 6..12; the 4 replaces the 6, now neither the fewest nor
	// the most; the 10 is within 4..12.
	want := []Recommendation{{Replicas: 4, At: at(0)}, {Replicas: 12, At: at(0)}}
	if diff := cmp.Diff(want, hist.Recommendations); diff != "" {
		t.Errorf("recommendations (-want +got):\n%s", diff)
	}
	// One more sync at the same instant proposing 6: the scale-down window's maximum is 12
	// (the 12 kept), so the current 10 holds; the scale-up window's minimum is 4, below 10.
	d, hist := Decide(p, queueAt(10, 3), hist, at(0))
	wantD := outcome{Desired: 10, Reason: ReasonScaleDownStabilized, Proposal: 6, Clamps: []Clamp{{ReasonScaleDownStabilized, 6, 10}}}
	if diff := cmp.Diff(wantD, outcomeOf(d)); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
	for range 1000 {
		_, hist = Decide(p, queueAt(10, 3), hist, at(0))
	}
	if n := len(hist.Recommendations); n != 2 {
		t.Errorf("after 1000 more syncs at one instant: %d recommendations, want 2", n)
	}
}

func TestSyncsAtOneInstantKeepTwoRecommendationsBehaviorless(t *testing.T) {
	p := queuePolicy(nil)
	hist := seasoned()
	// Proposals cycling 6, 12, 9, 4 (10 pods, queue q: ceil(2q)) over 1000 syncs at one
	// instant keep the 4 and the 12; the 300 s window's maximum, 12, holds each sync.
	qs := []float64{3, 6, 4.5, 2}
	for i := range 1000 {
		var d Decision
		d, hist = Decide(p, queueAt(10, qs[i%len(qs)]), hist, at(0))
		if i > 0 && d.DesiredReplicas != 12 {
			t.Fatalf("sync %d: desired %d, want 12", i, d.DesiredReplicas)
		}
	}
	want := []Recommendation{{Replicas: 4, At: at(0)}, {Replicas: 12, At: at(0)}}
	if diff := cmp.Diff(want, hist.Recommendations); diff != "" {
		t.Errorf("recommendations (-want +got):\n%s", diff)
	}
}
