package preflight

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/prom"
)

// Source is what the preflight asks of Prometheus; *prom.Source implements it. Sample and
// Latency are the calls prescale run makes each tick; SeriesExist asks the series API.
type Source interface {
	Sample(ctx context.Context, query string, now time.Time, maxAge time.Duration) (policy.Sample, error)
	Latency(ctx context.Context, query string, now time.Time, maxAge time.Duration) (float64, []string, error)
	SeriesExist(ctx context.Context, selector string, now time.Time, lookback time.Duration) (bool, error)
}

// Options configure a Check.
type Options struct {
	// Staleness is run's staleness setting: a sample older than it is missing. Required, > 0.
	Staleness time.Duration
	// PodLabel is the label naming a series' pod (run's prometheus.podLabel). Empty means
	// prom.DefaultPodLabel.
	PodLabel string
	// Concurrency bounds the requests in flight; below 1 means 1.
	Concurrency int
}

// Kind names a class of problem (see the package doc for each rule).
type Kind string

// The kinds of problem.
const (
	KindNoSeries   Kind = "no-series"
	KindHistogram  Kind = "histogram"
	KindStale      Kind = "stale"
	KindNotFinite  Kind = "not-finite"
	KindNegative   Kind = "negative"
	KindNoPodLabel Kind = "no-pod-label"
	KindScale      Kind = "scale"
	KindShape      Kind = "shape"
	KindQuery      Kind = "query-failed"
)

// Problem is one reason why prescale run could not use a query as its author meant.
type Problem struct {
	// Policy is the policy's name.
	Policy string
	// Query names the query within the policy: "metric NAME", "forecast load",
	// "objective", "objective waiting" or "activation".
	Query string
	Kind  Kind
	// Detail says why, naming the query and the numbers.
	Detail string
}

// String is the problem's line: "policy NAME, QUERY: KIND: DETAIL".
func (p Problem) String() string {
	return fmt.Sprintf("policy %s, %s: %s: %s", p.Policy, p.Query, p.Kind, p.Detail)
}

// Report is what one Check found.
type Report struct {
	// Queries is how many queries were run: each policy's metrics, forecast load,
	// objective and activation.
	Queries int
	// Problems are in the file's order: by policy, then metrics, forecast load, objective,
	// activation; a query's own problems in the order the checks found them.
	Problems []Problem
}

// seriesLookback is how far beyond the staleness the series API looks for a metric name's
// series: as far as prom's probe that tells a stale result from an empty one.
const seriesLookback = time.Hour

// The names of the queries other than metrics, in a Problem's Query.
const (
	queryLoad       = "forecast load"
	queryObjective  = "objective"
	queryWaiting    = "objective waiting"
	queryActivation = "activation"
)

// role is what run does with a query's result.
type role int

const (
	roleMetric role = iota
	roleLoad
	roleObjective
	roleActivation
)

// job is one query of one policy.
type job struct {
	policy string
	name   string // Problem.Query
	query  string
	role   role
	metric *policy.Metric // roleMetric
	slo    time.Duration  // roleObjective
}

