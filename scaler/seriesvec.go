package scaler

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SeriesVec is a family of gauges or counters, partitioned by labels like
// prometheus.GaugeVec and prometheus.CounterVec, whose values live in one map and are
// exported by Collect as constant metrics: the custom collector client_golang documents for
// values kept elsewhere. prescale keeps about twenty series per policy; a child of a
// client_golang vector (its metric, label pairs and hash entry) holds about 300 bytes of
// heap for the process's life, an entry here about 80. With 1000 policies that is the
// difference between 6 and 1.3 MiB of live heap per 20,000 series, twice that in RSS
// under the Go GC's default headroom.
//
// Its methods are the vectors' own, so that a call site reads the same: WithLabelValues
// returns a handle that creates the series at 0 (as a vector's child does) and sets or
// adds to it; DeleteLabelValues, DeletePartialMatch and Reset drop series.
type SeriesVec struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	labels []string

	mu     sync.Mutex
	values map[string]*entry // by the label values joined by labelSep
}

// entry is a series' value and, for a counter, when it was created (exported as a
// client_golang counter's created timestamp is).
type entry struct {
	x       float64
	created time.Time
}

// labelSep joins label values into a key; a label value is valid UTF-8, which 0xff never is.
const labelSep = "\xff"

// newGauges is prometheus.NewGaugeVec's counterpart.
func newGauges(o prometheus.GaugeOpts, labels []string) *SeriesVec {
	return newSeriesVec(prometheus.BuildFQName(o.Namespace, o.Subsystem, o.Name), o.Help, prometheus.GaugeValue, labels)
}

// newCounters is prometheus.NewCounterVec's counterpart.
func newCounters(o prometheus.CounterOpts, labels []string) *SeriesVec {
	return newSeriesVec(prometheus.BuildFQName(o.Namespace, o.Subsystem, o.Name), o.Help, prometheus.CounterValue, labels)
}

func newSeriesVec(name, help string, kind prometheus.ValueType, labels []string) *SeriesVec {
	return &SeriesVec{desc: prometheus.NewDesc(name, help, labels, nil), kind: kind, labels: slices.Clone(labels),
		values: map[string]*entry{}}
}

// Series is one series of a SeriesVec.
type Series struct {
	v   *SeriesVec
	key string
	e   *entry
}

// WithLabelValues returns the series of the label values, in the order of the vector's
// labels, creating it at 0. Like a client_golang vector's, it panics when their number is
// not the labels'.
func (v *SeriesVec) WithLabelValues(lvs ...string) Series {
	if len(lvs) != len(v.labels) {
		panic(fmt.Sprintf("%s: %d label values for the labels %q", v.desc, len(lvs), v.labels))
	}
	key := strings.Join(lvs, labelSep)
	v.mu.Lock()
	defer v.mu.Unlock()
	e, ok := v.values[key]
	if !ok {
		e = &entry{}
		if v.kind == prometheus.CounterValue {
			e.created = time.Now()
		}
		v.values[key] = e
	}
	return Series{v: v, key: key, e: e}
}

// Set sets a gauge.
func (s Series) Set(x float64) {
	if s.v.kind != prometheus.GaugeValue {
		panic(fmt.Sprintf("%s: Set on a counter", s.v.desc))
	}
	s.v.mu.Lock()
	s.e.x = x
	s.v.mu.Unlock()
}

// Add adds d, which a counter's must not be negative (it panics, as a prometheus.Counter does).
func (s Series) Add(d float64) {
	if s.v.kind == prometheus.CounterValue && d < 0 {
		panic(fmt.Sprintf("%s: counter cannot decrease in value (added %g)", s.v.desc, d))
	}
	s.v.mu.Lock()
	s.e.x += d
	s.v.mu.Unlock()
}

// Inc adds 1.
func (s Series) Inc() { s.Add(1) }

// Describe implements prometheus.Collector for the series alone, so that a test reads it
// with testutil.ToFloat64 as it would a vector's child.
func (s Series) Describe(ch chan<- *prometheus.Desc) { ch <- s.v.desc }

// Collect implements prometheus.Collector for the series alone.
func (s Series) Collect(ch chan<- prometheus.Metric) {
	s.v.mu.Lock()
	e := *s.e
	s.v.mu.Unlock()
	ch <- s.v.metric(e, s.key)
}

// DeleteLabelValues drops the series of the label values, and reports whether it existed.
func (v *SeriesVec) DeleteLabelValues(lvs ...string) bool {
	key := strings.Join(lvs, labelSep)
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.values[key]
	delete(v.values, key)
	return ok
}

// DeletePartialMatch drops every series whose labels include all of l, and returns how many.
func (v *SeriesVec) DeletePartialMatch(l prometheus.Labels) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for key := range v.values {
		lvs := v.split(key)
		match := true
		for name, want := range l {
			i := slices.Index(v.labels, name)
			if i < 0 || lvs[i] != want {
				match = false
				break
			}
		}
		if match {
			delete(v.values, key)
			n++
		}
	}
	return n
}

// Reset drops every series.
func (v *SeriesVec) Reset() {
	v.mu.Lock()
	clear(v.values)
	v.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (v *SeriesVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector. It copies the values under the lock and sends
// them after, so that a scrape never holds a tick's writes.
func (v *SeriesVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.Lock()
	keys := make([]string, 0, len(v.values))
	es := make([]entry, 0, len(v.values))
	for key, e := range v.values {
		keys, es = append(keys, key), append(es, *e)
	}
	v.mu.Unlock()
	for i, key := range keys {
		ch <- v.metric(es[i], key)
	}
}

func (v *SeriesVec) metric(e entry, key string) prometheus.Metric {
	if v.kind == prometheus.CounterValue {
		return prometheus.MustNewConstMetricWithCreatedTimestamp(v.desc, v.kind, e.x, e.created, v.split(key)...)
	}
	return prometheus.MustNewConstMetric(v.desc, v.kind, e.x, v.split(key)...)
}

// split is the label values of a key.
func (v *SeriesVec) split(key string) []string {
	if len(v.labels) == 0 {
		return nil
	}
	return strings.Split(key, labelSep)
}
