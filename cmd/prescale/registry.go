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

// newAPIServiceConflict returns prescale_external_metrics_apiservice_conflict, registered
// on reg (checkAPIService sets it).
func newAPIServiceConflict(reg prometheus.Registerer) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_external_metrics_apiservice_conflict",
		Help: "1 when the APIService v1beta1.external.metrics.k8s.io routes to another server than prescale's Service (KEDA, prometheus-adapter), read at start-up; else 0."})
	reg.MustRegister(g)
	return g
}
