package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prescale/prescale/policy"
)

// The objective's adaptive quantile (adaptive conformal inference, Gibbs and Candès 2021):
// after each minute with an observation of the SLO query, the planned quantile q moves by
// Step × (violated − aim), aim being (1 − Reserve) × budget: up by nearly Step after a
// minute over the SLO, down by Step × aim after a minute within it. Summed, q = start +
// Step × (violated minutes − aim × minutes): an integral controller on the budget spent,
// so over any long run the share of violated minutes tends to the aim, whatever the
// traffic, as long as q stays inside its bounds. The Reserve is what the adaptation's own
// lag costs: reaching the quantile a trace needs from the start one takes violated
// minutes, (needed − start) / Step of them.
const (
	// ObjectiveStep is the step of the adaptive quantile per violated minute.
	ObjectiveStep = 0.01
	// ObjectiveReserve is the share of the budget kept for the adaptation's lag.
	ObjectiveReserve = 0.1
	// ObjectiveStartQuantile is the quantile an objective starts planning for.
	ObjectiveStartQuantile = policy.DefaultForecastQuantile
	// ObjectiveMinQuantile and ObjectiveMaxQuantile bound the adaptive quantile.
	ObjectiveMinQuantile = policy.MinForecastQuantile
	ObjectiveMaxQuantile = policy.MaxForecastQuantile
)

// ObjectiveStatus is the objective's part of a policy's status and decision record.
type ObjectiveStatus struct {
	// SLOSeconds and Budget are the objective's.
	SLOSeconds float64 `json:"sloSeconds"`
	Budget     float64 `json:"budget"`
	// Latency is this tick's sample of objective.query, nil when it had none.
	Latency *float64 `json:"latencySeconds,omitempty"`
	// LatencyError says why the sample was missing.
	LatencyError string `json:"latencyError,omitempty"`
	// LatencyWarnings are the sample's warnings (policy.Sample.Warnings: a partial
	// answer), used as it was.
	LatencyWarnings []string `json:"latencyWarnings,omitempty"`
	// Waiting is this tick's sample of objective.waiting (requests waiting to be served),
	// nil when it had none or the policy has no waiting query; WaitingError says why it
	// was missing, WaitingWarnings are its warnings.
	Waiting         *float64 `json:"waitingRequests,omitempty"`
	WaitingError    string   `json:"waitingError,omitempty"`
	WaitingWarnings []string `json:"waitingWarnings,omitempty"`
	// WaitedWithoutLatency: this tick had no latency sample while requests waited, so it
	// counts as over the SLO (an overload in which nothing completes is the worst minute,
	// not a blank one).
	WaitedWithoutLatency bool `json:"waitedWithoutLatency,omitempty"`
	// MissingSince is the first tick of the current run of ticks without an observation:
	// no latency sample and no request known to wait, while the forecast's load was not
	// known to be 0 (nothing arrives, so nothing is measured: idle, not missing). Zero
	// while the objective observes. Drivers say so once it lasts (scaler: ObjectiveMissing).
	MissingSince time.Time `json:"missingSince,omitzero"`
	// Quantile is the forecast quantile planned for: the adaptive one, or
	// forecast.quantile when set (Fixed).
	Quantile float64 `json:"quantile"`
	Fixed    bool    `json:"fixed,omitempty"`
	// Minutes counts the minutes with an observation since the policy started, and
	// ViolatedMinutes those over the SLO at some tick.
	Minutes         int64 `json:"minutes"`
	ViolatedMinutes int64 `json:"violatedMinutes"`
	// BeyondReachMinutes counts the violated minutes whose load exceeded what the forecast,
	// one horizon before, planned at the highest quantile (ObjectiveMaxQuantile): no
	// quantile would have prevented them (a return from idle, a jump beyond any error seen
	// in the last thousand samples). They are what a sharper forecast, or more replicas
	// held in reserve, would have to prevent.
	BeyondReachMinutes int64 `json:"beyondReachMinutes"`
	// WaitedMinutes are the violated minutes that had no latency sample over the SLO but a
	// sync without one while requests waited (WaitedWithoutLatency); counted in
	// ViolatedMinutes.
	WaitedMinutes int64 `json:"waitedMinutes,omitempty"`
	// ColdStartMinutes are the violated minutes of a scaleToZero policy's cold starts: from
	// a sync with no Ready pod until a minute within the SLO (the wait at a return from zero,
	// then the drain of what queued meanwhile), which minReplicas 0 accepts and no quantile
	// can shorten (at zero the forecast proposes nothing). They are counted in
	// ViolatedMinutes and do not move the quantile.
	ColdStartMinutes int64 `json:"coldStartMinutes,omitempty"`
}

