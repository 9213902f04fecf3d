package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// queryCounter counts the queries sent to Prometheus (prom.Source).
type queryCounter interface {
	QueryCount() int64
}

// newRegistry returns the registry that /metrics serves: the Go runtime's and the process's
// collectors and the count of Prometheus queries. The controller adds its own metrics.
func newRegistry(queries queryCounter) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "prescale_prometheus_requests_total",
		Help: "HTTP queries sent to Prometheus (an empty result costs a second one, to tell stale from empty)."},
		func() float64 { return float64(queries.QueryCount()) }))
	return reg
}
