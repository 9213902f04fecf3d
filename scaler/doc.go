// Package scaler is the controller behind `prescale run`. Every tick (Controller.Tick) runs
// four phases, each over every policy before the next, with one pass per policy:
// observe reads the target's scale subresource and pods (client-go informers), runs the
// policy's queries (a MetricSource) and starts or takes the forecast's history (a
// HistorySource, in the background); decide steps the policy's engine.Engine, which decides
// (with the forecaster it fits on that history, its horizon from the pods' measured
// start-up) and does no I/O; allocate, with capacity.mode: cap, grants the GPUs once across
// every decision (alloc.Step, out of the nodes' free GPUs), lowering a decision
// above its grant to it; act writes the scale when the instance leads and is not in
// dry-run, and sends every event, log line and metric. The decision records are written
// after the tick, in the background. It owns all the I/O that engine/, alloc/ and policy/
// must not do; the clock is injected (k8s.io/utils/clock) and read once per tick.
package scaler