// objective is one policy's SLO objective between ticks.
type objective struct {
	spec             policy.Objective
	st               ObjectiveStatus
	latency, waiting float64
	// minute is the start of the minute being observed; sampled and over say whether it
	// had a sample, and one over the SLO; latencyOver whether a latency sample was over
	// it (over without latencyOver: only requests waiting without a latency made it so).
	minute                     time.Time
	sampled, over, latencyOver bool
	cold                       bool // some sync of the minute was cold (Engine.cold)
	// episode is a cold start in progress: from a cold sync until a minute with a latency
	// within the SLO closes.
	episode bool
	// said: some load of the minute was compared with the forecast made one horizon
	// before; within: some such load was within the forecast's reach.
	said, within bool
}

func newObjective(p *policy.Policy) *objective {
	if p.Objective == nil {
		return nil
	}
	o := &objective{spec: *p.Objective}
	o.st = ObjectiveStatus{SLOSeconds: o.spec.SLOSeconds(), Budget: o.spec.BudgetFraction(), Quantile: ObjectiveStartQuantile}
	o.setPolicy(p)
	return o
}

// setPolicy takes a reloaded policy: the adaptive quantile and the counts carry over.
func (o *objective) setPolicy(p *policy.Policy) {
	o.spec = *p.Objective
	o.st.SLOSeconds, o.st.Budget = o.spec.SLOSeconds(), o.spec.BudgetFraction()
	o.st.Fixed = p.Forecast != nil && p.Forecast.Quantile != nil
	if o.st.Fixed {
		o.st.Quantile = *p.Forecast.Quantile
	}
}

// observe takes this tick's sample of objective.query and of objective.waiting (nil: none
// taken); idle says that the forecast's load was 0 at this tick. When now starts a new
// minute it closes the last one: a minute with a sample counts, and moves the adaptive
// quantile. A tick without a latency sample while requests wait is over the SLO
// (WaitedWithoutLatency); any other tick without a latency sample counts for nothing: it
// never lowers the quantile.
func (o *objective) observe(s, waiting *policy.Sample, idle, cold bool, now time.Time) *ObjectiveStatus {
	m := now.Truncate(time.Minute)
	if !m.Equal(o.minute) {
		if o.sampled {
			o.close()
		}
		o.minute, o.sampled, o.over, o.latencyOver, o.said, o.within, o.cold = m, false, false, false, false, false, false
	}
	o.cold = o.cold || cold
	o.episode = o.episode || cold
	o.st.Latency, o.st.LatencyError, o.st.LatencyWarnings = nil, "", nil
	o.st.Waiting, o.st.WaitingError, o.st.WaitingWarnings, o.st.WaitedWithoutLatency = nil, "", nil, false
	if s == nil && waiting == nil {
		return &o.st // nothing taken: the run of missing ticks neither starts nor ends
	}
	if waiting != nil {
		o.st.WaitingWarnings = waiting.Warnings
		if v, err := waitingValue(*waiting); err != nil {
			o.st.WaitingError = err.Error()
		} else {
			o.waiting = v
			o.st.Waiting = &o.waiting
		}
	}
	latencyOK := false
	if s != nil {
		o.st.LatencyWarnings = s.Warnings
		v, err := latencyValue(*s)
		if err != nil {
			o.st.LatencyError = err.Error()
		} else {
			latencyOK = true
			o.latency = v
			o.st.Latency = &o.latency
			o.latencyOver = o.latencyOver || v > o.st.SLOSeconds
		}
	}
	o.st.WaitedWithoutLatency = Waited(latencyOK, o.st.Waiting)
	observed := latencyOK || o.st.WaitedWithoutLatency
	o.sampled = o.sampled || observed
	o.over = o.latencyOver || o.over || o.st.WaitedWithoutLatency
	switch {
	case observed || idle:
		o.st.MissingSince = time.Time{}
	case o.st.MissingSince.IsZero():
		o.st.MissingSince = now
	}
	return &o.st
}

// Waited is the rule for a sync without a latency sample: it is over the SLO when requests
// wait (waiting > 0). An overload in which nothing completes leaves a latency histogram
// empty for the window, so histogram_quantile is NaN: that is the worst minute, not a blank
// one. With no latency sample and waiting unknown or 0, the sync is missing (nothing is
// known to wait; never a reason to lower the margin or to scale down). With a latency
// sample the latency decides.
func Waited(latencyOK bool, waiting *float64) bool {
	return !latencyOK && waiting != nil && *waiting > 0
}

