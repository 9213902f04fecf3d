// Package external serves prescale's policy queries as the Kubernetes external metrics API
// (external.metrics.k8s.io/v1beta1), so that an ordinary HPA can scale on them.
//
// Each policy metric is an external metric named "<policy>-<metric>" whose value is the
// query's value now: a scalar as is, a per-pod result summed over its series, each series
// truncated to 1/1000 first, exactly as policy.Decide counts a Value target
// (policy.ValueMilli). "<policy>-forecast-replicas" is the forecast's latest replica
// proposal, as the controller made it at its last tick (Options.Forecasts): an error, never
// a zero, while the policy has no forecast ("forecast not configured"), and while its
// forecast is gated, learning (warming up, perReplica: auto not learned), missing (no tick
// yet, no load) or stale (the last tick older than max(2 intervals, staleness): a follower,
// which does not tick, answers so).
//
// Values are read from the MetricSource at request time, with the controller's staleness:
// an empty, stale, NaN or failed query is an error for that metric (the HPA reports
// FailedGetExternalMetric and holds), never a zero.
//
// The server (Serve) is sigs.k8s.io/custom-metrics-apiserver's, with delegated
// authentication and authorization against the cluster's apiserver. This package may import
// scaler and policy; nothing in scaler or policy imports it.
package external
