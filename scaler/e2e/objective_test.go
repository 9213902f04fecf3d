//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil"
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
	waitValue(t, p, fmt.Sprintf(`inference_latency_seconds{namespace=%q}`, w.Namespace), 3)

	in := startPrescale(t, "a", forecastConfig(p.URL(), w, "")+fmt.Sprintf(`    objective:
      query: 'max(inference_latency_seconds{namespace=%q})'
      slo: 2s
      budget: 1%%
`, w.Namespace))
	labels := map[string]string{"policy": w.Name}

	testutil.Eventually(t, 15*time.Second, "the latency, the SLO and the budget exported", func() error {
		for name, want := range map[string]float64{"prescale_objective_latency_seconds": 3, "prescale_objective_slo_seconds": 2,
			"prescale_objective_budget_ratio": 0.01} {
			if err := metricIs(in, name, labels, fmt.Sprint(want), func(v float64) bool { return v == want })(); err != nil {
				return err
			}
		}
		return metricIs(in, "prescale_objective_quantile", labels, "within [0.5, 0.999]", func(v float64) bool { return v >= 0.5 && v <= 0.999 })()
	})
	testutil.Eventually(t, 75*time.Second, "a minute counted, and counted as violated",
		func() error {
			if err := metricIs(in, "prescale_objective_minutes_total", labels, "at least 1", func(v float64) bool { return v >= 1 })(); err != nil {
				return err
			}
			return metricIs(in, "prescale_objective_violated_minutes_total", labels, "at least 1", func(v float64) bool { return v >= 1 })()
		})
	// Every minute is over the SLO: the bank is overspent, so the pacing holds the knobs as
	// written (tightness 1).
	testutil.Eventually(t, 15*time.Second, "the pacing exported: overspent, tight", func() error {
		if err := metricIs(in, "prescale_objective_bank_minutes", labels, "below 0", func(v float64) bool { return v < 0 })(); err != nil {
			return err
		}
		return metricIs(in, "prescale_objective_tightness", labels, "1", func(v float64) bool { return v == 1 })()
	})
	// The annotation is written in the act phase, after the metrics of the same tick.
	testutil.Eventually(t, 15*time.Second, "the decision annotation with the objective's part", func() error {
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

// A policy whose objective query returns nothing (the latency series is not exported, as a
// real vLLM exports no vllm:e2e_request_latency_seconds, only its _bucket, _sum and
// _count) while load arrives, against the real Prometheus: prescale run sets
// prescale_objective_missing from the first tick, and once the run of missing ticks has
// lasted missingAfter it says so on the target with an ObjectiveMissing warning; the
// record says since when. A latency ends the run.
func TestObjectiveMissingRun(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	e.setQueue(5) // 5 a pod against 5: the metric holds the replicas
	e.setLoad(20)
	// The latency stays NaN: the exporter exports no series for it.
	p := startPrometheus(t, e.addr)
	waitValue(t, p, fmt.Sprintf(`inference_load_rps{namespace=%q}`, w.Namespace), 20)

	in := startPrescale(t, "a", forecastConfig(p.URL(), w, "missingAfter: 5s")+fmt.Sprintf(`    objective:
      query: 'max(inference_latency_seconds{namespace=%q})'
      slo: 2s
      budget: 1%%
`, w.Namespace))
	labels := map[string]string{"policy": w.Name}
	// Deadlines are generous: the machine is shared, and a tick may wait for it.
	testutil.Eventually(t, 30*time.Second, "prescale_objective_missing at 1",
		metricIs(in, "prescale_objective_missing", labels, "1", func(v float64) bool { return v == 1 }))
	testutil.Eventually(t, 60*time.Second, "an ObjectiveMissing event on the target", func() error {
		got := events(t, w, "ObjectiveMissing")
		if len(got) == 0 {
			return fmt.Errorf("no ObjectiveMissing event; prescale's events: %q", events(t, w, ""))
		}
		if !strings.Contains(got[0], "objective.query has had no usable sample for") || !strings.Contains(got[0], "empty") {
			return fmt.Errorf("ObjectiveMissing event %q, want it to say how long and why", got[0])
		}
		return nil
	})
	testutil.Eventually(t, 30*time.Second, "the decision record's missingSince", func() error {
		var r struct {
			Objective *struct {
				MissingSince time.Time `json:"missingSince"`
				LatencyError string    `json:"latencyError"`
			} `json:"objective"`
		}
		ann := deployment(t, w).Annotations["prescale.io/decision"]
		if err := json.Unmarshal([]byte(ann), &r); err != nil || r.Objective == nil || r.Objective.MissingSince.IsZero() || r.Objective.LatencyError == "" {
			return fmt.Errorf("decision annotation = %q", ann)
		}
		return nil
	})
	if n := len(events(t, w, "ForecastLoadMissing")); n != 0 {
		t.Errorf("%d ForecastLoadMissing events, want none: the load is exported", n)
	}

	// The latency comes: the run ends.
	e.setLatency(1)
	testutil.Eventually(t, 30*time.Second, "prescale_objective_missing back at 0",
		metricIs(in, "prescale_objective_missing", labels, "0", func(v float64) bool { return v == 0 }))
}
