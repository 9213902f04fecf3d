// Package scaler will hold the controller that `prescale run` starts (leader election,
// informers, the Prometheus source, actuation through the scale subresource, events, metrics,
// the dry-run shadow), arriving with the controller issue. It calls policy.Decide and owns all
// of the I/O that policy/ must not do.
package scaler
