package promtest

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Frozen is a collector of one gauge sample, name = value, that carries the fixed
// timestamp at: Prometheus puts no staleness marker on such a series, so only its age (the
// query's lookback, a reader's maxAge) makes it stale.
func Frozen(name, help string, value float64, at time.Time) prometheus.Collector {
	return frozen{desc: prometheus.NewDesc(name, help, nil, nil), value: value, at: at}
}

type frozen struct {
	desc  *prometheus.Desc
	value float64
	at    time.Time
}

func (f frozen) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

func (f frozen) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewMetricWithTimestamp(f.at, prometheus.MustNewConstMetric(f.desc, prometheus.GaugeValue, f.value))
}
