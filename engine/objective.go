package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prescale/prescale/policy"
)

// The objective controls every knob that trades GPU-hours for violated minutes, in two
// loops on the same count of violated minutes.
//
// The forecast's planning quantile q is adaptive conformal inference (Gibbs and Candès
// 2021): after each minute with an observation of the SLO query, q moves by
// Step × (violated − aim), aim being (1 − Reserve) × budget: up by nearly Step after a
// minute over the SLO, down by Step × aim after a minute within it. Summed, q = start +
// Step × (violated minutes − aim × minutes): an integral controller on the budget spent.
//
// The other knobs (the forecast's hold, the scale-down stabilization window, the reactive
// metrics' targets) follow one tightness T in [0, 1], paced on the budget's bank: the
// minutes of budget earned and not spent, Σ (aim − violated) over the observed minutes.
// T = 1 − bank / E, within [0, 1], E being the mean violated minutes of an episode (a run
// of violated minutes less than ObjectiveEpisodeGap apart), measured, with a prior of one
// episode of ObjectiveEpisodePrior minutes. So:
//   - it starts safe: the bank is empty, T = 1, every knob as the policy writes it;
//   - it loosens only as budget is earned and not spent, reaching the loose end (no hold,
//     no scale-down window, targets × ObjectiveMaxTargetScale) once the bank could pay for
//     one more episode;
//   - a violated minute spends the bank and tightens at once; after an overspend T stays at
//     1 until the debt is earned back;
//   - the bank is capped at E (anti-windup): a quiet month licenses one episode, not a
//     month of them.
//
// Over a run, the violated minutes the loose knobs cause are then at most the budget
// earned plus one episode: the bank never holds more. Violated minutes while T = 1 are
// those of the policy as written, which the quantile's loop answers.
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
	// ObjectiveEpisodePrior is the violated minutes of an episode assumed before any is
	// seen, counted as one episode in the mean.
	ObjectiveEpisodePrior = 5.0
	// ObjectiveEpisodeGap: violated minutes less than this apart are one episode.
	ObjectiveEpisodeGap = 10 * time.Minute
	// ObjectiveMaxTargetScale is the most the objective raises the reactive metrics'
	// targets, at T = 0: a KV-cache target of 0.67 becomes 0.8375.
	ObjectiveMaxTargetScale = 1.25
	// ObjectiveHoldDecay shapes the forecast's hold with an objective: a plan made s ago,
	// over the hold h in force, counts as fresh + (plan − fresh) × (1 − (s/h)^2), fresh
	// being this Step's plan. A plan counts nearly in full for the first part of the hold
	// (90 % at s = h/3) and fades to nothing at h, so the replicas kept for a peak go down
	// gradually instead of all at once a hold after it.
	ObjectiveHoldDecay = 2.0
)

// Pacing are the constants of the objective's pacing of T, for choosing them on traces
// leave-one-out (hack/objloo); the zero value is the defaults.
type Pacing struct {
	// EpisodePrior replaces ObjectiveEpisodePrior when > 0. +Inf never loosens the knobs
	// (the objective before pacing, hack/objloo's "off"); the status's EpisodeMinutes is
	// then +Inf, which JSON cannot carry.
	EpisodePrior float64
	// MaxTargetScale replaces ObjectiveMaxTargetScale when >= 1.
	MaxTargetScale float64
	// HoldDecay replaces ObjectiveHoldDecay when > 0; +Inf keeps a held plan in full
	// until the hold has passed (the plain hold, as without an objective).
	HoldDecay float64
	// Hold replaces policy.DefaultObjectiveHold when > 0, for a forecast that writes no
	// hold.
	Hold time.Duration
}

func (pc Pacing) holdDecay() float64 {
	if pc.HoldDecay > 0 {
		return pc.HoldDecay
	}
	return ObjectiveHoldDecay
}

func (pc Pacing) episodePrior() float64 {
	if pc.EpisodePrior > 0 {
		return pc.EpisodePrior
	}
	return ObjectiveEpisodePrior
}

func (pc Pacing) maxTargetScale() float64 {
	if pc.MaxTargetScale >= 1 {
		return pc.MaxTargetScale
	}
	return ObjectiveMaxTargetScale
}

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
	// Tightness is T: 1 holds the knobs below as the policy writes them, 0 at their loose
	// end. BankMinutes is the budget earned and not spent that sets it, and EpisodeMinutes
	// the mean violated minutes of an episode, its scale.
	Tightness      float64 `json:"tightness"`
	BankMinutes    float64 `json:"bankMinutes"`
	EpisodeMinutes float64 `json:"episodeMinutes"`
	// HoldSeconds is the forecast's hold in force (T × forecast.hold), absent without a
	// forecast; ScaleDownWindowSeconds the scale-down stabilization window (T × the
	// policy's), absent for a policy without a behavior (the HPA's behaviorless path is
	// kept); TargetScale the factor on the metrics' targets (1 at T = 1,
	// ObjectiveMaxTargetScale at T = 0).
	HoldSeconds            *float64 `json:"holdSeconds,omitempty"`
	ScaleDownWindowSeconds *int32   `json:"scaleDownWindowSeconds,omitempty"`
	TargetScale            float64  `json:"targetScale"`
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
	spec   policy.Objective
	pacing Pacing
	p      *policy.Policy // the policy in force
	st     ObjectiveStatus
	// hold and window are the storage of st.HoldSeconds and st.ScaleDownWindowSeconds.
	hold   float64
	window int32
	// eff is base (the policy in force when built) with the knobs of tightness effT.
	eff, base *policy.Policy
	effT      float64
	// episodes and episodeMinutes count the episodes seen and their violated minutes;
	// lastViolated is the last violated minute.
	episodes, episodeMinutes float64
	lastViolated             time.Time
	latency, waiting         float64
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

