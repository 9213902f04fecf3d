// Package engine is prescale's one per-policy autoscaler engine: the state a policy carries
// from tick to tick (the decision History, the HPA-equivalent decision's, the forecast's
// predictor, its refit schedule and horizon) and the step that turns one tick's observation
// into a decision. `prescale run` (package scaler), `prescale backtest` and `prescale
// replay` all drive it, so that what is backtested or replayed is what runs.
//
// A driver, each tick: observes the target (scale, pods, metrics, the forecast's load),
// calls SetStartup with the pods' start-up time when it measures one, loads the history
// that HistoryWanted asks for (if it has a source) and hands it to Fit, calls Step, writes
// the decision, and reports each write that took effect with Scaled.
//
// Like policy.Decide, the engine is pure: no I/O, no clock (every call takes now), no
// logging. It imports policy and forecast only, never k8s.io, Prometheus or viper. An
// Engine is not safe for concurrent use.
package engine
