package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/prescale/prescale/forecast"
)

// ScaleToZero idles a target at zero replicas while it has no demand, and wakes it on an
// activation signal that exists while no pod does, or ahead of a forecast return. It needs
// minReplicas 0. Without it, minReplicas 0 keeps the HPA's semantics (Decide's parity).
type ScaleToZero struct {
	// Activation is the signal that wakes the target: a scalar query that has a value while
	// the target has no pod (a gateway's or router's queue or request rate).
	Activation Activation `yaml:"activation"`
	// IdleDelay is how long the activation signal must stay at or below its threshold, every
	// metric present, before the target goes to zero. Its own setting: the stabilization
	// windows still govern every scale above zero. Default DefaultIdleDelay.
	IdleDelay *Duration `yaml:"idleDelay"`
	// WakeAhead wakes the target before its load returns, when the forecast expects it back
	// within the horizon (the pods' start-up). Nil: on when the policy has a forecast.
	WakeAhead *WakeAhead `yaml:"wakeAhead"`
}

// Activation is the scale-to-zero signal and what one replica carries of it.
type Activation struct {
	// Query is a PromQL instant query returning one series (or a scalar).
	Query string `yaml:"query"`
	// PerReplica is the activation value one replica carries at target: from zero, the
	// first scale-up goes straight to ceil(value / perReplica) replicas.
	PerReplica *Quantity `yaml:"perReplica"`
	// Threshold: the target is idle while the value is at or below it, and wakes above it.
	// Default 0.
	Threshold *Quantity `yaml:"threshold"`
}

// WakeAhead is the predictive wake-up and its gate: every time the forecast expects the
// load back while the target is idle, the claim is judged one horizon later (right if the
// activation signal rose above its threshold by then); while more than maxWrong of the last
// `last` claims were wrong, the target no longer wakes early (claims are still judged, so
// it resumes once they prove right again).
type WakeAhead struct {
	// Enabled, unset: true when the policy has a forecast. true needs a forecast.
	Enabled  *bool    `yaml:"enabled"`
	MaxWrong *float64 `yaml:"maxWrong"`
	Last     *int32   `yaml:"last"`
}

// The scale-to-zero defaults and bounds.
const (
	DefaultIdleDelay     = 5 * time.Minute
	MaxIdleDelay         = 24 * time.Hour
	DefaultWakeMaxWrong  = 0.5
	DefaultWakeLast      = 4
	MaxWakeLast          = 100
	wakeExpectReplicasAt = 0.5 // the point forecast must need half a replica to expect load
)

// The reasons of scale-to-zero decisions.
const (
	// ReasonScaledToZero: idle for idleDelay, the target goes to (or stays at) zero.
	ReasonScaledToZero Reason = "ScaledToZero"
	// ReasonActivated: the activation signal woke the target from zero, straight to the
	// replicas it needs.
	ReasonActivated Reason = "Activated"
	// ReasonWakeAhead: the forecast expects the load back within the horizon: the target
	// wakes (or stays awake) ahead of it.
	ReasonWakeAhead Reason = "WakeAhead"
	// ReasonWakeAheadGated: wake-ahead claims proved wrong too often; the target waits for
	// its activation signal. It appears in Decision.Zero.Reason only.
	ReasonWakeAheadGated Reason = "WakeAheadGated"
)

// ZeroResult is scale-to-zero's part of a decision.
type ZeroResult struct {
	// Activation is the activation signal's value; ActivationError why it is missing.
	Activation      Float  `json:"activation"`
	ActivationError string `json:"activationError,omitempty"`
	// IdleSeconds is how long the signal has been at or below its threshold (0: not idle).
	IdleSeconds float64 `json:"idleSeconds"`
	// ExpectsLoad: the forecast expects the load back within its horizon (judged by the
	// wake-ahead gate); ExpectedReplicas are the replicas it needs then.
	ExpectsLoad      bool  `json:"expectsLoad,omitempty"`
	ExpectedReplicas int32 `json:"expectedReplicas,omitempty"`
	// WakeGated: the wake-ahead gate holds early wake-ups off.
	WakeGated bool `json:"wakeGated,omitempty"`
	// Reason is ScaledToZero, Activated, WakeAhead or WakeAheadGated when one applied.
	Reason Reason `json:"reason,omitempty"`
}