func newObjective(p *policy.Policy, pacing Pacing) *objective {
	if p.Objective == nil {
		return nil
	}
	o := &objective{spec: *p.Objective, pacing: pacing}
	o.st = ObjectiveStatus{SLOSeconds: o.spec.SLOSeconds(), Budget: o.spec.BudgetFraction(), Quantile: ObjectiveStartQuantile,
		Tightness: 1, EpisodeMinutes: pacing.episodePrior()}
	o.setPolicy(p)
	return o
}

// setPolicy takes a reloaded policy: the adaptive quantile, the bank and the counts carry
// over; the knobs follow the new policy's written values.
func (o *objective) setPolicy(p *policy.Policy) {
	o.spec, o.p = *p.Objective, p
	o.st.SLOSeconds, o.st.Budget = o.spec.SLOSeconds(), o.spec.BudgetFraction()
	o.st.Fixed = p.Forecast != nil && p.Forecast.Quantile != nil
	if o.st.Fixed {
		o.st.Quantile = *p.Forecast.Quantile
	}
	o.knobs()
}

// knobs sets the status's knobs from T and the policy's written values.
func (o *objective) knobs() {
	t, p := o.st.Tightness, o.p
	o.st.TargetScale = 1 + (o.pacing.maxTargetScale()-1)*(1-t)
	o.st.HoldSeconds = nil
	if p.Forecast != nil {
		h := p.Forecast.HoldFor(true)
		if p.Forecast.Hold == nil && o.pacing.Hold > 0 {
			h = o.pacing.Hold
		}
		o.hold = math.Round(t * h.Seconds())
		o.st.HoldSeconds = &o.hold
	}
	o.st.ScaleDownWindowSeconds = nil
	if b := p.Behavior; b != nil {
		w := int32(policy.DefaultScaleDownWindowSeconds)
		if b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil {
			w = *b.ScaleDown.StabilizationWindowSeconds
		}
		o.window = int32(math.Round(t * float64(w)))
		o.st.ScaleDownWindowSeconds = &o.window
	}
}

// holdFor is the forecast's hold in force.
func (o *objective) holdFor() time.Duration { return time.Duration(o.hold) * time.Second }

// policy returns the policy in force with the knobs T sets: its scale-down window and its
// metrics' targets. At T = 1 it is the policy itself; otherwise a copy, rebuilt only when
// T or the policy changed.
func (o *objective) policy() *policy.Policy {
	p := o.p
	if o.st.Tightness >= 1 {
		return p
	}
	if o.eff != nil && o.base == p && o.effT == o.st.Tightness {
		return o.eff
	}
	c := *p
	c.Metrics = make([]policy.Metric, len(p.Metrics))
	copy(c.Metrics, p.Metrics)
	for i := range c.Metrics {
		c.Metrics[i].Target = scaleTarget(c.Metrics[i].Target, o.st.TargetScale)
	}
	if b := p.Behavior; b != nil {
		var down policy.Rules
		if b.ScaleDown != nil {
			down = *b.ScaleDown
		}
		down.StabilizationWindowSeconds = o.st.ScaleDownWindowSeconds
		c.Behavior = &policy.Behavior{ScaleUp: b.ScaleUp, ScaleDown: &down}
	}
	o.eff, o.base, o.effT = &c, p, o.st.Tightness
	return o.eff
}

// scaleTarget returns t with its quantity multiplied by f (f >= 1), to the milli-unit the
// HPA's math reads; a target without a quantity is returned as it is.
func scaleTarget(t policy.MetricTarget, f float64) policy.MetricTarget {
	q, ok := t.Quantity()
	if !ok || f == 1 {
		return t
	}
	scaled, err := policy.ParseQuantity(strconv.FormatFloat(math.Round(q.Float64()*f*1000)/1000, 'f', -1, 64))
	if err != nil {
		return t // validated targets are finite and positive: a scaled one parses
	}
	switch t.Type {
	case policy.AverageValue:
		t.AverageValue = &scaled
	case policy.Value:
		t.Value = &scaled
	}
	return t
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
	if cold {
		return
	}
	o.pace(violated)
	if o.st.Fixed {
		return
	}
	q := o.st.Quantile + ObjectiveStep*(violated-(1-ObjectiveReserve)*o.st.Budget)
	o.st.Quantile = math.Min(math.Max(q, ObjectiveMinQuantile), ObjectiveMaxQuantile)
}

// pace moves the bank by the minute just closed (violated 0 or 1) and sets T and the
// knobs from it.
func (o *objective) pace(violated float64) {
	aim := (1 - ObjectiveReserve) * o.st.Budget
	if violated > 0 {
		if o.lastViolated.IsZero() || o.minute.Sub(o.lastViolated) >= ObjectiveEpisodeGap {
			o.episodes++
		}
		o.episodeMinutes++
		o.lastViolated = o.minute
		o.st.EpisodeMinutes = (o.pacing.episodePrior() + o.episodeMinutes) / (1 + o.episodes)
	}
	o.st.BankMinutes = math.Min(o.st.BankMinutes+aim-violated, o.st.EpisodeMinutes)
	o.st.Tightness = math.Min(math.Max(1-o.st.BankMinutes/o.st.EpisodeMinutes, 0), 1)
	o.knobs()
}

// Copy returns a copy of st that shares no storage with the engine.
func (st *ObjectiveStatus) Copy() *ObjectiveStatus {
	if st == nil {
		return nil
	}
	c := *st
	if st.HoldSeconds != nil {
		v := *st.HoldSeconds
		c.HoldSeconds = &v
	}
	if st.ScaleDownWindowSeconds != nil {
		v := *st.ScaleDownWindowSeconds
		c.ScaleDownWindowSeconds = &v
	}
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
