// Package prom is prescale's Prometheus source, used by the controller (scaler), the backtest,
// replay (the load query's lag) and the preflight: a scaler.MetricSource that runs one instant
// PromQL query per call, evaluated at the caller's clock, and turns the result into a
// policy.Sample.
//
// A vector whose series carry the pod label gives a per-pod sample; a single series without
// it, or a scalar, gives a scalar sample. Everything else is an error, never zero: an empty
// result, a result older than maxAge, NaN or ±Inf, several series without the pod label, a
// pod twice, a matrix or string result, timeouts, connection and HTTP errors. Errors name the
// query and wrap one of the sentinels below; Kind turns them into a short label for metrics.
//
// maxAge is sent as the query's lookback_delta, which bounds how old a sample an instant
// vector selector (x, sum(x)) may return; Prometheus' results carry the evaluation time, not
// the sample's. A range selector (rate(x[5m])) looks back over its own range whatever maxAge
// is, and a series that vanished from its target is hidden at once by Prometheus' staleness
// marker (ErrEmpty, not ErrStale).
//
// Latency runs an instant query for a policy objective's latency: one series or a scalar,
// in seconds, where +Inf is a value (a quantile in the +Inf bucket: beyond any bound) and a
// result per pod is an error.
//
// History runs a range query for the forecast's history at start-up, split into queries of
// at most 11,000 points each (Prometheus' limit per series); a per-pod result is summed,
// and NaN, ±Inf and negative steps are left out, never zero.
//
// SeriesExist asks Prometheus' series API whether a selector has any series over a window,
// for prescale validate's preflight (a histogram's base name has no series of its own).
//
// Authentication and TLS come from github.com/prometheus/common/config, as in Prometheus'
// own scrape and remote-write clients.
//
// The tests tagged e2e start a real Prometheus, the binary $PRESCALE_TOOLS_BIN/prometheus,
// and fail (never skip) without it:
//
//	PRESCALE_TOOLS_BIN=/path/to/dir go test -tags e2e ./prom/...
//
// This package must not import policy's callers (scaler, cmd) or Kubernetes packages.
package prom
