package sim

import "math"

// tgi imitates Text Generation Inference v3's router (testdata/upstream/tgi.txt): no label
// of its own on most series, counters without _total, and no series before the code first
// touches it (metrics-exporter-prometheus creates a series on first use). The simulated
// router serves /generate: one tgi_request_count per request (the chat route would count
// two). It never fails a request, so tgi_request_failure and tgi_batch_inference_failure
// never appear, as on a server that has had no failure.
type tgi struct {
	maxTotal, maxInput, kvTokens                                 float64
	queueSize, batchSize, batchMaxTokens, maxTotalTokens         *family
	count, success, failure                                      *family
	duration, queue, validation, inference, perToken             *family
	generated, input, maxNew, nextSize, skipped                  *family
	batchCount, batchSuccess, batchFailure, concat, batchLatency *family
}

// tgiValidation is the router's validation time of a request (tokenizing its prompt),
// model seconds: small next to any queue.
const tgiValidation = 0.001

// tgiDurationBuckets are the router's buckets of every *duration histogram: 35 bounds,
// 0.0001 * 1.5^k for k = 1..35, computed by repeated multiplication as the router does, so
// that each bound is the same float64.
func tgiDurationBuckets() []float64 {
	b := make([]float64, 35)
	v := 0.0001
	for i := range b {
		v *= 1.5
		b[i] = v
	}
	return b
}

// tgiTokenBuckets are (max/100)*k for k = 1..100, as the router computes them.
func tgiTokenBuckets(max int) []float64 {
	b := make([]float64, 100)
	for i := range b {
		b[i] = float64(max) / 100 * float64(i+1)
	}
	return b
}

// newTGI builds the router of a model whose context is maxTotal tokens (max_total_tokens;
// max_input_tokens one less) with a KV cache of kvTokens (max_batch_total_tokens).
func newTGI(maxTotal int, kvTokens float64) *tgi {
	dur := tgiDurationBuckets()
	batch := make([]float64, 1024)
	for i := range batch {
		batch[i] = float64(i + 1)
	}
	g := func(name, unit, help string) *family { return &family{name: name, kind: gauge, unit: unit, help: help} }
	c := func(name, unit, help string, labels ...string) *family {
		return &family{name: name, kind: counter, unit: unit, help: help, labels: labels}
	}
	h := func(name, unit, help string, buckets []float64, labels ...string) *family {
		return &family{name: name, kind: histogram, unit: unit, help: help, buckets: buckets, labels: labels}
	}
	return &tgi{
		maxTotal: float64(maxTotal), maxInput: float64(maxTotal - 1), kvTokens: kvTokens,
		queueSize:      g("tgi_queue_size", "requests", "Requests queued."),
		batchSize:      g("tgi_batch_current_size", "requests", "Requests in the running batch."),
		batchMaxTokens: g("tgi_batch_current_max_tokens", "tokens", "Tokens the running batch reserves."),
		maxTotalTokens: g("tgi_batch_max_total_tokens", "tokens", ""),
		count:          c("tgi_request_count", "requests", "Requests received."),
		success:        c("tgi_request_success", "requests", "Requests answered."),
		failure:        c("tgi_request_failure", "requests", "Requests failed, by error.", "err"),
		duration:       h("tgi_request_duration", "seconds", "Time in the router, seconds.", dur),
		queue:          h("tgi_request_queue_duration", "seconds", "Time queued, seconds.", dur),
		validation:     h("tgi_request_validation_duration", "seconds", "Time validating, seconds.", dur),
		inference:      h("tgi_request_inference_duration", "seconds", "Time in the batch, seconds.", dur),
		perToken:       h("tgi_request_mean_time_per_token_duration", "seconds", "Time in the batch per generated token, seconds.", dur),
		generated:      h("tgi_request_generated_tokens", "tokens", "A request's generated tokens.", tgiTokenBuckets(maxTotal)),
		input:          h("tgi_request_input_length", "tokens", "A request's prompt tokens.", tgiTokenBuckets(maxTotal-1)),
		maxNew:         h("tgi_request_max_new_tokens", "tokens", "A request's max_new_tokens.", tgiTokenBuckets(maxTotal)),
		nextSize:       h("tgi_batch_next_size", "requests", "Requests taken into a prefill batch.", batch),
		skipped: &family{name: "tgi_request_skipped_tokens", kind: summary, unit: "tokens",
			help: "A request's speculated tokens skipped.", quantiles: []float64{0, 0.5, 0.9, 0.95, 0.99, 0.999, 1}},
		batchCount:   c("tgi_batch_inference_count", "count", "Batch steps, by method.", "method"),
		batchSuccess: c("tgi_batch_inference_success", "count", "Batch steps that succeeded, by method.", "method"),
		batchFailure: c("tgi_batch_inference_failure", "count", "Batch steps that failed, by method.", "method"),
		concat:       c("tgi_batch_concat", "count", "New requests joined to the running batch, by reason.", "reason"),
		batchLatency: h("tgi_batch_inference_duration", "seconds", "Time of a batch step, seconds.", dur, "method"),
	}
}

