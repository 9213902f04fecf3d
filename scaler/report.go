package scaler

import (
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// Who names the three autoscalers the dry-run scorecard compares.
const (
	WhoPrescale      = "prescale"
	WhoHPAEquivalent = "hpa_equivalent"
	WhoHPA           = "hpa"
)

// scorecard accumulates, per autoscaler, the replica-seconds it would have used and the
// seconds it would have had fewer replicas than the metrics asked for.
type scorecard struct {
	since          time.Time
	replicaSeconds map[string]float64
	shortSeconds   map[string]float64
}

func (s *scorecard) add(who string, replicas int32, wanted int32, dt float64) {
	if s.replicaSeconds == nil {
		s.replicaSeconds, s.shortSeconds = map[string]float64{}, map[string]float64{}
	}
	s.replicaSeconds[who] += float64(replicas) * dt
	if replicas < wanted {
		s.shortSeconds[who] += dt
	}
}

// report derives the metrics, the condition events, the status and the scorecard from the
// pass's result. A hot standby (not leading) sets the gauges only: counters would count
// the tick twice.
func (r *pass) report(now time.Time) {
	c, p, t, o, res, leading := r.c, r.p, r.t, &r.obs, r.res, r.leading
	dec, hpaEq, hpa, grant := res.Decision, res.HPAEquivalent, r.hpa, r.grant
	m := c.deps.Metrics
	m.CurrentReplicas.WithLabelValues(p.Name).Set(float64(dec.CurrentReplicas))
	m.DesiredReplicas.WithLabelValues(p.Name).Set(float64(dec.DesiredReplicas))
	m.HPAEquivalentReplicas.WithLabelValues(p.Name).Set(float64(hpaEq.DesiredReplicas))
	blocked := 0.0
	if r.conflict != "" {
		blocked = 1
	}
	m.ConflictingAutoscaler.WithLabelValues(p.Name).Set(blocked)
	uncapped := dec.DesiredReplicas
	for _, cl := range dec.Clamps {
		if cl.Reason == policy.ReasonCapacityLimited {
			uncapped = cl.From
		}
	}
	m.UncappedReplicas.WithLabelValues(p.Name).Set(float64(uncapped))
	if leading {
		m.Decisions.WithLabelValues(p.Name, string(dec.Reason)).Inc()
	}
	for i, mr := range dec.Metrics {
		// A scaleToZero policy's decision has the activation signal after its metrics.
		name := mr.Name
		sample := o.in.Activation
		if i < len(o.in.Metrics) {
			sample = &o.in.Metrics[i]
		}
		m.MetricTarget.WithLabelValues(p.Name, name).Set(mr.Target)
		if mr.Error != "" {
			m.MetricMissing.WithLabelValues(p.Name, name).Set(1)
			reason := ReasonFailedGetMetric
			if sample != nil && c.deps.ErrorKind(sample.Err) == "stale" {
				reason = ReasonMetricsStale
			}
			r.event(corev1.EventTypeWarning, reason, condMetricPrefix+name,
				fmt.Sprintf("metric %s is missing (%s); holding %d replicas unless another metric scales up", name, mr.Error, dec.CurrentReplicas))
			continue
		}
		t.forgetCondition(condMetricPrefix + name)
		m.MetricMissing.WithLabelValues(p.Name, name).Set(0)
		m.MetricValue.WithLabelValues(p.Name, name).Set(float64(mr.Value))
	}
	if grant != nil {
		m.CapacityWanted.WithLabelValues(p.Name).Set(float64(grant.Wanted))
		m.CapacityGranted.WithLabelValues(p.Name).Set(float64(grant.Granted))
	} else {
		m.CapacityWanted.DeleteLabelValues(p.Name)
		m.CapacityGranted.DeleteLabelValues(p.Name)
	}
	if grant != nil && grant.Message != "" && uncapped != dec.DesiredReplicas {
		// Who got the GPUs, once per change of the grant or of who got them.
		r.eventOn(corev1.EventTypeWarning, ReasonCapacityLimited, condCapacity, grant.Gist(), grant.Message)
	} else {
		t.forgetCondition(condCapacity)
	}
	if res.Forecast != nil {
		c.reportForecast(p, dec, res.Forecast)
		r.reportLoadMissing(res.Forecast, now)
		t.forecastSeries = true
	} else {
		if t.forecastSeries {
			m.forgetForecast(p.Name)
			t.forecastSeries = false
		}
		t.forgetCondition(condLoadMissing)
	}
	r.reportZero(dec, res.Wake)
	if res.Objective != nil {
		r.reportObjective(res.Objective, now)
		t.objectiveSeries = true
	} else {
		if t.objectiveSeries {
			m.forgetObjective(p.Name)
			t.objectiveSeries = false
		}
		t.objMinutes, t.objViolated, t.objBeyond, t.objWaited = 0, 0, 0, 0
		t.forgetCondition(condObjMissing)
	}

	// The real HPA on the same workload, for the dry-run comparison.
	var hpaDesired *int32
	if hpa != nil {
		d := hpa.Status.DesiredReplicas
		hpaDesired = &d
		m.HPADesiredReplicas.WithLabelValues(p.Name).Set(float64(d))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &t.status
	st.synced = true
	st.last, st.forecast, st.objective, st.hpa, st.hpaEquivalent = dec, res.Forecast, res.Objective, hpaDesired, hpaEq.DesiredReplicas
	st.wake = res.Wake
	st.conflict, st.shared = r.conflict, r.shared
	st.capacity = nil
	if grant != nil {
		st.capacity = &CapacityStatus{Priority: p.CapacityPriority(), Guaranteed: p.CapacityGuaranteed(), Wanted: grant.Wanted,
			Granted: grant.Granted, Pending: grant.Pending, Provisioning: grant.Provisioning, LeadSeconds: grant.Lead.Seconds(),
			Reserved: grant.Reserved, Message: grant.Message}
	}

	// The scorecard integrates over the time since the last tick, at most two intervals
	// (a gap, such as a leadership change, is not counted).
	if leading && !t.lastTick.IsZero() && hpaEq.Proposal > 0 {
		dt := min(now.Sub(t.lastTick), 2*c.opts.Interval).Seconds()
		wanted := hpaEq.Proposal
		c.score(p.Name, &st.score, WhoPrescale, dec.DesiredReplicas, wanted, dt)
		c.score(p.Name, &st.score, WhoHPAEquivalent, hpaEq.DesiredReplicas, wanted, dt)
		if hpaDesired != nil {
			c.score(p.Name, &st.score, WhoHPA, *hpaDesired, wanted, dt)
		}
		if st.score.since.IsZero() {
			st.score.since = t.lastTick
		}
	}
	t.lastTick = now
}

// score adds dt seconds of who's replicas to the scorecard and its counters.
func (c *Controller) score(name string, s *scorecard, who string, replicas, wanted int32, dt float64) {
	m := c.deps.Metrics
	s.add(who, replicas, wanted, dt)
	m.ScorecardReplicaSecs.WithLabelValues(name, who).Add(float64(replicas) * dt)
	if replicas < wanted {
		m.ScorecardShortSecs.WithLabelValues(name, who).Add(dt)
	}
}

// PolicyStatus is one policy's line of `prescale status`.
type PolicyStatus struct {
	Policy string `json:"policy"`
	Target string `json:"target"`
	// Synced is false until a sync of the policy has decided (no tick yet, a follower
	// without hot standby, or every sync failed): Current, Desired, HPAEquivalent and
	// Reason are then nil and empty, and absent from the JSON, never zeros.
	Synced        bool               `json:"synced"`
	Current       *int32             `json:"current,omitempty"`
	Desired       *int32             `json:"desired,omitempty"`
	Reason        policy.Reason      `json:"reason,omitempty"`
	HPAEquivalent *int32             `json:"hpaEquivalent,omitempty"`
	HPA           *int32             `json:"hpa,omitempty"`
	Since         time.Time          `json:"since,omitzero"`
	ReplicaSecs   map[string]float64 `json:"replicaSeconds,omitempty"`
	ShortSecs     map[string]float64 `json:"underprovisionedSeconds,omitempty"`
	// Forecast is the forecast's part of the last decision, for a policy that forecasts.
	Forecast *ForecastStatus `json:"forecast,omitempty"`
	// Objective is the objective's state at the last decision, for a policy with one.
	Objective *ObjectiveStatus `json:"objective,omitempty"`
	// Zero is scaleToZero's part of the last decision (the activation signal, how long it
	// has been idle, whether the forecast expects the load back), and Wake the wake-ahead
	// gate's record, for a policy with scaleToZero.
	Zero *policy.ZeroResult `json:"zero,omitempty"`
	Wake *engine.WakeStatus `json:"wakeAhead,omitempty"`
	// NotWriting says why prescale, not in dry-run, writes nothing: another autoscaler
	// targets the workload.
	NotWriting string `json:"notWriting,omitempty"`
	// NotScaling says why the decision holds the current replicas whatever the metrics
	// say: another policy's target selects some of the same pods (AmbiguousSelector).
	NotScaling string `json:"notScaling,omitempty"`
	// Capacity is the policy's share of the GPUs at the last tick, for a policy whose pods
	// request a GPU kind (capacity.mode: cap).
	Capacity *CapacityStatus `json:"capacity,omitempty"`
}

// CapacityStatus is a policy's share of the GPUs at the last tick.
type CapacityStatus struct {
	Priority   int32 `json:"priority"`
	Guaranteed int32 `json:"guaranteed"`
	// Wanted is the engine's desired replicas, Granted those the allocation granted; Pending
	// the granted pods beyond what fits (the pool's allowance), Reserved the pods' worth of
	// GPUs held for the guarantee and not wanted.
	Wanted  int32 `json:"wanted"`
	Granted int32 `json:"granted"`
	Pending int32 `json:"pending,omitempty"`
	// Provisioning is how many of the Pending pods go on nodes that Karpenter's NodePools
	// can add, LeadSeconds when they are ready (the NodePools' measured lead time; 0 when
	// none was measured yet).
	Provisioning int32   `json:"provisioning,omitempty"`
	LeadSeconds  float64 `json:"leadSeconds,omitempty"`
	Reserved     int32   `json:"reserved,omitempty"`
	// Message explains a grant below what was wanted (who got the GPUs), or one with pods
	// on nodes being provisioned (where, and when they are ready).
	Message string `json:"message,omitempty"`
}

// Status returns every policy's last decision and scorecard, sorted by policy name.
func (c *Controller) Status() []PolicyStatus {
	policies, targets := c.snapshot()
	out := make([]PolicyStatus, 0, len(policies))
	for _, p := range policies {
		t := targets[p.Name]
		t.mu.Lock()
		s := &t.status
		st := PolicyStatus{Policy: p.Name, Target: p.Target.String(), Synced: s.synced, HPA: s.hpa,
			Since: s.score.since, ReplicaSecs: copyMap(s.score.replicaSeconds), ShortSecs: copyMap(s.score.shortSeconds),
			Forecast: s.forecast, Objective: s.objective, Zero: s.last.Zero, Wake: s.wake, NotWriting: s.conflict, NotScaling: s.shared,
			Capacity: s.capacity}
		if s.synced {
			cur, desired, equiv := s.last.CurrentReplicas, s.last.DesiredReplicas, s.hpaEquivalent
			st.Current, st.Desired, st.HPAEquivalent, st.Reason = &cur, &desired, &equiv, s.last.Reason
		}
		t.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Policy < out[j].Policy })
	return out
}

func copyMap(m map[string]float64) map[string]float64 {
	if m == nil {
		return nil
	}
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// reportPools sets each pool's series from the tick's allocations (the writing policies',
// then the others'): the GPUs free before it, those granted to new pods, those held for
// guarantees, and the Pending pods granted under the allowance. Pools no longer seen lose
// their series.
func (c *Controller) reportPools(results ...alloc.Result) {
	m := c.deps.Metrics
	type pool struct {
		free, granted, reserved int64
		pending                 int32
		growth, growthGranted   int64
		grows                   bool
	}
	pools := map[string]*pool{}
	for i, r := range results {
		for _, p := range r.Pools {
			pl := pools[p.Resource]
			if pl == nil {
				pl = &pool{}
				pools[p.Resource] = pl
			}
			if i == 0 {
				pl.free, pl.growth, pl.grows = p.Free, p.Growth, p.Grows
			}
			pl.growthGranted += p.GrowthGranted
			pl.granted += p.Granted
			pl.reserved += p.Reserved
			pl.pending += p.PendingGranted
		}
	}
	for _, v := range []*prometheus.GaugeVec{m.PoolFree, m.PoolGranted, m.PoolReserved, m.PoolPending, m.PoolGrowth, m.PoolGrowthGranted} {
		v.Reset()
	}
	for name, p := range pools {
		m.PoolFree.WithLabelValues(name).Set(float64(p.free))
		m.PoolGranted.WithLabelValues(name).Set(float64(p.granted))
		m.PoolReserved.WithLabelValues(name).Set(float64(p.reserved))
		m.PoolPending.WithLabelValues(name).Set(float64(p.pending))
		if p.grows {
			m.PoolGrowth.WithLabelValues(name).Set(float64(p.growth))
			m.PoolGrowthGranted.WithLabelValues(name).Set(float64(p.growthGranted))
		}
	}
}
