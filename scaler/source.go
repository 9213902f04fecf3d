package scaler

import (
	"context"
	"time"

	"github.com/prescale/prescale/policy"
)

// MetricSource returns the latest value of a PromQL query. A result labelled by the pod
// label gives a per-pod sample (HPA Pods semantics); a single series, or a scalar, gives a
// scalar sample. NaN, ±Inf, an empty result, samples older than maxAge, several series without
// the pod label, timeouts and HTTP errors are errors, never zero: the error says why, and
// errors.Is classifies it (see package prom).
type MetricSource interface {
	Sample(ctx context.Context, query string, now time.Time, maxAge time.Duration) (policy.Sample, error)
}

// LatencySource returns the latest value of an objective's latency query, in seconds: one
// series or a scalar. +Inf is a value (a latency beyond any bound, over every SLO); NaN,
// -Inf, an empty or stale result, a result per pod and several series are errors, never
// zero. warnings are what the source said of a usable but possibly partial answer
// (Prometheus' warnings), returned with the value. prom.Source implements it.
type LatencySource interface {
	Latency(ctx context.Context, query string, now time.Time, maxAge time.Duration) (seconds float64, warnings []string, err error)
}
