package sim

import "math"

// triton imitates Triton Inference Server's per-model series (testdata/upstream/triton.txt),
// labelled model and version ("1"), created when the model loads; counters without _total
// and latencies as cumulative microseconds. The simulated Triton runs with
// --metrics-config histogram_latencies=true and summary_latencies=true, so that
// nv_inference_first_response_histogram_ms (milliseconds) and nv_inference_queue_summary_us
// exist; a real one exports them only when so configured. Each request is one inference
// (batch size 1) and one execution of the model (an LLM backend batches inside itself).
type triton struct {
	model, version                                 string
	success, failure, count, execCount, pending    *family
	requestUS, queueUS, inputUS, inferUS, outputUS *family
	firstResponse, queueSummary, gpuUtil           *family
}

// tritonCopy is the time to copy a request's input or output tensors, model seconds:
// small next to inference.
const tritonCopy = 0.0001

func newTriton(model string) *triton {
	l := []string{"model", "version"}
	c := func(name, unit, help string, labels ...string) *family {
		return &family{name: name, kind: counter, unit: unit, help: help, labels: append(l, labels...)}
	}
	return &triton{
		model: model, version: "1",
		success:   c("nv_inference_request_success", "requests", "Requests answered."),
		failure:   c("nv_inference_request_failure", "requests", "Requests failed, by reason.", "reason"),
		count:     c("nv_inference_count", "count", "Inferences (batch items)."),
		execCount: c("nv_inference_exec_count", "count", "Model executions."),
		pending: &family{name: "nv_inference_pending_request_count", kind: gauge, unit: "requests",
			help: "Requests queued for the backend.", labels: l},
		requestUS: c("nv_inference_request_duration_us", "microseconds", "Total time of answered requests, microseconds."),
		queueUS:   c("nv_inference_queue_duration_us", "microseconds", "Total queue time of answered requests, microseconds."),
		inputUS:   c("nv_inference_compute_input_duration_us", "microseconds", "Total input copy time, microseconds."),
		inferUS:   c("nv_inference_compute_infer_duration_us", "microseconds", "Total compute time, microseconds."),
		outputUS:  c("nv_inference_compute_output_duration_us", "microseconds", "Total output copy time, microseconds."),
		firstResponse: &family{name: "nv_inference_first_response_histogram_ms", kind: histogram, unit: "milliseconds",
			help: "Time to the first response, milliseconds.", labels: l, buckets: []float64{100, 500, 2000, 5000}},
		queueSummary: &family{name: "nv_inference_queue_summary_us", kind: summary, unit: "microseconds",
			help: "Queue time, microseconds.", labels: l,
			quantiles: []float64{0.5, 0.9, 0.95, 0.99, 0.999}},
		gpuUtil: &family{name: "nv_gpu_utilization", kind: gauge, unit: "ratio",
			help: "Share of time a kernel ran on the GPU, 0..1.", labels: []string{"gpu_uuid"}},
	}
}

func (x *triton) families() []*family {
	return []*family{x.success, x.failure, x.count, x.execCount, x.pending, x.requestUS, x.queueUS,
		x.inputUS, x.inferUS, x.outputUS, x.firstResponse, x.queueSummary, x.gpuUtil}
}

func (x *triton) start(s *series, gpu string) {
	m, v := x.model, x.version
	for _, f := range x.families() {
		switch f {
		case x.failure:
			for _, r := range []string{"REJECTED", "CANCELED", "BACKEND", "OTHER"} {
				s.child(f, m, v, r)
			}
		case x.gpuUtil:
			if gpu != "" {
				s.child(f, gpu)
			}
		default:
			s.child(f, m, v)
		}
	}
}

func (x *triton) tick(s *series, t *podTick) {
	m, v := x.model, x.version
	s.set(x.pending, math.Round(t.occ.Waiting), m, v)
	if t.gpu != "" {
		// Triton polls DCGM every 2 s, more often than a tick: the tick's duty cycle.
		s.set(x.gpuUtil, t.occ.Busy, t.gpu)
	}
	n := float64(len(t.served))
	s.add(x.success, n, m, v)
	s.add(x.count, n, m, v)
	s.add(x.execCount, n, m, v)
	// Triton adds whole microseconds (nanoseconds / 1000) per request.
	us := func(f *family, sec float64) { s.add(f, math.Floor(sec*f.scale()), m, v) }
	for _, d := range t.served {
		us(x.requestUS, d.E2E()+2*tritonCopy)
		us(x.queueUS, d.Queue)
		us(x.inputUS, tritonCopy)
		us(x.inferUS, d.Inference())
		us(x.outputUS, tritonCopy)
		s.observe(x.firstResponse, d.TTFT()+tritonCopy, 1, m, v)
		s.observe(x.queueSummary, d.Queue, 1, m, v)
	}
}
