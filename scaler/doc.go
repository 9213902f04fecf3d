// Package scaler is the controller behind `prescale run`: every tick, for every policy, it
// reads the target's scale subresource and pods (client-go informers), runs the policy's
// queries (a MetricSource), computes the GPU capacity left, feeds a policy's forecast (a
// forecast predictor in each policy's engine, fitted at start-up on the load's history from a
// HistorySource, its horizon from the pods' measured start-up), asks policy.Decide for the
// desired replicas, and writes the scale when it leads and is not in dry-run. Events, the
// decision annotation, the dry-run scorecard and Prometheus metrics are derived from the
// decision record, once per channel. It owns all the I/O that policy/ must not do; the clock
// is injected (k8s.io/utils/clock) and read once per tick.
package scaler
