package sim

import (
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gateway imitates the Gateway API Inference Extension's endpoint picker (EPP) in front of
// the service (testdata/upstream/gateway.txt, the inference_* families): its series are
// the EPP's, so they exist whether or not the model has a pod. A request is counted in
// inference_objective_request_total when it arrives and a Ready pod exists; with none, the
// EPP finds no endpoint and counts it in inference_objective_request_error_total
// (error_code ServiceUnavailable) instead. The simulated requests still wait in the fluid
// queue, as a client retrying them would. Both counters rise continuously through a tick,
// as a gateway counts requests as they come, and appear with their first request, as
// client_golang's children do. Flow control is off (its default), so
// inference_extension_flow_control_queue_size never appears.
//
// The series carry the EPP's labels and, as a scrape of the EPP would add, namespace (the
// service's).
type gateway struct {
	comp                    *component
	s                       *series
	namespace, model, pool  string
	requests, errors        *arrivals
	requestsSeen, errorSeen bool

	requestTotal, errorTotal, running, duration, avgQueue, readyPods, flowQueue *family
}

func newGateway(namespace, model, pool string, compression float64, tick time.Duration) *gateway {
	objective := []string{"model_name", "target_model_name"}
	g := &gateway{
		namespace: namespace, model: model, pool: pool, s: newSeries(0),
		requests: &arrivals{compression: compression, period: tick},
		errors:   &arrivals{compression: compression, period: tick},
		requestTotal: &family{name: "inference_objective_request_total", kind: counter, unit: "requests",
			help:   "Requests the endpoint picker dispatched, per model.",
			labels: []string{"model_name", "target_model_name", "priority"}},
		errorTotal: &family{name: "inference_objective_request_error_total", kind: counter, unit: "requests",
			help:   "Requests the endpoint picker failed, per model and error.",
			labels: []string{"model_name", "target_model_name", "error_code"}},
		running: &family{name: "inference_objective_running_requests", kind: gauge, unit: "requests",
			help: "Requests dispatched and not finished, per model.", labels: []string{"model_name"}},
		duration: &family{name: "inference_objective_request_duration_seconds", kind: histogram, unit: "seconds",
			help:   "Time from receipt to the end of the response, seconds.",
			labels: objective, buckets: []float64{0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6,
				8, 10, 15, 20, 30, 45, 60, 120, 180, 240, 300, 360, 480, 600, 900, 1200, 1800, 2700, 3600}},
		avgQueue: &family{name: "inference_pool_average_queue_size", kind: gauge, unit: "requests",
			help: "Mean of the pool's pods' queues at the last refresh.", labels: []string{"name"}},
		readyPods: &family{name: "inference_pool_ready_pods", kind: gauge, unit: "pods",
			help: "Ready pods of the pool at the last refresh.", labels: []string{"name"}},
		flowQueue: &family{name: "inference_extension_flow_control_queue_size", kind: gauge, unit: "requests",
			help:   "Requests held by flow control.",
			labels: []string{"fairness_id", "priority", "inference_pool", "model_name", "target_model_name"}},
	}
	g.comp = newComponent(g.families(), "namespace")
	return g
}

func (g *gateway) families() []*family {
	return []*family{g.requestTotal, g.errorTotal, g.running, g.duration, g.avgQueue, g.readyPods, g.flowQueue}
}

// tick records one tick: r of the fluid model, occ of each Ready pod, served the requests
// the pods finished, now the wall time of the tick's start.
func (g *gateway) tick(r Report, occ Occupancy, served []done, now time.Time) {
	g.s.at = r.ModelTime.Seconds()
	dispatched, failed := r.Lambda, 0.0
	if r.Ready == 0 {
		dispatched, failed = 0, r.Lambda
	}
	g.requests.tick(dispatched, now)
	g.errors.tick(failed, now)
	g.requestsSeen = g.requestsSeen || dispatched > 0
	g.errorSeen = g.errorSeen || failed > 0
	if g.requestsSeen {
		// Dispatched and not finished: in the pods' batches and queues.
		g.s.set(g.running, math.Round(float64(r.Ready)*(occ.Running+occ.Waiting)), g.model)
	}
	for _, d := range served {
		g.s.observe(g.duration, d.E2E(), 1, g.model, g.model)
	}
	// The EPP's refresh: the mean of the queues it scraped from the pods, 0 with none.
	g.s.set(g.avgQueue, math.Round(occ.Waiting), g.pool)
	g.s.set(g.readyPods, float64(r.Ready), g.pool)
}

func (g *gateway) collect(ch chan<- prometheus.Metric, now time.Time) {
	if g.requestsSeen {
		ch <- prometheus.MustNewConstMetric(g.comp.desc[g.requestTotal], prometheus.CounterValue,
			g.requests.value(now), g.model, g.model, "0", g.namespace)
	}
	if g.errorSeen {
		ch <- prometheus.MustNewConstMetric(g.comp.desc[g.errorTotal], prometheus.CounterValue,
			g.errors.value(now), g.model, g.model, "ServiceUnavailable", g.namespace)
	}
	g.comp.collect(ch, g.s, g.namespace)
}