// Check runs each query of policies once at now and returns every problem found. Its error
// is for what no query can tell: Options that are not valid, a Prometheus that cannot be
// reached (wrapping prom.ErrUnavailable), or ctx ending; the report is then empty.
func Check(ctx context.Context, src Source, policies []policy.Policy, now time.Time, o Options) (Report, error) {
	if o.Staleness <= 0 {
		return Report{}, fmt.Errorf("preflight options: staleness: must be > 0, got %s", o.Staleness)
	}
	if o.PodLabel == "" {
		o.PodLabel = prom.DefaultPodLabel
	}
	jobs := jobsOf(policies)
	c := &checker{src: src, now: now, o: o, names: map[string]*nameState{}}
	found := make([][]Problem, len(jobs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(o.Concurrency, 1))
	for i := range jobs {
		g.Go(func() error {
			ps, err := c.check(gctx, &jobs[i])
			found[i] = ps
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return Report{}, err
	}
	r := Report{Queries: len(jobs)}
	for _, ps := range found {
		r.Problems = append(r.Problems, ps...)
	}
	return r, nil
}

// jobsOf lists the queries run sends for policies, in the file's order.
func jobsOf(policies []policy.Policy) []job {
	var jobs []job
	for i := range policies {
		p := &policies[i]
		for j := range p.Metrics {
			m := &p.Metrics[j]
			jobs = append(jobs, job{policy: p.Name, name: "metric " + m.Name, query: m.Query, role: roleMetric, metric: m})
		}
		if f := engine.Forecasting(p); f != nil {
			jobs = append(jobs, job{policy: p.Name, name: queryLoad, query: f.Load.Query, role: roleLoad})
		}
		if ob := p.Objective; ob != nil {
			jobs = append(jobs, job{policy: p.Name, name: queryObjective, query: ob.Query, role: roleObjective, slo: ob.SLO.Duration})
			if ob.Waiting != "" {
				// Read as the load is: one value, or one per pod summed; never negative.
				jobs = append(jobs, job{policy: p.Name, name: queryWaiting, query: ob.Waiting, role: roleLoad})
			}
		}
		if z := p.ScaleToZero; z != nil {
			jobs = append(jobs, job{policy: p.Name, name: queryActivation, query: z.Activation.Query, role: roleActivation})
		}
	}
	return jobs
}

// checker holds one Check's inputs and what it learnt of metric names.
type checker struct {
	src Source
	now time.Time
	o   Options

	mu    sync.Mutex
	names map[string]*nameState
}

// nameState is what the series API said of one metric name, asked once per Check.
type nameState struct {
	once sync.Once
	// exists: the name has series; histogram: it has none, and name_bucket has.
	exists, histogram bool
	err               error
}

// check runs one job's query and returns its problems; its error ends the Check.
func (c *checker) check(ctx context.Context, j *job) ([]Problem, error) {
	var out []Problem
	add := func(k Kind, format string, args ...any) {
		out = append(out, Problem{Policy: j.policy, Query: j.name, Kind: k,
			Detail: fmt.Sprintf("query %q: ", j.query) + fmt.Sprintf(format, args...)})
	}
	names := metricNames(j.query)
	absent, histograms, err := c.lookUp(ctx, names)
	if err != nil {
		var failed *seriesError
		if !errors.As(err, &failed) {
			return nil, fmt.Errorf("policy %s, %s: %w", j.policy, j.name, err)
		}
		add(KindQuery, "%v", failed.err)
	}
	for _, n := range histograms {
		add(KindHistogram, "%s has no series but %s_bucket has: %s is a histogram, of which Prometheus stores only "+
			"%s_bucket, %s_sum and %s_count (a latency: histogram_quantile(0.99, sum by (le) (rate(%s_bucket[1m]))))",
			n, n, n, n, n, n, n)
	}

	var s policy.Sample
	if j.role == roleObjective {
		var v float64
		v, _, err = c.src.Latency(ctx, j.query, c.now, c.o.Staleness)
		s = policy.Sample{Value: v}
	} else {
		s, err = c.src.Sample(ctx, j.query, c.now, c.o.Staleness)
	}
	if err != nil {
		if errors.Is(err, prom.ErrUnavailable) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return nil, fmt.Errorf("policy %s, %s: %w", j.policy, j.name, err)
		}
		k, detail := classify(err, j.query, j.role, c.o)
		if k == KindNoSeries && len(histograms) > 0 {
			return out, nil // the histogram's base name is why
		}
		if k == KindNoSeries && len(absent) > 0 {
			detail += fmt.Sprintf(" (no series named %s in the last %s)", strings.Join(absent, ", "), c.o.Staleness+seriesLookback)
		}
		out = append(out, Problem{Policy: j.policy, Query: j.name, Kind: k, Detail: detail})
		return out, nil
	}
	for _, p := range c.judge(j, s) {
		add(p.kind, "%s", p.detail)
	}
	return out, nil
}

// seriesError is a failed request to the series API: a problem of the query that named the
// metric, not the end of the Check.
type seriesError struct{ err error }

func (e *seriesError) Error() string { return e.err.Error() }

// lookUp asks the series API about each of names (once per Check) and returns those with no
// series, and of these the histograms' base names, each sorted.
func (c *checker) lookUp(ctx context.Context, names []string) (absent, histograms []string, err error) {
	window := c.o.Staleness + seriesLookback
	for _, n := range names {
		c.mu.Lock()
		st, ok := c.names[n]
		if !ok {
			st = &nameState{}
			c.names[n] = st
		}
		c.mu.Unlock()
		st.once.Do(func() {
			st.exists, st.err = c.src.SeriesExist(ctx, selectorOf(n), c.now, window)
			if st.err == nil && !st.exists {
				st.histogram, st.err = c.src.SeriesExist(ctx, selectorOf(n+"_bucket"), c.now, window)
			}
		})
		switch {
		case st.err != nil && (errors.Is(st.err, prom.ErrUnavailable) || errors.Is(st.err, context.Canceled) || ctx.Err() != nil):
			return nil, nil, st.err
		case st.err != nil:
			return nil, nil, &seriesError{st.err}
		case !st.exists:
			absent = append(absent, n)
			if st.histogram {
				histograms = append(histograms, n)
			}
		}
	}
	sort.Strings(absent)
	sort.Strings(histograms)
	return absent, histograms, nil
}

// selectorOf is the series selector of one metric name: {__name__="name"}, which holds any
// name, also one that is not a legacy identifier.
func selectorOf(name string) string {
	return fmt.Sprintf("{__name__=%q}", name)
}

// classify turns the Source's error for query into a problem's kind and detail. The detail
// names the query (the Source's errors do).
func classify(err error, query string, r role, o Options) (Kind, string) {
	var pl *prom.PodLabelError
	switch {
	case errors.Is(err, prom.ErrEmpty):
		return KindNoSeries, fmt.Sprintf("query %q returned no series", query)
	case errors.Is(err, prom.ErrStale):
		return KindStale, fmt.Sprintf("query %q: its series have no sample newer than the staleness setting, %s", query, o.Staleness)
	case errors.Is(err, prom.ErrNotFinite):
		detail := err.Error()
		if r == roleObjective {
			detail += " (histogram_quantile is NaN while its rate window saw no request; run counts such a minute as missing, " +
				"or as over the SLO while objective.waiting says requests wait)"
		}
		return KindNotFinite, detail
	case errors.As(err, &pl):
		return KindNoPodLabel, fmt.Sprintf("%v: run needs one series, or one series per pod labelled %q "+
			"(aggregate with sum by (%s) (...), or check that the series carry %q: dcgm-exporter's is exported_pod unless scraped with honorLabels)",
			err, o.PodLabel, o.PodLabel, o.PodLabel)
	case errors.Is(err, prom.ErrShape):
		return KindShape, err.Error()
	default:
		return KindQuery, err.Error()
	}
}

// finding is one problem of a usable result.
type finding struct {
	kind   Kind
	detail string
}

// judge checks a usable result as run would use it for j's role.
func (c *checker) judge(j *job, s policy.Sample) []finding {
	var out []finding
	switch j.role {
	case roleMetric:
		target, _ := j.metric.Target.Quantity()
		t := target.Float64()
		switch {
		case s.PerPod != nil && j.metric.Target.Type == policy.AverageValue:
			out = append(out, negatives(s)...)
			if len(out) == 0 {
				out = append(out, scaleOf(perPodValues(s), t, "averageValue")...)
			}
		case j.metric.Target.Type == policy.AverageValue:
			if groupsBy(j.query, c.o.PodLabel) {
				out = append(out, finding{KindNoPodLabel, fmt.Sprintf("the query groups by %q, but its one series has no %q label: "+
					"run reads it as the total of all pods, divided by averageValue × replicas, not as one value per pod "+
					"(do the series it groups carry %q? dcgm-exporter's is exported_pod unless scraped with honorLabels)",
					c.o.PodLabel, c.o.PodLabel, c.o.PodLabel)})
			}
			out = append(out, negatives(s)...)
		default:
			out = append(out, negatives(s)...)
			if len(out) == 0 {
				out = append(out, scaleOf([]float64{sum(s)}, t, "value")...)
			}
		}
	case roleLoad, roleActivation:
		out = append(out, negatives(s)...)
	case roleObjective:
		v := s.Value
		switch {
		case math.IsInf(v, 1):
			out = append(out, finding{KindNotFinite, "value +Inf: the quantile lies in the histogram's +Inf bucket, beyond its " +
				"largest bound; run counts the minute over any SLO (is the SLO beyond the buckets?)"})
		case v < 0:
			out = append(out, finding{KindNegative, fmt.Sprintf("latency %g s is negative: run cannot compare it with the SLO", v)})
		default:
			if d := latencyScale(v, j.slo); d != "" {
				out = append(out, finding{KindScale, d})
			}
		}
	}
	return out
}

// negatives reports the negative values of s, which run treats as a missing sample.
func negatives(s policy.Sample) []finding {
	if s.PerPod == nil {
		if s.Value < 0 {
			return []finding{{KindNegative, fmt.Sprintf("value %g is negative: run treats the sample as missing", s.Value)}}
		}
		return nil
	}
	var pods []string
	for pod, v := range s.PerPod {
		if v < 0 {
			pods = append(pods, pod)
		}
	}
	if len(pods) == 0 {
		return nil
	}
	sort.Strings(pods)
	named := make([]string, 0, min(len(pods), maxNamed))
	for _, pod := range pods[:min(len(pods), maxNamed)] {
		named = append(named, fmt.Sprintf("pod %q %g", pod, s.PerPod[pod]))
	}
	more := ""
	if len(pods) > maxNamed {
		more = fmt.Sprintf(" and %d more", len(pods)-maxNamed)
	}
	return []finding{{KindNegative, fmt.Sprintf("negative values (%s%s): run treats the sample as missing", strings.Join(named, ", "), more)}}
}

// maxNamed bounds the pods a message names.
const maxNamed = 3

func perPodValues(s policy.Sample) []float64 {
	vs := make([]float64, 0, len(s.PerPod))
	for _, v := range s.PerPod {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// sum is the value run compares with a Value target: the value, or the sum of the per-pod
// values.
func sum(s policy.Sample) float64 {
	if s.PerPod == nil {
		return s.Value
	}
	var t float64
	for _, v := range s.PerPod {
		t += v
	}
	return t
}

func scaleOf(values []float64, target float64, field string) []finding {
	if d := scaleMismatch(values, target, field); d != "" {
		return []finding{{KindScale, d}}
	}
	return nil
}
