// Package replay feeds recorded observations, one JSON object per line, through the decision
// engine and writes one JSON decision per line: what prescale (and so the HPA) would have done.
// It reads and writes streams only; the decisions come from the policy's engine.Engine (the
// one prescale run and prescale backtest drive), which calls policy.Decide and, for a policy
// with a forecast, its forecast predictor. A line carries no GPU capacity: there is no
// allocation.
package replay
