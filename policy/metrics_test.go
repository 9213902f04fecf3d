package policy

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// evalOne runs one metric through Decide on a policy wide enough not to clamp and returns
// that metric's result.
func evalOne(t *testing.T, m Metric, in Observation) MetricResult {
	t.Helper()
	p := &Policy{Name: "p", MinReplicas: i32(0), MaxReplicas: 1000, Metrics: []Metric{m}}
	d, _ := Decide(p, in, seasoned(), at(0))
	if len(d.Metrics) != 1 {
		t.Fatalf("decision has %d metric results, want 1 (reason %s)", len(d.Metrics), d.Reason)
	}
	return d.Metrics[0]
}

// Per-pod AverageValue, the HPA's Pods metrics.
func TestPodsSemantics(t *testing.T) {
	pod := func(name string, phase PodPhase, ready, deleting bool) Pod {
		return Pod{Name: name, Phase: phase, Ready: ready, Deleting: deleting}
	}
	tests := []struct {
		name string
		in   Observation
		want MetricResult
	}{
		{
			// usage 10000m / 5000m = 2.0 -> ceil(2.0 * 4) = 8
			name: "average above target beyond tolerance scales by the ratio",
			in:   Observation{SpecReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{perPod("a", 10, "b", 10, "c", 10, "d", 10)}},
			want: MetricResult{Value: 10, Ratio: 2, Proposal: 8, PodsWithSample: 4},
		},
		{
			// 5500m / 5000m = 1.1: on the upper tolerance edge, inside -> current 4
			name: "ratio exactly at 1 + tolerance holds",
			in:   Observation{SpecReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{perPod("a", 5.5, "b", 5.5, "c", 5.5, "d", 5.5)}},
			want: MetricResult{Value: 5.5, Ratio: 1.1, Proposal: 4, PodsWithSample: 4},
		},
		{
			// 5501m / 5000m = 1.1002 -> ceil(1.1002 * 4) = ceil(4.4008) = 5
			name: "ratio one milli-unit above the upper tolerance edge scales up",
			in:   Observation{SpecReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{perPod("a", 5.501, "b", 5.501, "c", 5.501, "d", 5.501)}},
			want: MetricResult{Value: 5.501, Ratio: 1.1002, Proposal: 5, PodsWithSample: 4},
		},
		{
			// 4500m / 5000m = 0.9: on the lower tolerance edge, inside -> current 10
			name: "ratio exactly at 1 - tolerance holds",
			in: Observation{SpecReplicas: 10, Pods: readyPods("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"),
				Metrics: []Sample{perPod("a", 4.5, "b", 4.5, "c", 4.5, "d", 4.5, "e", 4.5, "f", 4.5, "g", 4.5, "h", 4.5, "i", 4.5, "j", 4.5)}},
			want: MetricResult{Value: 4.5, Ratio: 0.9, Proposal: 10, PodsWithSample: 10},
		},
		{
			// 4499m / 5000m = 0.8998 -> ceil(0.8998 * 10) = ceil(8.998) = 9
			name: "ratio one milli-unit below the lower tolerance edge scales down",
			in: Observation{SpecReplicas: 10, Pods: readyPods("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"),
				Metrics: []Sample{perPod("a", 4.499, "b", 4.499, "c", 4.499, "d", 4.499, "e", 4.499, "f", 4.499, "g", 4.499, "h", 4.499, "i", 4.499, "j", 4.499)}},
			want: MetricResult{Value: 4.499, Ratio: 0.8998, Proposal: 9, PodsWithSample: 10},
		},
		{
			// 5.5009 truncates to 5500m, so the ratio is 1.1 (inside); in floating point it
			// would be 1.10018 and scale up.
			name: "samples are truncated to milli-units before the ratio",
			in:   Observation{SpecReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{perPod("a", 5.5009, "b", 5.5009, "c", 5.5009, "d", 5.5009)}},
			want: MetricResult{Value: 5.5, Ratio: 1.1, Proposal: 4, PodsWithSample: 4},
		},
		{
			// (5500 + 5500 + 5501) / 3 = 5500 in integer division (5500.33 as a float),
			// ratio 1.1: inside.
			name: "the average is an integer division of milli-units",
			in:   Observation{SpecReplicas: 3, Pods: readyPods("a", "b", "c"), Metrics: []Sample{perPod("a", 5.5, "b", 5.5, "c", 5.501)}},
			want: MetricResult{Value: 5.5, Ratio: 1.1, Proposal: 3, PodsWithSample: 3},
		},
		{
			// c (deleting) and d (failed) are ignored even with samples: 20000m / 2 = 10000m,
			// ratio 2 -> ceil(2 * 2) = 4
			name: "deleted and failed pods are ignored",
			in: Observation{SpecReplicas: 4, Pods: []Pod{pod("a", PodRunning, true, false), pod("b", PodRunning, true, false), pod("c", PodRunning, true, true), pod("d", PodFailed, false, false)},
				Metrics: []Sample{perPod("a", 10, "b", 10, "c", 0, "d", 0)}},
			want: MetricResult{Value: 10, Ratio: 2, Proposal: 4, PodsWithSample: 2, PodsIgnored: 2},
		},
		{
			// ratio 2 with c Pending: c counts as 0, (20000 + 0) / 3 = 6666m, 1.3332 ->
			// ceil(1.3332 * 3) = ceil(3.9996) = 4
			name: "pending pods count as zero on a scale-up",
			in: Observation{SpecReplicas: 3, Pods: []Pod{pod("a", PodRunning, true, false), pod("b", PodRunning, true, false), pod("c", PodPending, false, false)},
				Metrics: []Sample{perPod("a", 10, "b", 10)}},
			want: MetricResult{Value: 10, Ratio: 2, Proposal: 4, PodsWithSample: 2, PodsPending: 1},
		},
		{
			// ratio 0.4 with c Pending: no scale-up, so c is left out: ceil(0.4 * 2) = 1
			name: "pending pods are left out of a scale-down",
			in: Observation{SpecReplicas: 3, Pods: []Pod{pod("a", PodRunning, true, false), pod("b", PodRunning, true, false), pod("c", PodPending, false, false)},
				Metrics: []Sample{perPod("a", 2, "b", 2, "c", 50)}},
			want: MetricResult{Value: 2, Ratio: 0.4, Proposal: 1, PodsWithSample: 2, PodsPending: 1},
		},
		{
			// ratio 0.2 with c missing: c counts as the target, (2000 + 5000) / 3 = 2333m,
			// 0.4666 -> ceil(0.4666 * 3) = ceil(1.3998) = 2
			name: "missing pods count as the target on a scale-down",
			in:   Observation{SpecReplicas: 3, Pods: readyPods("a", "b", "c"), Metrics: []Sample{perPod("a", 1, "b", 1)}},
			want: MetricResult{Value: 1, Ratio: 0.2, Proposal: 2, PodsWithSample: 2, PodsMissing: 1},
		},
		{
			// ratio 2 with c missing: c counts as 0, 20000 / 3 = 6666m -> ceil(1.3332 * 3) = 4
			name: "missing pods count as zero on a scale-up",
			in:   Observation{SpecReplicas: 3, Pods: readyPods("a", "b", "c"), Metrics: []Sample{perPod("a", 10, "b", 10)}},
			want: MetricResult{Value: 10, Ratio: 2, Proposal: 4, PodsWithSample: 2, PodsMissing: 1},
		},
		{
			// ratio 1.2, b missing counts as 0: 6000 / 2 = 3000m, 0.6 reverses the direction
			name: "a fill that reverses the direction holds",
			in:   Observation{SpecReplicas: 2, Pods: readyPods("a", "b"), Metrics: []Sample{perPod("a", 6)}},
			want: MetricResult{Value: 6, Ratio: 1.2, Proposal: 2, PodsWithSample: 1, PodsMissing: 1},
		},
		{
			// ratio 1.2, d missing counts as 0: 18000 / 4 = 4500m, 0.9 is within tolerance
			name: "a fill that lands within tolerance holds",
			in:   Observation{SpecReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{perPod("a", 6, "b", 6, "c", 6)}},
			want: MetricResult{Value: 6, Ratio: 1.2, Proposal: 4, PodsWithSample: 3, PodsMissing: 1},
		},
		{
			// ratio 0.8, c missing counts as the target: 13000 / 3 = 4333m, 0.8666 ->
			// ceil(2.6) = 3, above the current 1 while scaling down: hold
			name: "a scale-down proposal above the current replicas holds",
			in:   Observation{SpecReplicas: 1, Pods: readyPods("a", "b", "c"), Metrics: []Sample{perPod("a", 4, "b", 4)}},
			want: MetricResult{Value: 4, Ratio: 0.8, Proposal: 1, PodsWithSample: 2, PodsMissing: 1},
		},
		{
			// The HPA's Pods metrics do not look at readiness: b is Running, not Ready, and
			// its sample counts. 20000 / 2 = 10000m -> ceil(2 * 2) = 4
			name: "a running pod that is not ready still counts with its sample",
			in:   Observation{SpecReplicas: 2, Pods: []Pod{pod("a", PodRunning, true, false), pod("b", PodRunning, false, false)}, Metrics: []Sample{perPod("a", 10, "b", 10)}},
			want: MetricResult{Value: 10, Ratio: 2, Proposal: 4, PodsWithSample: 2},
		},
		{
			// x is not one of the target's pods: 10000 / 1 -> ceil(2 * 1) = 2
			name: "samples of other pods are ignored",
			in:   Observation{SpecReplicas: 1, Pods: readyPods("a"), Metrics: []Sample{perPod("a", 10, "x", 1000)}},
			want: MetricResult{Value: 10, Ratio: 2, Proposal: 2, PodsWithSample: 1},
		},
		{
			name: "no pods is an error",
			in:   Observation{SpecReplicas: 1, Metrics: []Sample{perPod("a", 10)}},
			want: MetricResult{Error: "no pods selected by the target"},
		},
		{
			name: "only pending pods is an error",
			in:   Observation{SpecReplicas: 1, Pods: []Pod{pod("a", PodPending, false, false)}, Metrics: []Sample{perPod("a", 10)}},
			want: MetricResult{Error: "no samples for the target's pods (pods might be unready)"},
		},
		{
			name: "a NaN sample makes the metric missing",
			in:   Observation{SpecReplicas: 2, Pods: readyPods("a", "b"), Metrics: []Sample{perPod("a", 1, "b", math.NaN())}},
			want: MetricResult{Error: "pod b: sample is NaN"},
		},
		{
			name: "an infinite sample makes the metric missing",
			in:   Observation{SpecReplicas: 2, Pods: readyPods("a", "b"), Metrics: []Sample{perPod("a", math.Inf(1), "b", 1)}},
			want: MetricResult{Error: "pod a: sample is +Inf"},
		},
		{
			name: "a negative sample makes the metric missing",
			in:   Observation{SpecReplicas: 2, Pods: readyPods("a", "b"), Metrics: []Sample{perPod("a", 1, "b", -0.5)}},
			want: MetricResult{Error: "pod b: sample is negative: -0.5"},
		},
		{
			name: "an empty per-pod result is missing, never zero",
			in:   Observation{SpecReplicas: 2, Pods: readyPods("a", "b"), Metrics: []Sample{{PerPod: map[string]float64{}}}},
			want: MetricResult{Error: "no samples for the target's pods (pods might be unready)", PodsMissing: 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := evalOne(t, avg("queue", "5"), tc.in)
			want := tc.want
			want.Name, want.Target, want.Semantics = "queue", 5, SemanticsPods
			if diff := cmp.Diff(want, got, cmpFloat); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// cmpFloat compares recorded floats to 1e-9, since ratios such as 5501/5000 are not exact in
// binary.
var cmpFloat = cmp.Comparer(func(a, b Float) bool {
	if math.IsNaN(float64(a)) || math.IsNaN(float64(b)) {
		return math.IsNaN(float64(a)) && math.IsNaN(float64(b))
	}
	return a == b || math.Abs(float64(a-b)) < 1e-9
})

// A single series with an AverageValue target, the HPA's External AverageValue.
func TestAverageValueSemantics(t *testing.T) {
	tests := []struct {
		name string
		in   Observation
		want MetricResult
	}{
		{
			// 22000 / (5000 * 4) = 1.1: inside -> status.replicas 4
			name: "total at 1 + tolerance holds at status replicas",
			in:   Observation{SpecReplicas: 4, StatusReplicas: 4, Metrics: []Sample{scalar(22)}},
			want: MetricResult{Value: 5.5, Ratio: 1.1, Proposal: 4},
		},
		{
			// 22001 / 20000 = 1.10005 -> ceil(22001 / 5000) = ceil(4.4002) = 5
			name: "total one milli-unit beyond tolerance scales to total / target",
			in:   Observation{SpecReplicas: 4, StatusReplicas: 4, Metrics: []Sample{scalar(22.001)}},
			want: MetricResult{Value: 5.50025, Ratio: 1.10005, Proposal: 5},
		},
		{
			// 9000 / 20000 = 0.45 -> ceil(9000 / 5000) = 2
			name: "a low total scales down to total / target",
			in:   Observation{SpecReplicas: 4, StatusReplicas: 4, Metrics: []Sample{scalar(9)}},
			want: MetricResult{Value: 2.25, Ratio: 0.45, Proposal: 2},
		},
		{
			// The ratio uses status.replicas (4), and within tolerance the proposal is
			// status.replicas too, even though spec.replicas is 5 (as in the HPA).
			name: "within tolerance proposes status replicas, not spec replicas",
			in:   Observation{SpecReplicas: 5, StatusReplicas: 4, Metrics: []Sample{scalar(20)}},
			want: MetricResult{Value: 5, Ratio: 1, Proposal: 4},
		},
		{
			// ratio is +Inf with no replicas: ceil(12000 / 5000) = 3
			name: "zero status replicas scale to total / target",
			in:   Observation{SpecReplicas: 1, StatusReplicas: 0, Metrics: []Sample{scalar(12)}},
			want: MetricResult{Value: Float(math.Inf(1)), Ratio: Float(math.Inf(1)), Proposal: 3},
		},
		{
			name: "an infinite value is missing",
			in:   Observation{SpecReplicas: 4, StatusReplicas: 4, Metrics: []Sample{scalar(math.Inf(-1))}},
			want: MetricResult{Error: "sample is -Inf"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := evalOne(t, avg("rps", "5"), tc.in)
			want := tc.want
			want.Name, want.Target, want.Semantics = "rps", 5, SemanticsAverageValue
			if diff := cmp.Diff(want, got, cmpFloat); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

// A single series with a Value target, the HPA's External/Object Value.
func TestValueSemantics(t *testing.T) {
	notReady := []Pod{{Name: "a", Ready: true}, {Name: "b", Phase: PodRunning, Ready: true}, {Name: "c", Phase: PodRunning, Ready: true}, {Name: "d", Phase: PodPending}}
	tests := []struct {
		name string
		in   Observation
		hist History
		want MetricResult
	}{
		{
			// 8000 / 4000 = 2 times 3 ready pods (d is Pending) -> 6
			name: "value over target scales the ready pods",
			in:   Observation{SpecReplicas: 4, Pods: notReady, Metrics: []Sample{scalar(8)}},
			want: MetricResult{Value: 8, Ratio: 2, Proposal: 6},
		},
		{
			// 4400 / 4000 = 1.1: inside -> current 4
			name: "value at 1 + tolerance holds",
			in:   Observation{SpecReplicas: 4, Pods: notReady, Metrics: []Sample{scalar(4.4)}},
			want: MetricResult{Value: 4.4, Ratio: 1.1, Proposal: 4},
		},
		{
			// 4401 / 4000 = 1.10025 -> ceil(1.10025 * 3) = ceil(3.30075) = 4
			name: "value one milli-unit beyond tolerance scales",
			in:   Observation{SpecReplicas: 4, Pods: notReady, Metrics: []Sample{scalar(4.401)}},
			want: MetricResult{Value: 4.401, Ratio: 1.10025, Proposal: 4},
		},
		{
			// 2000 / 4000 = 0.5 times 3 ready -> ceil(1.5) = 2
			name: "value under target scales down the ready pods",
			in:   Observation{SpecReplicas: 4, Pods: notReady, Metrics: []Sample{scalar(2)}},
			want: MetricResult{Value: 2, Ratio: 0.5, Proposal: 2},
		},
		{
			// From zero (scaled there by the autoscaler): ceil(10000 / 4000) = 3
			name: "from zero replicas the proposal is ceil(ratio)",
			in:   Observation{SpecReplicas: 0, Metrics: []Sample{scalar(10)}},
			hist: History{Recommendations: []Recommendation{{Replicas: 0, At: at(-1000)}}, ScaledToZero: true},
			want: MetricResult{Value: 10, Ratio: 2.5, Proposal: 3},
		},
		{
			// 12000 + 4000 = 16000 summed as an external metric's series: 4 * 3 ready = 12
			name: "a per-pod vector with a Value target is summed",
			in:   Observation{SpecReplicas: 4, Pods: notReady, Metrics: []Sample{perPod("a", 12, "b", 4)}},
			want: MetricResult{Value: 16, Ratio: 4, Proposal: 12},
		},
		{
			name: "no pods is an error outside tolerance",
			in:   Observation{SpecReplicas: 4, Metrics: []Sample{scalar(8)}},
			want: MetricResult{Error: "no pods selected by the target"},
		},
		{
			name: "a NaN value is missing",
			in:   Observation{SpecReplicas: 4, Pods: notReady, Metrics: []Sample{scalar(math.NaN())}},
			want: MetricResult{Error: "sample is NaN"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &Policy{Name: "p", MinReplicas: i32(0), MaxReplicas: 1000, Metrics: []Metric{val("latency", "4")}}
			hist := tc.hist
			if hist.Recommendations == nil {
				hist = seasoned()
			}
			d, _ := Decide(p, tc.in, hist, at(0))
			if len(d.Metrics) != 1 {
				t.Fatalf("no metric computed: reason %s", d.Reason)
			}
			want := tc.want
			want.Name, want.Target, want.Semantics = "latency", 4, SemanticsValue
			if diff := cmp.Diff(want, d.Metrics[0], cmpFloat); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValueMilli(t *testing.T) {
	for _, tc := range []struct {
		name    string
		s       Sample
		want    int64
		wantErr bool
	}{
		{name: "scalar truncated to 1/1000", s: Sample{Value: 1.2349}, want: 1234},
		{name: "decimal within 1e-9 of a thousandth", s: Sample{Value: 4.1}, want: 4100},
		// 0.0019 -> 1, 0.0019 -> 1: truncated per series, so 2 and not 3 (0.0038).
		{name: "per-pod summed after truncation", s: Sample{PerPod: map[string]float64{"a": 0.0019, "b": 0.0019}}, want: 2},
		{name: "zero is a value", s: Sample{Value: 0}, want: 0},
		{name: "the sample's error", s: Sample{Err: errNoSample}, wantErr: true},
		{name: "empty per-pod sample", s: Sample{PerPod: map[string]float64{}}, wantErr: true},
		{name: "NaN", s: Sample{Value: math.NaN()}, wantErr: true},
		{name: "negative series", s: Sample{PerPod: map[string]float64{"a": 1, "b": -1}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ValueMilli(tc.s)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("ValueMilli = %d, %v; want %d, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
