package scaler

import "github.com/prescale/prescale/policy"

// The reasons of the events the controller records on a target. Each is sent while this
// instance may write (it leads and is not in dry-run); those marked as conditions are sent
// only when their message changes.
const (
	// ReasonSuccessfulRescale: the scale was written (the HPA's reason).
	ReasonSuccessfulRescale = "SuccessfulRescale"
	// ReasonFailedRescale: writing the scale failed; the next tick decides again.
	ReasonFailedRescale = "FailedRescale"
	// ReasonTargetRecreated: the target was deleted and recreated; its decision history is
	// reset.
	ReasonTargetRecreated = "TargetRecreated"
	// ReasonConflictingAutoscaler (condition, Warning): another autoscaler (an HPA, KEDA's
	// included) targets the workload, so prescale, not in dry-run, writes nothing.
	ReasonConflictingAutoscaler = "ConflictingAutoscaler"
	// ReasonAmbiguousSelector (condition, Warning): another policy's target selects some of
	// the target's pods, so neither knows which are its own, and both hold (the HPA's
	// reason for two HPAs whose targets' selectors overlap).
	ReasonAmbiguousSelector = string(policy.ReasonAmbiguousSelector)
	// ReasonFailedGetMetric (condition): a metric, or the forecast's load, is missing.
	ReasonFailedGetMetric = "FailedGetMetric"
	// ReasonMetricsStale (condition): a metric's, or the load's, latest sample is too old.
	ReasonMetricsStale = "MetricsStale"
	// ReasonCapacityLimited (condition): the GPUs left cap the scale-up.
	ReasonCapacityLimited = string(policy.ReasonCapacityLimited)
	// ReasonForecastHistoryFailed: the forecast's history could not be loaded; it starts
	// without it.
	ReasonForecastHistoryFailed = "ForecastHistoryFailed"
	// ReasonForecastFailed: the forecaster could not be built; the policy scales reactively.
	ReasonForecastFailed = "ForecastFailed"
	// ReasonForecastRefitFailed: a daily refit failed; the forecast keeps its fit.
	ReasonForecastRefitFailed = "ForecastRefitFailed"
	// ReasonForecastGated and ReasonForecastUngated: the accuracy gate closed or opened.
	ReasonForecastGated   = string(policy.ReasonForecastGated)
	ReasonForecastUngated = "ForecastUngated"
	// ReasonWakeAheadGated and ReasonWakeAheadResumed: too many of scaleToZero's recent
	// wake-ahead claims proved wrong, so the target waits for its activation signal; or
	// they proved right again, and it wakes ahead of a forecast return once more.
	ReasonWakeAheadGated   = string(policy.ReasonWakeAheadGated)
	ReasonWakeAheadResumed = "WakeAheadResumed"
	// ReasonActivationMissing (condition, Warning): scaleToZero's activation signal is
	// missing: the target neither goes to zero nor wakes from it on the signal.
	ReasonActivationMissing = "ActivationMissing"
	// ReasonObjectiveMissing (condition, Warning): the objective has had no observation
	// (no latency sample, no request known to wait, a load not known to be 0) for
	// Options.MissingAfter: no minute counts, so it neither adapts nor reports violations.
	ReasonObjectiveMissing = "ObjectiveMissing"
	// ReasonForecastLoadMissing (condition, Warning): the forecast's load has had no
	// usable sample for Options.MissingAfter: the forecast stops one horizon after its last
	// sample, and no scale-down happens while it is missing.
	ReasonForecastLoadMissing = "ForecastLoadMissing"
	// ReasonDecisionRecordUnreadable (Warning): a fresh engine found the target at zero
	// and its decision record (prescale.io/decision) unreadable, so it cannot tell whether
	// prescale set the zero: it reads it as set by hand (ScalingDisabled), as with no record.
	ReasonDecisionRecordUnreadable = "DecisionRecordUnreadable"
	// ReasonCapacityBufferNotReady (condition, Warning): the node autoscaler cannot resolve
	// the pods of the policy's CapacityBuffer (its ReadyForProvisioning condition is False;
	// the message says why), or no node autoscaler wrote the condition within 2 minutes of
	// the buffer's creation (Karpenter without its CapacityBuffer feature gate).
	ReasonCapacityBufferNotReady = "CapacityBufferNotReady"
)

// The keys of the conditions (events sent on change) a target keeps.
const (
	condTargetMissing = "TargetMissing"
	condConflict      = "autoscaler"
	condSelector      = "selector"
	condCapacity      = "capacity"
	condLoad          = "forecast/load"
	condLoadMissing   = "forecast/loadMissing"
	condObjMissing    = "objective/missing"
	condMetricPrefix  = "metric/"
	condActivation    = "scaleToZero/activation"
	condBuffer        = "capacity/buffer"
)
