package policy

import (
	"fmt"
	"testing"
)

// BenchmarkDecide: one sync of a 3-metric policy (two per-pod, one scalar) over 100 pods, with
// a full 300 s history at 15 s ticks. Target: under 20 µs and a handful of allocations.
func BenchmarkDecide(b *testing.B) {
	p := &Policy{Name: "bench", MinReplicas: i32(1), MaxReplicas: 200,
		Metrics: []Metric{avg("queue", "5"), avg("gpu", "70"), val("latency", "4")},
		Behavior: &Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(300)},
			ScaleUp: &Rules{Policies: []RatePolicy{{Type: PodsPolicy, Value: 4, PeriodSeconds: 15}, {Type: PercentPolicy, Value: 100, PeriodSeconds: 15}}}}}
	const n = 100
	in := Observation{SpecReplicas: n, StatusReplicas: n}
	q, g := make(map[string]float64, n), make(map[string]float64, n)
	for i := range n {
		name := fmt.Sprintf("llama-70b-7d9f8c6b5-%05d", i)
		in.Pods = append(in.Pods, Pod{Name: name, Phase: PodRunning, Ready: true})
		q[name] = 4 + float64(i%7)*0.5
		g[name] = 60 + float64(i%11)
	}
	in.Metrics = []Sample{{PerPod: q}, {PerPod: g}, {Value: 3.2}}
	var hist History
	for s := -300; s < 0; s += 15 {
		hist.Recommendations = append(hist.Recommendations, Recommendation{Replicas: n + int32(s/60), At: at(s)})
	}
	hist.ScaleUpEvents = []ScaleEvent{{Change: 4, At: at(-10)}}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		// Each sync 15 s after the last, so the history rolls as in the controller.
		_, hist = Decide(p, in, hist, at(i*15))
		i++
	}
}

// BenchmarkDecideScaleToZero is BenchmarkDecide's policy at minReplicas 0 with scaleToZero,
// 100 pods busy (the activation signal joins the metrics), and at zero, idle.
func BenchmarkDecideScaleToZero(b *testing.B) {
	p := &Policy{Name: "bench", MinReplicas: i32(0), MaxReplicas: 200,
		Metrics: []Metric{avg("queue", "5"), avg("gpu", "70"), val("latency", "4")},
		Behavior: &Behavior{ScaleDown: &Rules{StabilizationWindowSeconds: i32(300)},
			ScaleUp: &Rules{Policies: []RatePolicy{{Type: PodsPolicy, Value: 4, PeriodSeconds: 15}, {Type: PercentPolicy, Value: 100, PeriodSeconds: 15}}}},
		ScaleToZero: &ScaleToZero{Activation: Activation{Query: "rate", PerReplica: qty("3.5")}}}
	const n = 100
	busy := Observation{SpecReplicas: n, StatusReplicas: n, Activation: &Sample{Value: 300}}
	q, g := make(map[string]float64, n), make(map[string]float64, n)
	for i := range n {
		name := fmt.Sprintf("llama-70b-7d9f8c6b5-%05d", i)
		busy.Pods = append(busy.Pods, Pod{Name: name, Phase: PodRunning, Ready: true})
		q[name] = 4 + float64(i%7)*0.5
		g[name] = 60 + float64(i%11)
	}
	busy.Metrics = []Sample{{PerPod: q}, {PerPod: g}, {Value: 3.2}}
	idle := Observation{Activation: &Sample{Value: 0}, Metrics: []Sample{{PerPod: map[string]float64{}}, {PerPod: map[string]float64{}}, {Value: 0}}}
	for _, c := range []struct {
		name string
		in   Observation
		zero bool
	}{{"busy-100-pods", busy, false}, {"idle-at-zero", idle, true}} {
		b.Run(c.name, func(b *testing.B) {
			var hist History
			for s := -300; s < 0; s += 15 {
				hist.Recommendations = append(hist.Recommendations, Recommendation{Replicas: n + int32(s/60), At: at(s)})
			}
			hist.ScaledToZero = c.zero
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_, hist = Decide(p, c.in, hist, at(i*15))
				i++
			}
		})
	}
}
