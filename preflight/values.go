package preflight

import (
	"fmt"
	"math"
	"time"
)

// The bounds of the scale rules (see the package doc).
const (
	// scaleFactor is how many times larger one scale must be than the other before values
	// and target are judged to be on different scales.
	scaleFactor = 10
	// percentMax is the largest value a percentage takes.
	percentMax = 100
	// latencyFactor is how many times its SLO a latency must be to be judged in
	// milliseconds or microseconds rather than seconds.
	latencyFactor = 1000
)

// scaleMismatch says why values, each compared with target (of the metric target's field,
// "averageValue" or "value"), cannot mean what the target does, or "" when they can:
//
//   - a ratio against a larger scale: every value within [0, 1], at least one strictly
//     between 0 and 1, target > 1 and target ≥ scaleFactor × the largest value;
//   - a percentage against a ratio: every value within [0, percentMax], the largest > 1
//     and ≥ scaleFactor × target, and target < 1.
//
// values must be finite and not empty.
func scaleMismatch(values []float64, target float64, field string) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	fraction := false
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
		if v > 0 && v < 1 {
			fraction = true
		}
	}
	if lo < 0 || len(values) == 0 {
		return ""
	}
	switch {
	case hi <= 1 && fraction && target > 1 && target >= scaleFactor*hi:
		return fmt.Sprintf("%s within 0..1 against %s %g, %.0f times the largest: a 0..1 ratio against a target on "+
			"another scale, such as a percentage (multiply the query by 100, or write the target as a ratio)",
			valuesAre(values, hi), field, target, target/hi)
	case hi <= percentMax && hi > 1 && target < 1 && hi >= scaleFactor*target:
		return fmt.Sprintf("%s within 0..%d against %s %g, below 1: a percentage against a 0..1 ratio target "+
			"(divide the query by 100, or write the target as a percentage)",
			valuesAre(values, hi), percentMax, field, target)
	}
	return ""
}

// valuesAre is the subject of a message about values, whose largest is hi: "the value 0.4
// is" or "all 2 values (largest 0.4) are".
func valuesAre(values []float64, hi float64) string {
	if len(values) == 1 {
		return fmt.Sprintf("the value %g is", hi)
	}
	return fmt.Sprintf("all %d values (largest %g) are", len(values), hi)
}

// latencyScale says why an objective's latency, in seconds, cannot be compared with its
// SLO, or "" when it can: a latency of at least latencyFactor × the SLO is read as
// milliseconds or microseconds.
func latencyScale(seconds float64, slo time.Duration) string {
	s := slo.Seconds()
	if s <= 0 || seconds < latencyFactor*s {
		return ""
	}
	return fmt.Sprintf("latency %g s against the slo %s, %.0f times over: the query's unit is not seconds "+
		"(milliseconds or microseconds?); divide it by 1000 or 1e6, as the objective reads seconds", seconds, slo, seconds/s)
}
