package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/prescale/prescale/policy"
)

// lookbackDelta is how far back an instant selector finds a sample. Prometheus' default is
// 5 minutes; the model has a sample at every tick (at most a minute apart), and every
// series that ends has a stale marker at the next tick, so a minute gives the same
// results and keeps fewer ticks.
const lookbackDelta = time.Minute

// promqlParser parses queries as the engine does.
var promqlParser = parser.NewParser(parser.Options{})

// queryEngine evaluates every policy's queries over its model's series: one engine for
// every run (it is safe for concurrent use), with Prometheus' defaults, the @ modifier and
// negative offsets off (the model keeps only the recent ticks).
var queryEngine = promql.NewEngine(promql.EngineOpts{
	MaxSamples:    50_000_000,
	Timeout:       time.Minute,
	LookbackDelta: lookbackDelta,
	Parser:        &cachingParser{Parser: promqlParser},
})

// modelQuery is one of a policy's queries, checked against the model's series.
type modelQuery struct {
	// what names the query in errors: "metric queue", "forecast.load", "objective",
	// "scaleToZero.activation".
	what, query string
	// reach is how far back from the evaluation instant the query reads samples.
	reach time.Duration
}

// ErrUnexported is the error of a query whose selector names a series that the model does not
// export, or selects none of its series.
var ErrUnexported = errors.New("selects no series the model exports")

// checkQuery parses query q of policy p (named by what) and checks that each of its
// selectors selects a series that the model of workload namespace/name exports. Its
// error names the query, the policy and the selector.
func checkQuery(p *policy.Policy, what, q string) (modelQuery, error) {
	mq := modelQuery{what: what, query: q}
	expr, err := promqlParser.ParseExpr(q)
	if err != nil {
		return mq, fmt.Errorf("%s of policy %s: query %q: %w", what, p.Name, q, err)
	}
	rep := representative(p.Target.Namespace, p.Target.Name)
	var errs []error
	parser.Inspect(expr, func(n parser.Node, path []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		reach := lookbackDelta + vs.OriginalOffset
		if len(path) > 0 {
			if m, ok := path[len(path)-1].(*parser.MatrixSelector); ok {
				reach += m.Range
			}
		}
		for _, a := range path {
			if sq, ok := a.(*parser.SubqueryExpr); ok {
				reach += sq.Range + sq.OriginalOffset
			}
		}
		mq.reach = max(mq.reach, reach)
		if vs.Timestamp != nil || vs.StartOrEnd != 0 {
			errs = append(errs, fmt.Errorf("%s of policy %s: query %q: selector %s: the @ modifier: the backtest evaluates at each tick", what, p.Name, q, vs))
			return nil
		}
		if !rep.selects(vs.LabelMatchers) {
			errs = append(errs, fmt.Errorf("%s of policy %s: query %q: selector %s %w (%s, labelled as in docs/backtest.md)",
				what, p.Name, q, vs, ErrUnexported, strings.Join(exportedNames(), ", ")))
		}
		return nil
	})
	return mq, errors.Join(errs...)
}

// representative is a model with one pod of each kind, whose label sets stand for every
// series the model exports: a selector selects a series of a run only if it selects one of
// these.
type representativeModel struct {
	x *expo
	p *modelPod
}

func representative(namespace, workload string) representativeModel {
	x := &expo{namespace: namespace, workload: workload}
	x.svcLabels = serviceLabels(namespace, workload)
	return representativeModel{x: x, p: &modelPod{name: podName(workload, 0), removed: -1}}
}

func (r representativeModel) selects(ms []*labels.Matcher) bool {
	for i := range modelFamilies {
		f := &modelFamilies[i]
		if !namesMatch(f, ms) {
			continue
		}
		ls := r.x.svcLabels[:]
		if f.scope != perService {
			ls = r.x.podLabels(r.p, f)
		} else {
			ls = ls[f.metric-mRequests : f.metric-mRequests+1]
		}
		for _, l := range ls {
			if matchAll(ms, l) {
				return true
			}
		}
	}
	return false
}

// eval evaluates q at now over x's series.
func (x *expo) eval(q *modelQuery, now time.Time) (promql.Vector, float64, bool, error) {
	ctx := context.Background()
	x.buf, x.series = x.buf[:0], x.series[:0]
	qry, err := queryEngine.NewInstantQuery(ctx, x, nil, q.query, now)
	if err != nil {
		return nil, 0, false, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return nil, 0, false, res.Err
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v, 0, false, nil
	case promql.Scalar:
		return nil, v.V, true, nil
	}
	return nil, 0, false, fmt.Errorf("%s result, want a vector or a scalar", res.Value.Type())
}

// Errors of a query's result, as prescale run's Prometheus source gives them.
var (
	errEmpty  = errors.New("no series")
	errShape  = errors.New("unexpected result shape")
	errFinite = errors.New("not a finite number")
)

// sample evaluates q at now into a policy sample as prescale run decodes an instant query:
// one series without the pod label (or a scalar) is a value; series that all carry the
// pod label are one value per pod, into perPod (cleared first); anything else, no series,
// NaN or ±Inf is an error. latency allows +Inf (histogram_quantile's answer beyond the
// last bucket) and refuses a result per pod.
func (x *expo) sample(q *modelQuery, now time.Time, perPod map[string]float64, latency bool) policy.Sample {
	vec, scalar, isScalar, err := x.eval(q, now)
	switch {
	case err != nil:
		return policy.Sample{Err: err}
	case isScalar:
		return valueSample(scalar, "scalar", latency)
	case len(vec) == 0:
		return policy.Sample{Err: errEmpty}
	}
	withPod := 0
	for _, s := range vec {
		if s.Metric.Has("pod") {
			withPod++
		}
	}
	switch {
	case withPod == 0 && len(vec) == 1:
		return valueSample(vec[0].F, vec[0].Metric.String(), latency)
	case latency:
		return policy.Sample{Err: fmt.Errorf("want one series, got %d (%s): %w", len(vec), vec[0].Metric, errShape)}
	case withPod < len(vec):
		return policy.Sample{Err: fmt.Errorf("%d of %d series without the \"pod\" label: %w", len(vec)-withPod, len(vec), errShape)}
	}
	clear(perPod)
	for _, s := range vec {
		pod := s.Metric.Get("pod")
		if _, dup := perPod[pod]; dup {
			return policy.Sample{Err: fmt.Errorf("pod %q in several series: %w", pod, errShape)}
		}
		if math.IsNaN(s.F) || math.IsInf(s.F, 0) {
			return policy.Sample{Err: fmt.Errorf("pod %q: value %v: %w", pod, s.F, errFinite)}
		}
		perPod[pod] = s.F
	}
	return policy.Sample{PerPod: perPod}
}

func valueSample(v float64, series string, latency bool) policy.Sample {
	if math.IsNaN(v) || math.IsInf(v, -1) || (!latency && math.IsInf(v, 1)) {
		return policy.Sample{Err: fmt.Errorf("%s: value %v: %w", series, v, errFinite)}
	}
	return policy.Sample{Value: v}
}
