// Package scaler is the controller behind `prescale run`: every tick, for every policy, it
// reads the target's scale subresource and pods (client-go informers), runs the policy's
// queries (a MetricSource) and steps the policy's engine.Engine, which decides: it calls
// policy.Decide and its forecast predictor (fitted on the load's history, which the
// controller loads from a HistorySource in the background, its horizon from the pods'
// measured start-up). Then, with capacity.mode: cap, one GPU allocation across every
// policy's decision (alloc.AllocateTiers, out of the nodes' free GPUs) lowers a decision
// above its grant to it; then the controller writes the scale when it leads and is not in
// dry-run. Events, the decision annotation, the dry-run scorecard and Prometheus metrics are
// derived from the decision record, once per channel. It owns all the I/O that engine/,
// alloc/ and policy/ must not do; the clock is injected (k8s.io/utils/clock) and read once
// per tick.
package scaler
