package policy

import "time"

// File is the part of a policy file that this package owns: the list of policies. The file's
// global settings (Prometheus, interval, leader election, ...) are read by cmd/.
type File struct {
	Policies []Policy `yaml:"policies"`
}

// Policy is one autoscaled workload. Its fields mirror the HPA autoscaling/v2 spec, so that an
// HPA's minReplicas, maxReplicas, targets and behavior can be pasted in.
type Policy struct {
	// Name identifies the policy in records, metrics and events: lowercase letters, digits
	// and '-', starting with a letter.
	Name   string    `yaml:"name"`
	Target TargetRef `yaml:"target"`
	// MinReplicas defaults to 1, as in the HPA. 0 allows scaling to zero, which (as in the
	// HPA) only scalar metrics can scale up from.
	MinReplicas *int32   `yaml:"minReplicas"`
	MaxReplicas int32    `yaml:"maxReplicas"`
	Metrics     []Metric `yaml:"metrics"`
	// Behavior nil takes the HPA's behavior-less path: 300 s scale-down stabilization, no
	// scale-up stabilization, scale-up limited to max(2*current, 4).
	Behavior *Behavior `yaml:"behavior"`
	// Forecast, when set, adds a forecast of the load: its proposal joins the metrics'
	// maximum, so replicas are Ready before the load arrives. Nil: purely reactive.
	Forecast *Forecast `yaml:"forecast"`
	// Objective, when set, is the SLO the policy holds at the least GPU cost: it chooses
	// the forecast's planning quantile itself. It needs a forecast.
	Objective *Objective `yaml:"objective"`
	// ScaleToZero, when set (with minReplicas 0), idles the target at zero after
	// idleDelay without demand and wakes it on its activation signal, or ahead of a
	// forecast return. Without it, minReplicas 0 keeps the HPA's semantics.
	ScaleToZero *ScaleToZero `yaml:"scaleToZero"`
	// DryRun, when set, overrides the global dry-run setting for this policy: decide and
	// report, never write the scale.
	DryRun *bool `yaml:"dryRun"`
	// Capacity, when set, is the policy's claim on scarce GPUs (capacity.mode: cap): its
	// priority and guaranteed minimum. Nil: priority 0, nothing guaranteed.
	Capacity *Capacity `yaml:"capacity"`
}

// Capacity is a policy's claim on the GPUs it shares with other policies, which one
// allocation per tick arbitrates (docs/capacity.md).
type Capacity struct {
	// Priority orders the scale-ups when GPUs are scarce: higher first. Default 0; within
	// MinPriority..MaxPriority.
	Priority *int32 `yaml:"priority"`
	// Guaranteed is the guaranteed minimum, in replicas: the GPUs of this many pods are held
	// for the policy before any other policy scales up, whatever its priority. Default 0;
	// at most maxReplicas.
	Guaranteed *int32 `yaml:"guaranteed"`
}

// The bounds of capacity.priority: those of a Kubernetes PriorityClass's value for user
// classes.
const (
	MinPriority int32 = -1_000_000_000
	MaxPriority int32 = 1_000_000_000
)

// CapacityPriority returns the policy's capacity.priority, 0 when unset.
func (p *Policy) CapacityPriority() int32 {
	if p.Capacity == nil || p.Capacity.Priority == nil {
		return 0
	}
	return *p.Capacity.Priority
}

// CapacityGuaranteed returns the policy's capacity.guaranteed, 0 when unset.
func (p *Policy) CapacityGuaranteed() int32 {
	if p.Capacity == nil || p.Capacity.Guaranteed == nil {
		return 0
	}
	return *p.Capacity.Guaranteed
}

// TargetRef names the workload whose scale subresource the policy drives.
type TargetRef struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Namespace  string `yaml:"namespace"`
	Name       string `yaml:"name"`
}

// String returns "Kind namespace/name".
func (t TargetRef) String() string { return t.Kind + " " + t.Namespace + "/" + t.Name }

// Metric is one PromQL query and its target. A result labelled by pod gives the HPA's Pods
// semantics; a single series gives its External/Object semantics.
type Metric struct {
	Name   string       `yaml:"name"`
	Query  string       `yaml:"query"`
	Target MetricTarget `yaml:"target"`
}

