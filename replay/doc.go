// Package replay feeds recorded observations, one JSON object per line, through the decision
// engine and writes one JSON decision per line: what prescale (and so the HPA) would have done.
// It reads and writes streams only; the decisions come from policy.Decide.
package replay