// IdleDelayOrDefault returns idleDelay with its default.
func (z *ScaleToZero) IdleDelayOrDefault() time.Duration {
	if z.IdleDelay == nil {
		return DefaultIdleDelay
	}
	return z.IdleDelay.Duration
}

// WakeAheadOn reports whether the predictive wake-up is on for policy p: it has
// scaleToZero and a forecast whose method is not off, and wakeAhead.enabled is not false.
func (p *Policy) WakeAheadOn() bool {
	z := p.ScaleToZero
	if z == nil || p.Forecast == nil || p.Forecast.MethodOrDefault() == forecast.MethodOff {
		return false
	}
	return z.WakeAhead == nil || z.WakeAhead.Enabled == nil || *z.WakeAhead.Enabled
}

// WakeGateOrDefault returns the wake-ahead gate's maxWrong and last with their defaults.
func (z *ScaleToZero) WakeGateOrDefault() (maxWrong float64, last int) {
	maxWrong, last = DefaultWakeMaxWrong, DefaultWakeLast
	if w := z.WakeAhead; w != nil {
		if w.MaxWrong != nil {
			maxWrong = *w.MaxWrong
		}
		if w.Last != nil {
			last = int(*w.Last)
		}
	}
	return maxWrong, last
}

// ActivationValue returns the activation sample's value and whether it is above the
// threshold (active). A sample with an error, NaN, ±Inf, a negative value or an empty
// result is an error: missing, never idle.
func (z *ScaleToZero) ActivationValue(s Sample) (v float64, active bool, err error) {
	if s.Err != nil {
		return 0, false, s.Err
	}
	v = s.Value
	if s.PerPod != nil {
		if len(s.PerPod) == 0 {
			return 0, false, errNoSample
		}
		v = 0
		for _, x := range s.PerPod {
			v += x
		}
	}
	if err := CheckSample(v); err != nil {
		return 0, false, err
	}
	var th float64
	if z.Activation.Threshold != nil {
		th = z.Activation.Threshold.Float64()
	}
	return v, v > th, nil
}

// validate returns the problems of a scaleToZero block, whose YAML path is path.
func (z *ScaleToZero) validate(path string, p *Policy) []error {
	if z == nil {
		return nil
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError(joinPath(path, field), fmt.Sprintf(format, args...)))
	}
	if p.MinReplicas == nil || *p.MinReplicas != 0 {
		got := "unset (1)"
		if p.MinReplicas != nil {
			got = fmt.Sprint(*p.MinReplicas)
		}
		errs = append(errs, fieldError(path, fmt.Sprintf("needs minReplicas: 0, got minReplicas %s", got),
			joinPath(strings.TrimSuffix(path, ".scaleToZero"), "minReplicas")))
	}
	for i, m := range p.Metrics {
		if m.Name == ActivationMetric {
			errs = append(errs, fieldError(path, fmt.Sprintf("the activation signal is the metric %q of the decision record: rename metrics[%d]", ActivationMetric, i),
				joinPath(strings.TrimSuffix(path, ".scaleToZero"), fmt.Sprintf("metrics[%d].name", i))))
		}
	}
	a := z.Activation
	switch {
	case a.Query == "":
		add("activation.query", "required")
	case strings.TrimSpace(a.Query) == "":
		add("activation.query", "must not be blank, got %q", a.Query)
	}
	switch {
	case a.PerReplica == nil:
		add("activation.perReplica", "required (the activation value one replica carries)")
	case !(a.PerReplica.Float64() > 0):
		add("activation.perReplica", "must be > 0, got %s", a.PerReplica)
	}
	if a.Threshold != nil && a.Threshold.Float64() < 0 {
		add("activation.threshold", "must be >= 0, got %s", a.Threshold)
	}
	if d := z.IdleDelay; d != nil && (d.Duration < 0 || d.Duration > MaxIdleDelay) {
		add("idleDelay", "must be 0s..24h, got %s", d)
	}
	if w := z.WakeAhead; w != nil {
		switch {
		case w.Enabled == nil || !*w.Enabled:
		case p.Forecast == nil:
			add("wakeAhead.enabled", "true needs a forecast (the policy has none)")
		case p.Forecast.MethodOrDefault() == forecast.MethodOff:
			add("wakeAhead.enabled", "true needs a forecast whose method is not off")
		}
		if w.MaxWrong != nil && !(*w.MaxWrong >= 0 && *w.MaxWrong < 1) {
			add("wakeAhead.maxWrong", "must be within [0, 1), got %v", *w.MaxWrong)
		}
		if w.Last != nil && (*w.Last < 1 || *w.Last > MaxWakeLast) {
			add("wakeAhead.last", "must be 1..%d, got %d", MaxWakeLast, *w.Last)
		}
	}
	return errs
}

