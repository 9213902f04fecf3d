package backtest

import (
	"context"
	"math"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// The model's series as a storage.Queryable, for the PromQL engine: a Select computes
// the samples of the series its matchers select from the model's per-tick states, one a
// tick (a scrape each tick) at Epoch + tick x dt, within the window the states are kept. A
// series that ends (a pod removed, a GPU collected without its pod) has a stale marker at
// the first tick without a sample, as a Prometheus scrape writes one.

// Querier implements storage.Queryable.
func (x *expo) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{x: x}, nil
}

type querier struct{ x *expo }

// modelSeries is one series of the model within a Select's ticks.
type modelSeries struct {
	lbls     labels.Labels
	f        *modelFamily
	p        *modelPod // nil for the service's series
	part     int
	from, to int // ticks
	samples  []floatSample
}

func (q *querier) Close() error { return nil }

func (q *querier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (q *querier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

// epochMS is Epoch in milliseconds.
var epochMS = Epoch.UnixMilli()

// Select returns the series of the model that ms select with a sample or a stale marker in
// hints' time range.
func (q *querier) Select(_ context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	x := q.x
	from, to := x.now-len(x.ring)+1, x.now
	if hints != nil {
		// Ticks with a timestamp in [Start, End].
		from = max(from, int(ceilDiv(hints.Start-epochMS, x.tickMS)))
		to = min(to, int(floorDiv(hints.End-epochMS, x.tickMS)))
	}
	from = max(from, 0)
	match := x.matcher(ms)
	start := len(x.series)
	if from <= to {
		for i := range modelFamilies {
			f := &modelFamilies[i]
			if !namesMatch(f, ms) {
				continue
			}
			add := func(p *modelPod, ls []labels.Labels) {
				for j, l := range ls {
					if !match(l) {
						continue
					}
					part := partNone
					if f.Type == "histogram" {
						part = j
						switch j {
						case len(ls) - 2:
							part = partSum
						case len(ls) - 1:
							part = partCount
						}
					}
					s := modelSeries{lbls: l, f: f, p: p, part: part, from: from, to: to}
					if x.collect(&s) {
						x.series = append(x.series, s)
					}
				}
			}
			switch f.scope {
			case perService:
				add(nil, []labels.Labels{x.svcLabels[f.metric-mRequests]})
			default:
				for _, group := range [3][]*modelPod{x.ready, x.starting, x.dead} {
					for _, p := range group {
						if f.scope == perReadyPod && p.readyAt > to {
							continue
						}
						add(p, x.podLabels(p, f))
					}
				}
			}
		}
	}
	// Like x.buf, x.series is an arena that each evaluation resets.
	out := x.series[start:len(x.series):len(x.series)]
	if sortSeries {
		slices.SortFunc(out, func(a, b modelSeries) int { return labels.Compare(a.lbls, b.lbls) })
	}
	return &seriesSet{series: out, i: -1}
}

// namesMatch reports whether the matchers of the metric name select one of f's names.
func namesMatch(f *modelFamily, ms []*labels.Matcher) bool {
	names := []string{f.Name}
	if f.Type == "histogram" {
		names = []string{f.Name + "_bucket", f.Name + "_sum", f.Name + "_count"}
	}
	for _, n := range names {
		ok := true
		for _, m := range ms {
			if m.Name == model.MetricNameLabel && !m.Matches(n) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// matcher returns a function that reports whether a label set matches all of ms,
// remembering each regular expression's answer for a value: the pods' series share their
// label values, a Select tests each for every pod and bucket, and every evaluation of a
// query selects the same pods again. The answers are kept by matcher: the parse cache
// hands every evaluation of a query the same matchers (cachingParser). A query it cannot
// cache brings new matchers each time: past memoMatchers, the memory starts over.
func (x *expo) matcher(ms []*labels.Matcher) func(labels.Labels) bool {
	if x.memo == nil || len(x.memo) > memoMatchers {
		x.memo = map[*labels.Matcher]map[string]bool{}
	}
	memo := make([]map[string]bool, len(ms))
	for i, m := range ms {
		if m.Type != labels.MatchRegexp && m.Type != labels.MatchNotRegexp {
			continue
		}
		if memo[i] = x.memo[m]; memo[i] == nil {
			memo[i] = map[string]bool{}
			x.memo[m] = memo[i]
		}
	}
	return func(l labels.Labels) bool {
		for i, m := range ms {
			v := l.Get(m.Name)
			if m.Type != labels.MatchRegexp && m.Type != labels.MatchNotRegexp {
				if !m.Matches(v) {
					return false
				}
				continue
			}
			ok, seen := memo[i][v]
			if !seen {
				ok = m.Matches(v)
				memo[i][v] = ok
			}
			if !ok {
				return false
			}
		}
		return true
	}
}

// memoMatchers bounds the matchers whose answers an exposition keeps.
const memoMatchers = 256

func matchAll(ms []*labels.Matcher, l labels.Labels) bool {
	for _, m := range ms {
		if !m.Matches(l.Get(m.Name)) {
			return false
		}
	}
	return true
}

func (s *modelSeries) Labels() labels.Labels { return s.lbls }

// Iterator iterates over s's samples, reusing it when it is one of storage's list
// iterators (the engine hands back the last series' iterator): a query iterates over every
// bucket of every pod.
func (s *modelSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if r, ok := it.(interface{ Reset(storage.Samples) }); ok {
		r.Reset(samples(s.samples))
		return it
	}
	return storage.NewListSeriesIterator(samples(s.samples))
}

type seriesSet struct {
	series []modelSeries
	i      int
}

func (ss *seriesSet) Next() bool                        { ss.i++; return ss.i < len(ss.series) }
func (ss *seriesSet) At() storage.Series                { return &ss.series[ss.i] }
func (ss *seriesSet) Err() error                        { return nil }
func (ss *seriesSet) Warnings() annotations.Annotations { return nil }

// collect computes the samples of s's ticks into x.buf, with a stale marker at the first
// tick without a sample after one with, and reports whether there is any.
func (x *expo) collect(s *modelSeries) bool {
	had := false
	if x.inWindow(s.from - 1) {
		_, had = x.value(s.f, s.p, s.part, s.from-1)
	}
	start := len(x.buf)
	for t := s.from; t <= s.to; t++ {
		v, ok := x.value(s.f, s.p, s.part, t)
		switch {
		case ok:
			x.buf = append(x.buf, floatSample{t: epochMS + int64(t)*x.tickMS, f: v})
		case had:
			x.buf = append(x.buf, floatSample{t: epochMS + int64(t)*x.tickMS, f: math.Float64frombits(value.StaleNaN)})
		}
		had = ok
	}
	// A later append may move x.buf: the series keeps its own slice header, whose array
	// stays valid (the query reads it before the next evaluation resets x.buf).
	s.samples = x.buf[start:len(x.buf):len(x.buf)]
	return len(s.samples) > 0
}

// floatSample is one float sample, a chunks.Sample.
type floatSample struct {
	t int64
	f float64
}

func (s *floatSample) T() int64                      { return s.t }
func (s *floatSample) ST() int64                     { return 0 }
func (s *floatSample) F() float64                    { return s.f }
func (s *floatSample) H() *histogram.Histogram       { return nil }
func (s *floatSample) FH() *histogram.FloatHistogram { return nil }
func (s *floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *floatSample) Copy() chunks.Sample           { c := *s; return &c }

// samples is a series' samples as storage.Samples.
type samples []floatSample

func (s samples) Get(i int) chunks.Sample { return &s[i] }
func (s samples) Len() int                { return len(s) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int64) int64 { return -floorDiv(-a, b) }
