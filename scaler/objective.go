package scaler

import (
	"math"

	"github.com/prescale/prescale/engine"
)

// ObjectiveStatus is the objective's part of a policy's status and of its decision record.
type ObjectiveStatus = engine.ObjectiveStatus

// reportObjective sets the objective's metrics from its status. A missing latency removes
// its series (+Inf is a latency, exported as such). The minute counters add what the
// engine counted since the last tick; a hot standby only follows the counts, so that a
// minute is counted once, by the leader of its tick (an engine that restarts its counts,
// its objective removed and added back, adds them from zero).
func (c *Controller) reportObjective(name string, t *target, st *ObjectiveStatus, leading bool) {
	m := c.deps.Metrics
	m.ObjectiveQuantile.WithLabelValues(name).Set(st.Quantile)
	m.ObjectiveSLO.WithLabelValues(name).Set(st.SLOSeconds)
	m.ObjectiveBudget.WithLabelValues(name).Set(st.Budget)
	if st.Latency != nil && !math.IsNaN(*st.Latency) {
		m.ObjectiveLatency.WithLabelValues(name).Set(*st.Latency)
	} else {
		m.ObjectiveLatency.DeleteLabelValues(name)
	}
	minutes, violated := m.ObjectiveMinutes.WithLabelValues(name), m.ObjectiveViolatedMinutes.WithLabelValues(name)
	beyond := m.ObjectiveBeyondReach.WithLabelValues(name)
	if leading {
		minutes.Add(float64(increase(t.objMinutes, st.Minutes)))
		violated.Add(float64(increase(t.objViolated, st.ViolatedMinutes)))
		beyond.Add(float64(increase(t.objBeyond, st.BeyondReachMinutes)))
	}
	t.objMinutes, t.objViolated, t.objBeyond = st.Minutes, st.ViolatedMinutes, st.BeyondReachMinutes
}

// increase is how much a count rose from last to now; a count below last started again
// from zero.
func increase(last, now int64) int64 {
	if now < last {
		return now
	}
	return now - last
}