// expectsLoad returns whether the forecast expects the load back at its horizon, and the
// replicas it plans for then: an ungated forecast with a known perReplica whose point
// forecast, or the seasonal-naive point (the load one season before), needs at least half
// a replica (a smaller return is left to the activation
// signal: waking a GPU for it would cost more than its wait).
func expectsLoad(f *ForecastInput) (int32, bool) {
	if f == nil || f.Gated || !f.PerReplicaKnown || !(f.PerReplica > 0) ||
		CheckSample(f.Point) != nil || CheckSample(f.Value) != nil {
		return 0, false
	}
	point := f.Point
	if f.SeasonalKnown && CheckSample(f.Seasonal) == nil {
		point = max(point, f.Seasonal)
	}
	if point < wakeExpectReplicasAt*f.PerReplica {
		return 0, false
	}
	return max(1, ceilReplicas(max(f.Value, point)/f.PerReplica)), true
}

// decideZero is Decide for a policy with scaleToZero. Above zero it is Decide's HPA path
// with a floor of one replica; only the idle rule takes the target to zero: the activation
// signal at or below its threshold for idleDelay, every metric (and the forecast's load)
// present, and no forecast return expected (unless wake-ahead is gated or off). At zero,
// the activation signal wakes the target straight to ceil(value / perReplica) (or more,
// as the forecast needs), past the scale-up rate policies; an expected return wakes it to
// the forecast's replicas; a missing activation sample holds zero.
func decideZero(p *Policy, in Observation, hist History, now time.Time) (Decision, History) {
	z := p.ScaleToZero
	cur := in.SpecReplicas
	zr := &ZeroResult{WakeGated: in.WakeGated}
	var act float64
	var active bool
	actErr := errNoSample
	if in.Activation != nil {
		act, active, actErr = z.ActivationValue(*in.Activation)
	}
	switch {
	case actErr != nil:
		zr.ActivationError = actErr.Error()
		hist.IdleSince = time.Time{} // missing data is never idle
	case active:
		zr.Activation = Float(act)
		hist.IdleSince = time.Time{}
	default:
		zr.Activation = Float(act)
		if hist.IdleSince.IsZero() {
			hist.IdleSince = now
		}
		zr.IdleSeconds = now.Sub(hist.IdleSince).Seconds()
	}
	wakeOn := p.WakeAheadOn()
	expected, expects := expectsLoad(in.Forecast)
	expects = expects && wakeOn && actErr == nil && !active

	if cur > 0 || !hist.ScaledToZero {
		// Above zero (or at a zero the autoscaler did not set: ScalingDisabled): the HPA
		// path, never below one replica, with the activation signal as one more metric (an
		// External AverageValue of perReplica): while the pods it woke start, they have no
		// samples, and the signal keeps scaling on the demand it sees.
		d, h := decide(withActivation(p), withActivationSample(in), hist, now, max(1, p.minReplicas()))
		d.Zero = zr
		idle := actErr == nil && !active && now.Sub(h.IdleSince) >= z.IdleDelayOrDefault()
		if cur == 0 || !idle || d.Reason == ReasonFailedGetMetric || d.Reason == ReasonAmbiguousSelector || anyMissing(&d, &in) {
			return d, h
		}
		if expects {
			zr.ExpectsLoad, zr.ExpectedReplicas = true, expected
			if !in.WakeGated {
				zr.Reason = ReasonWakeAhead // held awake: the load is expected back
				if up := min(expected, p.MaxReplicas); up > d.DesiredReplicas {
					d.Clamps = append(d.Clamps, Clamp{Reason: ReasonWakeAhead, From: d.DesiredReplicas, To: up})
					d.DesiredReplicas = up
					d.Reason = ReasonWakeAhead
				}
				return d, h
			}
			zr.Reason = ReasonWakeAheadGated
		}
		if zr.Reason == "" {
			zr.Reason = ReasonScaledToZero
		}
		d.Clamps = append(d.Clamps, Clamp{Reason: ReasonScaledToZero, From: d.DesiredReplicas, To: 0})
		d.DesiredReplicas, d.Reason = 0, ReasonScaledToZero
		return d, h
	}

	// At the zero the autoscaler set.
	d := Decision{Time: now, CurrentReplicas: 0, DesiredReplicas: 0, Zero: zr}
	hist.scalar = actErr == nil
	if f := in.Forecast; f != nil {
		d.Forecast = &ForecastResult{Method: f.Method, Point: Float(f.Point), Lo: Float(f.Lo), Hi: Float(f.Hi),
			Value: Float(f.Value), Gated: f.Gated, PerReplica: Float(f.PerReplica)}
	}
	if in.AmbiguousSelector {
		// As above zero, the HPA computes nothing for pods that are another's too: it holds
		// zero, whatever the activation signal says.
		d.Reason = ReasonAmbiguousSelector
		return d, hist
	}
	if actErr != nil {
		d.Reason = ReasonFailedGetMetric // missing activation data keeps the target at zero
		return d, hist
	}
	var want int32
	switch {
	case active:
		want = max(1, ceilReplicas(act/z.Activation.PerReplica.Float64()))
		d.Metric, d.Reason = ActivationMetric, ReasonActivated
		if n, ok := expectsLoad(in.Forecast); ok && n > want {
			want, d.Metric = n, ForecastMetric // the forecast floor joins, as above zero
		}
		zr.Reason = ReasonActivated
	case expects:
		zr.ExpectsLoad, zr.ExpectedReplicas = true, expected
		if in.WakeGated {
			zr.Reason, d.Reason = ReasonWakeAheadGated, ReasonScaledToZero
			return d, hist
		}
		want, d.Metric = expected, ForecastMetric
		d.Reason, zr.Reason = ReasonWakeAhead, ReasonWakeAhead
	default:
		d.Reason, zr.Reason = ReasonScaledToZero, ReasonScaledToZero
		return d, hist
	}
	d.Proposal = want
	desired := want
	if desired > p.MaxReplicas {
		d.Clamps = append(d.Clamps, Clamp{Reason: ReasonTooManyReplicas, From: desired, To: p.MaxReplicas})
		desired, d.Reason = p.MaxReplicas, ReasonTooManyReplicas
	}
	// The wake-up is a recommendation: the scale-down window holds it as any other.
	hist.Recommendations = append(hist.Recommendations, Recommendation{Replicas: desired, At: now})
	d.DesiredReplicas = desired
	return d, hist
}

// ActivationMetric is the name of the activation signal's entry in Decision.Metrics, last.
const ActivationMetric = "activation"

// withActivation returns p with the activation signal as its last metric: an External
// AverageValue metric whose target is perReplica.
func withActivation(p *Policy) *Policy {
	a := p.ScaleToZero.Activation
	q := *p
	q.Metrics = append(p.Metrics[:len(p.Metrics):len(p.Metrics)], Metric{Name: ActivationMetric, Query: a.Query,
		Target: MetricTarget{Type: AverageValue, AverageValue: a.PerReplica}})
	return &q
}

// withActivationSample returns in with the activation sample after the metrics' (missing
// when there is none).
func withActivationSample(in Observation) Observation {
	s := Sample{Err: errNoSample}
	if in.Activation != nil {
		s = *in.Activation
	}
	n := len(in.Metrics)
	in.Metrics = append(in.Metrics[:n:n], s)
	return in
}

// anyMissing reports whether a metric of the decision, or the forecast's load, is missing.
func anyMissing(d *Decision, in *Observation) bool {
	if in.LoadErr != nil {
		return true
	}
	for i := range d.Metrics {
		if d.Metrics[i].Error != "" {
			return true
		}
	}
	return false
}
