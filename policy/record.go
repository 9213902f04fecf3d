package policy

import (
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Reason says why a decision came out as it did. Where the HPA has a name for the same
// outcome, the reason is that name.
type Reason string

const (
	// ReasonDesiredWithinRange: the metrics' proposal was applied unchanged.
	ReasonDesiredWithinRange Reason = "DesiredWithinRange"
	// ReasonScaleUpStabilized: a lower recent recommendation held the scale-up back.
	ReasonScaleUpStabilized Reason = "ScaleUpStabilized"
	// ReasonScaleDownStabilized: a higher recent recommendation held the scale-down back.
	ReasonScaleDownStabilized Reason = "ScaleDownStabilized"
	// ReasonScaleUpLimit: a scale-up rate policy capped the increase.
	ReasonScaleUpLimit Reason = "ScaleUpLimit"
	// ReasonScaleDownLimit: a scale-down rate policy capped the decrease.
	ReasonScaleDownLimit Reason = "ScaleDownLimit"
	// ReasonTooManyReplicas: maxReplicas capped the result (or the current replicas were above it).
	ReasonTooManyReplicas Reason = "TooManyReplicas"
	// ReasonTooFewReplicas: minReplicas raised the result (or the current replicas were below it).
	ReasonTooFewReplicas Reason = "TooFewReplicas"
	// ReasonScalingDisabled: the target sits at zero replicas that the autoscaler did not set.
	ReasonScalingDisabled Reason = "ScalingDisabled"
	// ReasonFailedGetMetric: every metric is missing, or some are and the rest would scale
	// down, so the current replicas are held.
	ReasonFailedGetMetric Reason = "FailedGetMetric"
	// ReasonAmbiguousSelector: a pod that the target's selector selects is also selected by
	// another policy's target, so neither knows which pods are its own: the current replicas
	// are held and no metric is computed (the HPA's AmbiguousSelector).
	ReasonAmbiguousSelector Reason = "AmbiguousSelector"
	// ReasonCapacityLimited: the cluster cannot place more pods (GPUs), so the scale-up
	// stops at what fits. prescale's own reason; the HPA has no capacity cap. Decide never
	// gives it: the controller adds it, with its clamp, when the GPU allocation (alloc)
	// grants a decision less than it asked for.
	ReasonCapacityLimited Reason = "CapacityLimited"
	// ReasonForecastGated: the forecast's recent error is above the gate's maxError, so it
	// proposes nothing. It appears in Decision.Forecast.Reason only.
	ReasonForecastGated Reason = "ForecastGated"
	// ReasonForecastLearning: perReplica is "auto" and not learned yet, so the forecast
	// proposes nothing. It appears in Decision.Forecast.Reason only.
	ReasonForecastLearning Reason = "ForecastLearning"
)

// Semantics names the HPA computation a metric went through.
type Semantics string

const (
	// SemanticsPods is the HPA's Pods metric: a per-pod AverageValue.
	SemanticsPods Semantics = "Pods"
	// SemanticsAverageValue is the HPA's External/Object AverageValue: total / statusReplicas.
	SemanticsAverageValue Semantics = "AverageValue"
	// SemanticsValue is the HPA's External/Object Value: value / target times ready pods.
	SemanticsValue Semantics = "Value"
)

// Decision is the record of one sync: the answer and everything needed to explain it.
type Decision struct {
	Time            time.Time `json:"time"`
	CurrentReplicas int32     `json:"currentReplicas"`
	DesiredReplicas int32     `json:"desiredReplicas"`
	// Reason is the last rule that changed the result, or DesiredWithinRange.
	Reason Reason `json:"reason"`
	// Metric is the metric whose proposal won, empty when no metric was computed.
	Metric string `json:"metric,omitempty"`
	// Proposal is the largest metric proposal, before stabilization and limits (the HPA's
	// "prenormalized" desired replicas). Zero when no metric was computed.
	Proposal int32 `json:"proposal"`
	// Metrics has one entry per policy metric, in policy order.
	Metrics []MetricResult `json:"metrics"`
	// Clamps lists, in order, each rule that changed the replica count on the way from
	// Proposal to DesiredReplicas.
	Clamps []Clamp `json:"clamps,omitempty"`
	// Forecast is the forecast's part, nil when the sync had none.
	Forecast *ForecastResult `json:"forecast,omitempty"`
	// Zero is scale-to-zero's part, nil for a policy without scaleToZero.
	Zero *ZeroResult `json:"zero,omitempty"`
}

// ForecastResult is the forecast's part of a decision.
type ForecastResult struct {
	Method string `json:"method,omitempty"`
	// Point, Lo and Hi are the forecast of the load at now + horizon and its interval
	// (Hi is the planned quantile); Value is the load planned for: Hi, or with
	// forecast.hold the largest Hi of the last hold (then above Hi).
	Point Float `json:"point"`
	Lo    Float `json:"lo"`
	Hi    Float `json:"hi"`
	Value Float `json:"value"`
	// PerReplica is the load one replica carries; 0 while not learned.
	PerReplica Float `json:"perReplica"`
	// Proposal is ceil(Value / PerReplica); 0 when gated or not learned.
	Proposal int32 `json:"proposal"`
	// Won is true when the proposal exceeded every metric's (Decision.Metric is then
	// "forecast").
	Won bool `json:"won"`
	// Gated is true while the accuracy gate holds the forecast off.
	Gated bool `json:"gated,omitempty"`
	// Reason says why there is no proposal: ForecastGated or ForecastLearning.
	Reason Reason `json:"reason,omitempty"`
}

// MetricResult is one metric's part of a decision.
type MetricResult struct {
	Name      string    `json:"name"`
	Semantics Semantics `json:"semantics,omitempty"`
	// Value is what was compared with the target: the per-pod average (Pods, AverageValue)
	// or the value (Value), in the metric's units, from the HPA's milli-units.
	Value  Float   `json:"value"`
	Target float64 `json:"target"`
	// Ratio is value / target; null when undefined (no replicas).
	Ratio    Float `json:"ratio"`
	Proposal int32 `json:"proposal"`
	// Error says why the metric is missing; the other fields are then zero.
	Error string `json:"error,omitempty"`
	// Warnings are the sample's warnings (Sample.Warnings): the value may be computed
	// from a partial answer.
	Warnings []string `json:"warnings,omitempty"`
	// Pod accounting for Pods semantics: pods with a sample, Pending pods (left out, 0 on a
	// scale-up), Running pods without a sample, and deleted or failed pods (ignored).
	PodsWithSample int `json:"podsWithSample,omitempty"`
	PodsPending    int `json:"podsPending,omitempty"`
	PodsMissing    int `json:"podsMissing,omitempty"`
	PodsIgnored    int `json:"podsIgnored,omitempty"`
}

// MarshalJSON leaves out the value, ratio and proposal of a missing metric, which has none:
// a missing metric must never read as a zero.
func (r MetricResult) MarshalJSON() ([]byte, error) {
	type plain MetricResult
	if r.Error == "" {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		Name      string    `json:"name"`
		Semantics Semantics `json:"semantics,omitempty"`
		Target    float64   `json:"target"`
		Error     string    `json:"error"`
		Warnings  []string  `json:"warnings,omitempty"`
	}{r.Name, r.Semantics, r.Target, r.Error, r.Warnings})
}

// Clamp is one rule that moved the replica count.
type Clamp struct {
	Reason Reason `json:"reason"`
	From   int32  `json:"from"`
	To     int32  `json:"to"`
}

// Float is a float64 that marshals NaN and ±Inf as JSON null.
type Float float64

// MarshalJSON writes null for a non-finite value.
func (f Float) MarshalJSON() ([]byte, error) {
	v := float64(f)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}
