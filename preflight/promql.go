package preflight

import (
	"slices"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// promql parses queries as Prometheus does, experimental functions included: a query that
// a Prometheus with them enabled accepts should not lose its checks here.
var promql = parser.NewParser(parser.Options{EnableExperimentalFunctions: true})

// metricNames returns the metric names that query's selectors name exactly (foo, or
// {__name__="foo"}), sorted, each once; none when query does not parse (Prometheus then
// says why) or selects by a regular expression on the name.
func metricNames(query string) []string {
	expr, err := promql.ParseExpr(query)
	if err != nil {
		return nil
	}
	var names []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual && !slices.Contains(names, m.Value) {
				names = append(names, m.Value)
			}
		}
		return nil
	})
	sort.Strings(names)
	return names
}

// groupsBy reports whether query's outermost aggregation, on any path from the root, keeps
// label by name: sum by (pod) (x), and also x / on (pod) sum by (pod) (y) or
// topk(3, sum by (pod) (x)), whose results keep the grouping of the aggregation inside.
// An aggregation "without" a list of labels, or a query that does not parse, does not.
func groupsBy(query, label string) bool {
	expr, err := promql.ParseExpr(query)
	if err != nil {
		return false
	}
	return outermostGroupsBy(expr, label)
}

func outermostGroupsBy(n parser.Node, label string) bool {
	if a, ok := n.(*parser.AggregateExpr); ok {
		switch a.Op {
		case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO:
			// These keep the labels of the series they select, whatever their grouping.
			if !a.Without && slices.Contains(a.Grouping, label) {
				return true
			}
			return outermostGroupsBy(a.Expr, label)
		}
		return !a.Without && slices.Contains(a.Grouping, label)
	}
	for _, c := range parser.Children(n) {
		if outermostGroupsBy(c, label) {
			return true
		}
	}
	return false
}