func (g *tgi) families() []*family {
	return []*family{g.queueSize, g.batchSize, g.batchMaxTokens, g.maxTotalTokens, g.count, g.success,
		g.failure, g.duration, g.queue, g.validation, g.inference, g.perToken, g.generated, g.input,
		g.maxNew, g.nextSize, g.skipped, g.batchCount, g.batchSuccess, g.batchFailure, g.concat, g.batchLatency}
}

// start sets the one series the v3 backend sets when it connects: the KV budget.
func (g *tgi) start(s *series, _ string) { s.set(g.maxTotalTokens, g.kvTokens) }

func (g *tgi) tick(s *series, t *podTick) {
	for _, r := range t.arrived {
		s.add(g.count, 1)
		s.observe(g.input, float64(r.Prompt), 1)
		s.observe(g.maxNew, g.maxTotal-float64(r.Prompt), 1) // a request without max_new_tokens
	}
	for _, d := range t.served {
		s.add(g.success, 1)
		s.observe(g.duration, tgiValidation+d.E2E(), 1)
		s.observe(g.validation, tgiValidation, 1)
		s.observe(g.queue, d.Queue, 1)
		s.observe(g.inference, d.Inference(), 1)
		s.observe(g.perToken, d.Inference()/float64(d.Output), 1)
		s.observe(g.generated, float64(d.Output), 1)
		s.observe(g.skipped, 0, 1) // no speculation
	}
	if s.children[g.queueSize] != nil || len(t.arrived) > 0 {
		// The queue and batch gauges exist from the first request on.
		running := math.Round(t.occ.Running)
		s.set(g.queueSize, math.Round(t.occ.Waiting))
		s.set(g.batchSize, running)
		// Each request reserves its prompt and max_new_tokens: max_total_tokens.
		s.set(g.batchMaxTokens, running*g.maxTotal)
	}
	prefills := t.carry("prefills", t.prefills)
	decodes := t.carry("decodes", max(0, t.steps-t.prefills))
	if prefills > 0 {
		prompt, _ := t.tokens()
		s.add(g.batchCount, prefills, "prefill")
		s.add(g.batchSuccess, prefills, "prefill")
		s.observe(g.batchLatency, t.step*(1+prompt/prefills/t.prefillRatio), uint64(prefills), "prefill")
		s.observe(g.nextSize, math.Max(1, math.Round(float64(len(t.served))/prefills)), uint64(prefills))
		// New requests join a running batch (chunked prefill) whenever one runs.
		if n := t.carry("concat", prefills*t.occ.Busy); n > 0 {
			s.add(g.concat, n, "chunking")
		}
	}
	if decodes > 0 {
		s.add(g.batchCount, decodes, "decode")
		s.add(g.batchSuccess, decodes, "decode")
		s.observe(g.batchLatency, t.step, uint64(decodes), "decode")
	}
}
