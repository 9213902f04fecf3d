package backtest

import (
	"sync"

	"github.com/prometheus/prometheus/promql/parser"
)

// cachingParser is the engine's parser: it parses each query once and hands the engine a
// copy of the tree at each evaluation. A backtest evaluates the same few queries at every
// tick, and parsing (its regular expressions above all) was a fifth of the time; the engine
// writes into the tree it evaluates (the selected series, preprocessing), so each
// evaluation gets its own copy. A tree with a node that clone does not know is parsed each
// time.
type cachingParser struct {
	parser.Parser
	cache sync.Map // query -> parser.Expr, pristine: only cloned
}

func (p *cachingParser) ParseExpr(input string) (parser.Expr, error) {
	if e, ok := p.cache.Load(input); ok {
		c, _ := clone(e.(parser.Expr))
		return c, nil
	}
	e, err := p.Parser.ParseExpr(input)
	if err != nil {
		return e, err
	}
	if pristine, ok := clone(e); ok {
		p.cache.Store(input, pristine)
	}
	return e, nil
}

// clone returns a copy of e that shares nothing the engine writes: every node, and a
// selector's series reset. ok is false for a node it does not know, or a duration given by
// an expression (the engine evaluates those in place).
func clone(e parser.Expr) (parser.Expr, bool) {
	switch n := e.(type) {
	case *parser.VectorSelector:
		if n.OriginalOffsetExpr != nil {
			return nil, false
		}
		c := *n
		c.Series, c.UnexpandedSeriesSet = nil, nil
		return &c, true
	case *parser.MatrixSelector:
		if n.RangeExpr != nil {
			return nil, false
		}
		c := *n
		vs, ok := clone(n.VectorSelector)
		c.VectorSelector = vs
		return &c, ok
	case *parser.SubqueryExpr:
		if n.RangeExpr != nil || n.OriginalOffsetExpr != nil || n.StepExpr != nil {
			return nil, false
		}
		c := *n
		x, ok := clone(n.Expr)
		c.Expr = x
		return &c, ok
	case *parser.AggregateExpr:
		c := *n
		c.Grouping = append([]string(nil), n.Grouping...)
		x, ok := clone(n.Expr)
		c.Expr = x
		if n.Param != nil {
			p, pok := clone(n.Param)
			c.Param, ok = p, ok && pok
		}
		return &c, ok
	case *parser.BinaryExpr:
		c := *n
		if n.VectorMatching != nil {
			vm := *n.VectorMatching
			c.VectorMatching = &vm
		}
		l, lok := clone(n.LHS)
		r, rok := clone(n.RHS)
		c.LHS, c.RHS = l, r
		return &c, lok && rok
	case *parser.Call:
		c := *n
		c.Args = make(parser.Expressions, len(n.Args))
		for i, a := range n.Args {
			x, ok := clone(a)
			if !ok {
				return nil, false
			}
			c.Args[i] = x
		}
		return &c, true
	case *parser.ParenExpr:
		c := *n
		x, ok := clone(n.Expr)
		c.Expr = x
		return &c, ok
	case *parser.UnaryExpr:
		c := *n
		x, ok := clone(n.Expr)
		c.Expr = x
		return &c, ok
	case *parser.NumberLiteral:
		c := *n
		return &c, true
	case *parser.StringLiteral:
		c := *n
		return &c, true
	}
	return nil, false
}