// TargetType is the HPA's MetricTargetType, restricted to the two that apply to queries.
type TargetType string

const (
	// AverageValue targets the value per pod.
	AverageValue TargetType = "AverageValue"
	// Value targets the value of a single series.
	Value TargetType = "Value"
)

// MetricTarget is the HPA's MetricTarget: exactly one of AverageValue and Value is set, the
// one that Type names.
type MetricTarget struct {
	Type         TargetType `yaml:"type"`
	AverageValue *Quantity  `yaml:"averageValue"`
	Value        *Quantity  `yaml:"value"`
}

// Quantity returns the target quantity that Type selects, and false if it is not set.
func (t MetricTarget) Quantity() (Quantity, bool) {
	var q *Quantity
	switch t.Type {
	case AverageValue:
		q = t.AverageValue
	case Value:
		q = t.Value
	}
	if q == nil {
		return Quantity{}, false
	}
	return *q, true
}

// Behavior is the HPA's HorizontalPodAutoscalerBehavior.
type Behavior struct {
	ScaleUp   *Rules `yaml:"scaleUp"`
	ScaleDown *Rules `yaml:"scaleDown"`
}

// Rules is the HPA's HPAScalingRules. A nil field takes the HPA's default for its direction.
type Rules struct {
	StabilizationWindowSeconds *int32        `yaml:"stabilizationWindowSeconds"`
	SelectPolicy               *SelectPolicy `yaml:"selectPolicy"`
	Policies                   []RatePolicy  `yaml:"policies"`
	// Tolerance is the ratio distance from 1 within which no scaling happens in this
	// direction; default 0.1.
	Tolerance *Quantity `yaml:"tolerance"`
}

// SelectPolicy is the HPA's ScalingPolicySelect.
type SelectPolicy string

const (
	SelectMax      SelectPolicy = "Max"
	SelectMin      SelectPolicy = "Min"
	SelectDisabled SelectPolicy = "Disabled"
)

// RatePolicyType is the HPA's HPAScalingPolicyType.
type RatePolicyType string

const (
	PodsPolicy    RatePolicyType = "Pods"
	PercentPolicy RatePolicyType = "Percent"
)

// RatePolicy is the HPA's HPAScalingPolicy: at most Value pods (or percent) of change within
// any PeriodSeconds.
type RatePolicy struct {
	Type          RatePolicyType `yaml:"type"`
	Value         int32          `yaml:"value"`
	PeriodSeconds int32          `yaml:"periodSeconds"`
}

// The HPA's defaults (kube-controller-manager flags and API defaulting, v1.37).
const (
	DefaultMinReplicas              int32 = 1
	DefaultTolerance                      = 0.1
	DefaultScaleDownWindowSeconds   int32 = 300
	DefaultScaleUpWindowSeconds     int32 = 0
	MaxStabilizationWindowSeconds   int32 = 3600
	MaxPeriodSeconds                int32 = 1800
	behaviorlessScaleUpLimitFactor        = 2.0
	behaviorlessScaleUpLimitMinimum       = 4.0
	defaultScaleUpPodsValue         int32 = 4
	defaultScaleUpPercentValue      int32 = 100
	defaultScaleDownPercentValue    int32 = 100
	defaultPolicyPeriodSeconds      int32 = 15
)

// PodPhase is a pod's status.phase.
type PodPhase string

const (
	PodPending   PodPhase = "Pending"
	PodRunning   PodPhase = "Running"
	PodSucceeded PodPhase = "Succeeded"
	PodFailed    PodPhase = "Failed"
	PodUnknown   PodPhase = "Unknown"
)

// Pod is what the engine needs to know of one of the target's pods.
type Pod struct {
	Name     string   `json:"name"`
	Phase    PodPhase `json:"phase,omitempty"` // empty means Running
	Ready    bool     `json:"ready"`           // the PodReady condition is True
	Deleting bool     `json:"deleting,omitempty"`
}

