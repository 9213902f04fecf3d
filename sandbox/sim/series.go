package sim

import (
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// kind is a family's type, as the exposition's TYPE line says it.
type kind int

const (
	counter kind = iota
	gauge
	histogram
	summary
)

// family is one metric family an imitated program exports, as its file in
// testdata/upstream defines it: the name as exposed (a counter's with the suffix its
// library adds), the type, the program's own label names in registration order, the
// bucket bounds or quantiles, and the unit. The exposition test holds each family against
// that file.
type family struct {
	name      string
	kind      kind
	unit      string // as the upstream file spells it; observations in seconds are scaled to it
	help      string
	labels    []string
	buckets   []float64
	quantiles []float64
	// created adds prometheus_client's <name>_created gauge beside the family (its text
	// format writes the OpenMetrics _created sample as a gauge family of its own, named
	// after the family without a counter's _total).
	created bool
}

// scale is what a duration in seconds is multiplied by to be in the family's unit.
func (f *family) scale() float64 {
	switch f.unit {
	case "milliseconds":
		return 1e3
	case "microseconds":
		return 1e6
	}
	return 1
}

func (f *family) createdName() string {
	if f.kind == counter {
		return strings.TrimSuffix(f.name, "_total") + "_created"
	}
	return f.name + "_created"
}

// summaryWindow is how long a summary's quantiles remember an observation, in model
// time: prometheus-cpp's and metrics-exporter-prometheus' default sliding windows are both
// 60 s.
const summaryWindow = 60.0

// series are the children of one target's families (one server, one exporter), keyed by
// their label values. A child exists from its first touch, as in the servers' libraries.
type series struct {
	at       float64 // model seconds of the current tick, for summaries' windows
	created  float64 // unix seconds the target started, for _created
	children map[*family]map[string]*child
}

type child struct {
	values []string
	v      float64  // a counter's or gauge's value
	counts []uint64 // a histogram's per-bucket counts, +Inf last
	sum    float64
	count  uint64
	window []observation // a summary's observations in its window
}

type observation struct {
	at, v float64
	n     uint64
}

func newSeries(created float64) *series {
	return &series{created: created, children: map[*family]map[string]*child{}}
}

// child returns the child with label values lv, created at zero if new.
func (s *series) child(f *family, lv ...string) *child {
	m := s.children[f]
	if m == nil {
		m = map[string]*child{}
		s.children[f] = m
	}
	key := strings.Join(lv, "\xff")
	c := m[key]
	if c == nil {
		c = &child{values: slices.Clone(lv)}
		if f.kind == histogram {
			c.counts = make([]uint64, len(f.buckets)+1)
		}
		m[key] = c
	}
	return c
}

// add adds x to a counter.
func (s *series) add(f *family, x float64, lv ...string) { s.child(f, lv...).v += x }

// set sets a gauge (or a counter whose total is kept elsewhere).
func (s *series) set(f *family, x float64, lv ...string) { s.child(f, lv...).v = x }

// observe records n observations of v in a histogram or summary. A duration is given in
// seconds and recorded in the family's unit.
func (s *series) observe(f *family, v float64, n uint64, lv ...string) {
	if n == 0 {
		return
	}
	v *= f.scale()
	c := s.child(f, lv...)
	c.sum += v * float64(n)
	c.count += n
	switch f.kind {
	case histogram:
		c.counts[sort.SearchFloat64s(f.buckets, v)] += n // first bound >= v: le is inclusive
	case summary:
		c.window = append(c.window, observation{at: s.at, v: v, n: n})
	}
}

// quantiles returns a summary child's quantiles over the observations of the window that
// ends at model time at (NaN with none, as the servers' libraries print an empty summary).
func (c *child) quantiles(f *family, at float64) map[float64]float64 {
	c.window = slices.DeleteFunc(c.window, func(o observation) bool { return o.at <= at-summaryWindow })
	obs := slices.Clone(c.window)
	slices.SortFunc(obs, func(a, b observation) int {
		switch {
		case a.v < b.v:
			return -1
		case a.v > b.v:
			return 1
		}
		return 0
	})
	var total uint64
	for _, o := range obs {
		total += o.n
	}
	q := make(map[float64]float64, len(f.quantiles))
	for _, phi := range f.quantiles {
		q[phi] = math.NaN()
		if total == 0 {
			continue
		}
		// The smallest observation with at least phi of the total at or below it.
		rank := max(1, uint64(math.Ceil(phi*float64(total))))
		var seen uint64
		for _, o := range obs {
			seen += o.n
			if seen >= rank {
				q[phi] = o.v
				break
			}
		}
	}
	return q
}

// component is one program the sandbox imitates on its shared /metrics: its families and
// the target labels (namespace, pod, ...) a Prometheus scrape of it would add, which the
// sandbox's single scrape (honor_labels) cannot.
type component struct {
	families []*family
	target   []string
	desc     map[*family]*prometheus.Desc
	created  map[*family]*prometheus.Desc
}

func newComponent(families []*family, target ...string) *component {
	c := &component{families: families, target: target,
		desc: map[*family]*prometheus.Desc{}, created: map[*family]*prometheus.Desc{}}
	for _, f := range families {
		labels := append(slices.Clone(f.labels), target...)
		c.desc[f] = prometheus.NewDesc(f.name, f.help, labels, nil)
		if f.created {
			c.created[f] = prometheus.NewDesc(f.createdName(), f.help, labels, nil)
		}
	}
	return c
}

func (c *component) describe(ch chan<- *prometheus.Desc) {
	for _, f := range c.families {
		ch <- c.desc[f]
		if d := c.created[f]; d != nil {
			ch <- d
		}
	}
}

// collect sends the children of s with the target label values tv.
func (c *component) collect(ch chan<- prometheus.Metric, s *series, tv ...string) {
	for _, f := range c.families {
		for _, k := range sortedKeys(s.children[f]) {
			x := s.children[f][k]
			lv := append(slices.Clone(x.values), tv...)
			switch f.kind {
			case counter:
				ch <- prometheus.MustNewConstMetric(c.desc[f], prometheus.CounterValue, x.v, lv...)
			case gauge:
				ch <- prometheus.MustNewConstMetric(c.desc[f], prometheus.GaugeValue, x.v, lv...)
			case histogram:
				cum := make(map[float64]uint64, len(f.buckets))
				var n uint64
				for i, b := range f.buckets {
					n += x.counts[i]
					cum[b] = n
				}
				ch <- prometheus.MustNewConstHistogram(c.desc[f], x.count, x.sum, cum, lv...)
			case summary:
				ch <- prometheus.MustNewConstSummary(c.desc[f], x.count, x.sum, x.quantiles(f, s.at), lv...)
			}
			if d := c.created[f]; d != nil {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, s.created, lv...)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
