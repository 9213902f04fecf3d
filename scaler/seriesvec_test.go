package scaler

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSeriesVecExportsAsAVector drives a SeriesVec and a client_golang vector with the same
// calls and compares what a registry gathers from each: the text a scrape reads is the same.
func TestSeriesVecExportsAsAVector(t *testing.T) {
	for _, kind := range []string{"gauge", "counter"} {
		t.Run(kind, func(t *testing.T) {
			ours, theirs := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
			labels := []string{"policy", "metric"}
			var v *SeriesVec
			type child interface{ Add(float64) }
			var with func(...string) child
			var del func(prometheus.Labels) int
			var delOne func(...string) bool
			if kind == "gauge" {
				o := prometheus.GaugeOpts{Name: "prescale_test_value", Help: "A value."}
				v = newGauges(o, labels)
				g := prometheus.NewGaugeVec(o, labels)
				theirs.MustRegister(g)
				with = func(lvs ...string) child { return g.WithLabelValues(lvs...) }
				del, delOne = g.DeletePartialMatch, g.DeleteLabelValues
			} else {
				o := prometheus.CounterOpts{Name: "prescale_test_total", Help: "A count."}
				v = newCounters(o, labels)
				c := prometheus.NewCounterVec(o, labels)
				theirs.MustRegister(c)
				with = func(lvs ...string) child { return c.WithLabelValues(lvs...) }
				del, delOne = c.DeletePartialMatch, c.DeleteLabelValues
			}
			ours.MustRegister(v)
			for _, s := range []struct {
				policy, metric string
				add            float64
			}{{"web", "queue", 2}, {"web", "gpu", 0.5}, {"chat", "queue", 3}, {"web", "queue", 1.25}, {"batch", "", 0}} {
				v.WithLabelValues(s.policy, s.metric).Add(s.add)
				with(s.policy, s.metric).Add(s.add)
			}
			compare := func(when string) {
				t.Helper()
				var a, b strings.Builder
				for _, w := range []struct {
					g   prometheus.Gatherer
					out *strings.Builder
				}{{ours, &a}, {theirs, &b}} {
					mfs, err := w.g.Gather()
					if err != nil {
						t.Fatalf("%s: gather: %v", when, err)
					}
					for _, mf := range mfs {
						for _, m := range mf.Metric {
							// Both are creation times, read apart: compare that there is one.
							if c := m.GetCounter(); c != nil {
								if c.CreatedTimestamp == nil {
									t.Errorf("%s: a counter without its created timestamp: %v", when, m)
								}
								c.CreatedTimestamp = nil
							}
						}
						w.out.WriteString(mf.String() + "\n")
					}
				}
				if a.String() != b.String() {
					t.Errorf("%s: gathered\n%s\nwant (a client_golang vector's)\n%s", when, a.String(), b.String())
				}
			}
			compare("after the adds")
			if got, want := v.DeletePartialMatch(prometheus.Labels{"policy": "web"}), del(prometheus.Labels{"policy": "web"}); got != want {
				t.Errorf("DeletePartialMatch(policy=web) = %d, want %d", got, want)
			}
			if got, want := v.DeleteLabelValues("chat", "queue"), delOne("chat", "queue"); got != want {
				t.Errorf("DeleteLabelValues(chat, queue) = %v, want %v", got, want)
			}
			if v.DeleteLabelValues("chat", "queue") {
				t.Error("DeleteLabelValues of a deleted series reported it existed")
			}
			compare("after the deletes")
			if got := testutil.ToFloat64(v.WithLabelValues("batch", "")); got != 0 {
				t.Errorf("batch's series reads %g, want 0", got)
			}
			v.Reset()
			if n := testutil.CollectAndCount(v); n != 0 {
				t.Errorf("%d series after Reset, want 0", n)
			}
		})
	}
}

func TestSeriesVecPanicsAsAVector(t *testing.T) {
	for name, f := range map[string]func(){
		"wrong number of label values": func() { newGauges(prometheus.GaugeOpts{Name: "g"}, []string{"policy"}).WithLabelValues("a", "b") },
		"a counter decreases": func() {
			newCounters(prometheus.CounterOpts{Name: "c"}, []string{"policy"}).WithLabelValues("a").Add(-1)
		},
		"Set on a counter": func() { newCounters(prometheus.CounterOpts{Name: "c"}, []string{"policy"}).WithLabelValues("a").Set(1) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}
