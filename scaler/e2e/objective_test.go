//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// A policy with an objective, against the real Prometheus: prescale run queries the
// objective's latency each tick, exports it, counts each minute with a sample once it ends
// (a latency of 3 s against an SLO of 2 s: violated), and writes the objective's part of
// the decision record. A minute ends on the wall clock, so the first is counted within a
// minute of the first tick.
func TestObjectiveRun(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	e.setQueue(5) // 5 a pod against 5: the metric holds the replicas
	e.setLoad(20)
	e.setLatency(3)
	p := startPrometheus(t, e.addr)
	p.waitValue(t, fmt.Sprintf(`inference_latency_seconds{namespace=%q}`, w.Namespace), 3)

	in := startPrescale(t, "a", forecastConfig(p.url(), w, "")+fmt.Sprintf(`    objective:
      query: 'max(inference_latency_seconds{namespace=%q})'
      slo: 2s
      budget: 1%%
`, w.Namespace))
	labels := map[string]string{"policy": w.Name}

	await(t, 15*time.Second, "the latency, the SLO and the budget exported", func() error {
		for name, want := range map[string]float64{"prescale_objective_latency_seconds": 3, "prescale_objective_slo_seconds": 2,
			"prescale_objective_budget_ratio": 0.01} {
			if err := metricIs(in, name, labels, fmt.Sprint(want), func(v float64) bool { return v == want })(); err != nil {
				return err
			}
		}
		return metricIs(in, "prescale_objective_quantile", labels, "within [0.5, 0.999]", func(v float64) bool { return v >= 0.5 && v <= 0.999 })()
	})
	await(t, 75*time.Second, "a minute counted, and counted as violated",
		func() error {
			if err := metricIs(in, "prescale_objective_minutes_total", labels, "at least 1", func(v float64) bool { return v >= 1 })(); err != nil {
				return err
			}
			return metricIs(in, "prescale_objective_violated_minutes_total", labels, "at least 1", func(v float64) bool { return v >= 1 })()
		})
	// The annotation is written in the act phase, after the metrics of the same tick.
	await(t, 15*time.Second, "the decision annotation with the objective's part", func() error {
		var r struct {
			Objective *struct {
				SLO      float64 `json:"sloSeconds"`
				Latency  any     `json:"latencySeconds"`
				Minutes  int64   `json:"minutes"`
				Violated int64   `json:"violatedMinutes"`
			} `json:"objective"`
		}
		ann := deployment(t, w).Annotations["prescale.io/decision"]
		if err := json.Unmarshal([]byte(ann), &r); err != nil || r.Objective == nil || r.Objective.Minutes < 1 ||
			r.Objective.Violated < 1 || r.Objective.SLO != 2 || r.Objective.Latency != 3.0 {
			return fmt.Errorf("decision annotation = %q", ann)
		}
		return nil
	})
}
