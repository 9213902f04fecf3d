// Package prom is the Prometheus side of the controller: a scaler.MetricSource that runs one
// instant PromQL query per call, evaluated at the controller's clock, and turns the result
// into a policy.Sample.
//
// A vector whose series carry the pod label gives a per-pod sample; a single series without
// it, or a scalar, gives a scalar sample. Everything else is an error, never zero: an empty
// result, a result older than maxAge, NaN or ±Inf, several series without the pod label, a
// pod twice, a matrix or string result, timeouts, connection and HTTP errors. Errors name the
// query and wrap one of the sentinels below; Kind turns them into a short label for metrics.
//
// Authentication and TLS come from github.com/prometheus/common/config, as in Prometheus'
// own scrape and remote-write clients.
//
// The tests tagged e2e run against a real Prometheus binary found in $PRESCALE_TOOLS_BIN.
//
// This package must not import policy's callers (scaler, cmd) or Kubernetes packages.
package prom
