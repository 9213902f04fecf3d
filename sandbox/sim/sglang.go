package sim

import "math"

// sglang imitates SGLang's scheduler and tokenizer collectors (testdata/upstream/sglang.txt)
// under prometheus_client's multiprocess mode: no _created series, and a child exists
// from its first use. The scheduler's gauges carry model_name, engine_type ("unified"),
// tp_rank and pp_rank ("0": one rank); the tokenizer's series model_name only. The
// simulated scheduler logs its gauges every tick (SGLang does after each prefill batch and
// every decode_log_interval decode steps). It never aborts a request, so
// sglang:num_aborted_requests_total never appears.
type sglang struct {
	model                                                         string
	batch                                                         float64
	kvTokens                                                      float64
	running, queued, tokenUsage, usedTokens, throughput, hitRate  *family
	utilization, queueTime                                        *family
	ttft, itl, e2e, requests, aborted, prompt, generation, cached *family
	retractions                                                   *family
}

func newSGLang(model string, batch int, kvTokens float64) *sglang {
	sched := []string{"model_name", "engine_type", "tp_rank", "pp_rank"}
	tok := []string{"model_name"}
	g := func(name, unit, help string) *family {
		return &family{name: name, kind: gauge, unit: unit, help: help, labels: sched}
	}
	c := func(name, unit, help string) *family {
		return &family{name: name, kind: counter, unit: unit, help: help, labels: tok}
	}
	h := func(name, unit, help string, labels []string, buckets []float64) *family {
		return &family{name: name, kind: histogram, unit: unit, help: help, labels: labels, buckets: buckets}
	}
	return &sglang{
		model: model, batch: float64(batch), kvTokens: kvTokens,
		running:     g("sglang:num_running_reqs", "requests", "Requests in the running batch."),
		queued:      g("sglang:num_queue_reqs", "requests", "Requests waiting."),
		tokenUsage:  g("sglang:token_usage", "ratio", "KV pool usage, 0..1."),
		usedTokens:  g("sglang:num_used_tokens", "tokens", "KV pool tokens in use."),
		throughput:  g("sglang:gen_throughput", "tokens/s", "Generated tokens per second."),
		hitRate:     g("sglang:cache_hit_rate", "ratio", "Prefix cache hits over lookups."),
		utilization: g("sglang:utilization", "ratio", "Running requests over the most the scheduler runs."),
		queueTime: h("sglang:queue_time_seconds", "seconds", "Time a request waited before its first forward batch.", sched,
			[]float64{0.0, 0.1, 0.2, 0.5, 1, 2, 3, 4, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 300, 400,
				500, 600, 700, 800, 900, 1000, 1200, 1400, 1600, 1800, 2000, 2500, 3000}),
		ttft: h("sglang:time_to_first_token_seconds", "seconds", "Time from arrival to the first token.", tok,
			[]float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400}),
		itl: h("sglang:inter_token_latency_seconds", "seconds", "Time between two output tokens.", tok,
			[]float64{0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.020, 0.025, 0.030, 0.035, 0.040, 0.060, 0.080,
				0.100, 0.200, 0.400, 0.600, 0.800, 1.000, 2.000, 4.000, 6.000, 8.000}),
		e2e: h("sglang:e2e_request_latency_seconds", "seconds", "Time from arrival to the last token.", tok,
			[]float64{0.1, 0.2, 0.4, 0.6, 0.8, 1, 2, 4, 6, 8, 10, 20, 40, 60, 80, 100, 200, 400, 600, 1200, 1800, 2400}),
		requests:   c("sglang:num_requests_total", "requests", "Requests finished."),
		aborted:    c("sglang:num_aborted_requests_total", "requests", "Requests aborted."),
		prompt:     c("sglang:prompt_tokens_total", "tokens", "Prompt tokens of finished requests."),
		generation: c("sglang:generation_tokens_total", "tokens", "Output tokens of finished requests."),
		cached:     c("sglang:cached_tokens_total", "tokens", "Cached prompt tokens of finished requests."),
		retractions: h("sglang:num_retractions", "count", "Retractions of a finished request.", tok,
			[]float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 75, 100}),
	}
}

func (g *sglang) families() []*family {
	return []*family{g.running, g.queued, g.tokenUsage, g.usedTokens, g.throughput, g.hitRate,
		g.utilization, g.queueTime, g.ttft, g.itl, g.e2e, g.requests, g.aborted, g.prompt,
		g.generation, g.cached, g.retractions}
}

func (g *sglang) start(*series, string) {}

func (g *sglang) tick(s *series, t *podTick) {
	sched := []string{g.model, "unified", "0", "0"}
	running := math.Round(t.occ.Running)
	_, output := t.tokens()
	s.set(g.running, running, sched...)
	s.set(g.queued, math.Round(t.occ.Waiting), sched...)
	s.set(g.tokenUsage, t.occ.KV, sched...)
	s.set(g.usedTokens, math.Round(t.occ.KV*g.kvTokens), sched...)
	s.set(g.throughput, output/t.dt, sched...)
	s.set(g.hitRate, 0, sched...)
	// As if max_running_requests_under_SLO were the batch size (the upstream file does
	// not say what SGLang exports without it).
	s.set(g.utilization, running/g.batch, sched...)
	for _, d := range t.served {
		s.observe(g.queueTime, d.Queue, 1, sched...)
		s.observe(g.ttft, d.TTFT(), 1, g.model)
		s.observe(g.itl, d.ITL, uint64(d.Output-1), g.model)
		s.observe(g.e2e, d.E2E(), 1, g.model)
		s.add(g.requests, 1, g.model)
		s.add(g.prompt, float64(d.Prompt), g.model)
		s.add(g.generation, float64(d.Output), g.model)
		s.add(g.cached, 0, g.model)
		s.observe(g.retractions, 0, 1, g.model)
	}
}