// waitingValue is the requests waiting of a sample: a single value, or the sum of a per-pod
// result. An error, an empty per-pod result, NaN, ±Inf or a negative value is missing.
func waitingValue(s policy.Sample) (float64, error) {
	v, err := sampleTotal(s)
	if err != nil {
		return 0, err
	}
	if !(v >= 0) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("not a count of requests: %v", v)
	}
	return v, nil
}

// latencyValue is the latency of a sample, in seconds. +Inf is a latency beyond any bound
// (histogram_quantile's answer when the quantile lies in the +Inf bucket): over the SLO.
// An error, NaN, a negative value or a per-pod result is missing.
func latencyValue(s policy.Sample) (float64, error) {
	switch {
	case s.Err != nil:
		return 0, s.Err
	case s.PerPod != nil:
		return 0, errors.New("want one series, got a result per pod")
	case math.IsInf(s.Value, 1):
		return s.Value, nil
	case !(s.Value >= 0) || math.IsInf(s.Value, 0):
		return 0, fmt.Errorf("not a latency: %v", s.Value)
	}
	return s.Value, nil
}

// reach takes the forecaster's comparison of this tick's load with the prediction made one
// horizon before (compared false: none): whether the load was beyond what the highest
// quantile planned. A violated minute all of whose compared load was beyond is counted in
// BeyondReachMinutes.
func (o *objective) reach(compared, beyond bool) {
	if compared {
		o.said = true
		o.within = o.within || !beyond
	}
}

// close counts the minute just observed and moves the adaptive quantile. Every violated
// minute moves it, also one beyond the forecast's reach (counted apart, for the operator):
// the budget is the user's, whatever caused the minute, and a controller that left such
// minutes out would aim at the budget on the rest and overspend it (measured: on the
// shared nasa trace half the violated minutes are beyond reach; on servegen the returns
// from idle gaps are).
func (o *objective) close() {
	o.st.Minutes++
	violated := 0.0
	if o.over {
		o.st.ViolatedMinutes++
		violated = 1
		if !o.latencyOver {
			o.st.WaitedMinutes++
		}
		if o.said && !o.within {
			o.st.BeyondReachMinutes++
		}
		if o.episode {
			o.st.ColdStartMinutes++
		}
	}
	cold := o.over && o.episode
	if !o.over {
		o.episode = false // served within the SLO again: the cold start is over
	}
	if o.st.Fixed || cold {
		return
	}
	q := o.st.Quantile + ObjectiveStep*(violated-(1-ObjectiveReserve)*o.st.Budget)
	o.st.Quantile = math.Min(math.Max(q, ObjectiveMinQuantile), ObjectiveMaxQuantile)
}

// Copy returns a copy of st that shares no storage with the engine.
func (st *ObjectiveStatus) Copy() *ObjectiveStatus {
	if st == nil {
		return nil
	}
	c := *st
	if st.Latency != nil {
		v := *st.Latency
		c.Latency = &v
	}
	if st.Waiting != nil {
		v := *st.Waiting
		c.Waiting = &v
	}
	return &c
}

// MarshalJSON writes a +Inf latency as the string "+Inf", as Prometheus' API does: JSON has
// no infinity, and null would read as no sample.
func (st ObjectiveStatus) MarshalJSON() ([]byte, error) {
	type plain ObjectiveStatus
	out := struct {
		plain
		Latency any `json:"latencySeconds,omitempty"`
	}{plain: plain(st)}
	if st.Latency != nil {
		out.Latency = *st.Latency
		if math.IsInf(*st.Latency, 1) {
			out.Latency = "+Inf"
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (st *ObjectiveStatus) UnmarshalJSON(b []byte) error {
	type plain ObjectiveStatus
	var in struct {
		plain
		Latency json.RawMessage `json:"latencySeconds"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*st = ObjectiveStatus(in.plain)
	st.Latency = nil
	if len(in.Latency) == 0 || string(in.Latency) == "null" {
		return nil
	}
	var v float64
	if string(in.Latency) == `"+Inf"` {
		v = math.Inf(1)
	} else if err := json.Unmarshal(in.Latency, &v); err != nil {
		return fmt.Errorf("latencySeconds: want a number or \"+Inf\", got %s", in.Latency)
	}
	st.Latency = &v
	return nil
}
