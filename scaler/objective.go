package scaler

import (
	"fmt"
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/prescale/prescale/engine"
)

// ObjectiveStatus is the objective's part of a policy's status and of its decision record.
type ObjectiveStatus = engine.ObjectiveStatus

// reportObjective sets the objective's metrics from its status. A missing latency removes
// its series (+Inf is a latency, exported as such). The minute counters add what the
// engine counted since the last tick; a hot standby only follows the counts, so that a
// minute is counted once, by the leader of its tick (an engine that restarts its counts,
// its objective removed and added back, adds them from zero). An objective without an
// observation sets prescale_objective_missing at once, and is an ObjectiveMissing event
// once it has lasted MissingAfter.
func (r *pass) reportObjective(st *ObjectiveStatus, now time.Time) {
	c, leading := r.c, r.leading
	m, name, t := c.deps.Metrics, r.p.Name, r.t
	m.ObjectiveQuantile.WithLabelValues(name).Set(st.Quantile)
	m.ObjectiveTightness.WithLabelValues(name).Set(st.Tightness)
	m.ObjectiveBank.WithLabelValues(name).Set(st.BankMinutes)
	m.ObjectiveSLO.WithLabelValues(name).Set(st.SLOSeconds)
	m.ObjectiveBudget.WithLabelValues(name).Set(st.Budget)
	if st.Latency != nil && !math.IsNaN(*st.Latency) {
		m.ObjectiveLatency.WithLabelValues(name).Set(*st.Latency)
	} else {
		m.ObjectiveLatency.DeleteLabelValues(name)
	}
	minutes, violated := m.ObjectiveMinutes.WithLabelValues(name), m.ObjectiveViolatedMinutes.WithLabelValues(name)
	beyond, waited := m.ObjectiveBeyondReach.WithLabelValues(name), m.ObjectiveWaitedMinutes.WithLabelValues(name)
	if leading {
		minutes.Add(float64(increase(t.objMinutes, st.Minutes)))
		violated.Add(float64(increase(t.objViolated, st.ViolatedMinutes)))
		beyond.Add(float64(increase(t.objBeyond, st.BeyondReachMinutes)))
		waited.Add(float64(increase(t.objWaited, st.WaitedMinutes)))
	}
	t.objMinutes, t.objViolated, t.objBeyond, t.objWaited = st.Minutes, st.ViolatedMinutes, st.BeyondReachMinutes, st.WaitedMinutes
	m.ObjectiveMissing.WithLabelValues(name).Set(boolGauge(!st.MissingSince.IsZero()))
	if d, ok := sustained(st.MissingSince, now, c.opts.MissingAfter); ok {
		why := st.LatencyError
		if st.WaitingError != "" {
			why += "; objective.waiting: " + st.WaitingError
		}
		// Once per run of missing ticks: its start is the condition's state.
		r.eventOn(corev1.EventTypeWarning, ReasonObjectiveMissing, condObjMissing, st.MissingSince.String(),
			fmt.Sprintf("objective.query has had no usable sample for %s (since %s; last: %s) and no request was known to wait: no minute counts, so the objective neither adapts its quantile nor reports violations; check the query with prescale validate --prometheus",
				d.Round(time.Second), st.MissingSince.UTC().Format(time.RFC3339), why))
	} else if st.MissingSince.IsZero() {
		t.forgetCondition(condObjMissing)
	}
}

// reportLoadMissing sets prescale_forecast_load_missing from the forecast's status, and
// sends ForecastLoadMissing once the load has been missing for MissingAfter.
func (r *pass) reportLoadMissing(st *ForecastStatus, now time.Time) {
	c := r.c
	c.deps.Metrics.ForecastLoadMissing.WithLabelValues(r.p.Name).Set(boolGauge(!st.LoadMissingSince.IsZero()))
	if d, ok := sustained(st.LoadMissingSince, now, c.opts.MissingAfter); ok {
		r.eventOn(corev1.EventTypeWarning, ReasonForecastLoadMissing, condLoadMissing, st.LoadMissingSince.String(),
			fmt.Sprintf("forecast.load.query has had no usable sample for %s (since %s; last: %s): the forecast stops one horizon after its last sample, and no scale-down happens while the load is missing; check the query with prescale validate --prometheus",
				d.Round(time.Second), st.LoadMissingSince.UTC().Format(time.RFC3339), st.LoadError))
	} else if st.LoadMissingSince.IsZero() {
		r.t.forgetCondition(condLoadMissing)
	}
}

// sustained reports how long a run of missing samples that began at since has lasted at
// now, and whether that is at least after. A zero since is no run.
func sustained(since, now time.Time, after time.Duration) (time.Duration, bool) {
	if since.IsZero() {
		return 0, false
	}
	d := now.Sub(since)
	return d, d >= after
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// increase is how much a count rose from last to now; a count below last started again
// from zero.
func increase(last, now int64) int64 {
	if now < last {
		return now
	}
	return now - last
}
