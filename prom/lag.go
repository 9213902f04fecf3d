package prom

import (
	"fmt"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// exprParser parses queries as Prometheus does, experimental functions included.
var exprParser = parser.NewParser(parser.Options{EnableExperimentalFunctions: true})

// Lag returns how far query's value trails the signal it measures: for each path from the
// query's root to a selector, the sum of half of each range window on it (rate(x[1m]) is an
// average over the last minute, so a step in x shows at half its height 30 s later, and
// deriv's regression is centred the same way) and of each offset, and the longest of those
// paths. An instant selector without offset trails by nothing. Lag is what horizon: auto
// adds to the pods' start-up, so that a forecast of a lagging load still reaches past the
// start-up of the pods it plans. A query that does not parse is an error naming it.
func Lag(query string) (time.Duration, error) {
	expr, err := exprParser.ParseExpr(query)
	if err != nil {
		return 0, fmt.Errorf("parse query %q: %w", query, err)
	}
	return max(lag(expr), 0), nil
}

func lag(n parser.Node) time.Duration {
	var own time.Duration
	switch n := n.(type) {
	case *parser.VectorSelector:
		if pinned(n.Timestamp, n.StartOrEnd) {
			return 0
		}
		return n.OriginalOffset
	case *parser.MatrixSelector:
		if vs, ok := n.VectorSelector.(*parser.VectorSelector); ok && pinned(vs.Timestamp, vs.StartOrEnd) {
			return 0
		}
		own = n.Range / 2
	case *parser.SubqueryExpr:
		if pinned(n.Timestamp, n.StartOrEnd) {
			return 0
		}
		own = n.Range/2 + n.OriginalOffset
	}
	var longest time.Duration
	for child := range parser.ChildrenIter(n) {
		longest = max(longest, lag(child))
	}
	return own + longest
}

// pinned reports whether an @ modifier fixes a selector's time: it then does not move with
// the evaluation time, and trails nothing.
func pinned(timestamp *int64, startOrEnd parser.ItemType) bool {
	return timestamp != nil || startOrEnd != 0
}