// Observation is everything one sync observed of a target.
type Observation struct {
	// SpecReplicas is the scale subresource's spec.replicas: the HPA's "current replicas".
	SpecReplicas int32
	// StatusReplicas is the scale's status.replicas (pods not being deleted).
	StatusReplicas int32
	// Pods are the pods that the scale's status.selector selects.
	Pods []Pod
	// Metrics holds one sample per policy metric, in the order of Policy.Metrics.
	Metrics []Sample
	// Forecast is the caller's forecast for this sync (the engine's forecast predictor's Observe), nil without
	// one. Its proposal joins the metrics' maximum.
	Forecast *ForecastInput
	// LoadErr, when not nil, says why the forecast's load query had no usable sample this
	// sync (the controller's: empty, stale, NaN or failed). The load counts as one more
	// missing metric: as the HPA does for a missing metric, Decide holds the current
	// replicas when the rest would scale down, so a missing load never causes a scale-down.
	LoadErr error
	// Activation is the sample of scaleToZero.activation.query, nil without one (missing,
	// for a policy with scaleToZero: it never idles nor wakes on it).
	Activation *Sample
	// WakeGated is true while the wake-ahead gate holds early wake-ups off (the engine's
	// judgement of its past claims).
	WakeGated bool
	// AmbiguousSelector is true when a pod that the scale's selector selects is also
	// selected by another policy's target: Decide then holds the current replicas wherever
	// the HPA would compute metrics (it still clamps replicas outside [minReplicas,
	// maxReplicas], and a zero it did not set stays ScalingDisabled).
	AmbiguousSelector bool
}

// ForecastInput is one sync's forecast of the load at now + horizon.
type ForecastInput struct {
	// Value is the load planned for (the planned quantile Hi, or with forecast.hold the
	// largest of the last hold); Point, Lo and Hi the point forecast and its interval.
	// Load units (requests/s, or the load query's).
	Value, Point, Lo, Hi float64
	// PerReplica is the load one replica carries at target; PerReplicaKnown is false while
	// perReplica: auto has not learned it yet (then there is no proposal).
	PerReplica      float64
	PerReplicaKnown bool
	// Gated is true while the accuracy gate holds the forecast off (then no proposal).
	Gated bool
	// Method is the forecasting method that made the prediction.
	Method string
	// Seasonal is the seasonal-naive point at the horizon, the load one season before
	// now + horizon (SeasonalKnown false: not asked, or less than a season seen). Only
	// scaleToZero's wake-ahead reads it: a return at this time of day.
	Seasonal      float64
	SeasonalKnown bool
}

// Sample is one metric's latest observation.
type Sample struct {
	// PerPod holds one value per pod, by pod name: the HPA's Pods semantics. Nil for a
	// scalar sample.
	PerPod map[string]float64
	// Value is the single series' value, used when PerPod is nil.
	Value float64
	// Err, when not nil, says why the metric is missing; PerPod and Value are then ignored.
	Err error
	// Warnings are what the source said of a usable but possibly partial answer
	// (Prometheus' warnings: a shard or a remote-read store that did not answer). The value
	// is used; the decision's record carries them (MetricResult.Warnings).
	Warnings []string
}

// Recommendation is one sync's pre-behavior desired replicas, kept for stabilization.
type Recommendation struct {
	Replicas int32     `json:"replicas"`
	At       time.Time `json:"at"`
}

// ScaleEvent is one written change of scale, kept for the rate policies.
type ScaleEvent struct {
	Change   int32     `json:"change"` // absolute value
	At       time.Time `json:"at"`
	Outdated bool      `json:"outdated,omitempty"`
}

// History is the state Decide carries from one sync of a policy to the next. The zero value
// is the state before the first sync.
type History struct {
	Recommendations []Recommendation `json:"recommendations,omitempty"`
	ScaleUpEvents   []ScaleEvent     `json:"scaleUpEvents,omitempty"`
	ScaleDownEvents []ScaleEvent     `json:"scaleDownEvents,omitempty"`
	// ScaledToZero is the HPA's ScaledToZero condition: the last write scaled the target
	// from above zero to zero.
	ScaledToZero bool `json:"scaledToZero,omitempty"`
	// IdleSince is when scaleToZero's activation signal last went to or below its
	// threshold, zero while it is above or missing.
	IdleSince time.Time `json:"idleSince,omitzero"`
	// scalar records whether the last Decide saw a scalar sample: the HPA's "has Object or
	// External metrics", which scaling to and from zero needs.
	scalar bool
}
