package sim

import (
	"math"
	"strconv"
)

// vllm imitates vLLM V1's PrometheusStatLogger (testdata/upstream/vllm.txt): every family
// labelled model_name and engine (one engine, "0"), every child created at start, a
// counter exposed with _total and, in prometheus_client's single-process text format, a
// _created gauge beside each counter and histogram.
type vllm struct {
	model, engine                                                   string
	maxModelLen                                                     int
	kvTokens                                                        float64
	running, waiting, waitingByReason, kv, sleep                    *family
	success, promptTokens, generationTokens, promptBySource, cached *family
	preemptions, prefixQueries, prefixHits                          *family
	ttft, itl, tpot, e2e, queue, inference, prefill, decode         *family
	promptHist, generationHist, prefillKV, iteration, n, maxTokens  *family
	maxGeneration, cacheInfo                                        *family
}

// vLLM's latency buckets (loggers.py), in seconds.
var (
	vllmTTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0,
		2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	vllmITLBuckets = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
		5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	vllmRequestBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0,
		50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	vllmIterationBuckets = []float64{1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384}
	vllmNBuckets         = []float64{1, 2, 5, 10, 20}
)

// buckets125 is vLLM's 1-2-5 series up to max: every m*10^k <= max, m in 1, 2, 5.
func buckets125(max int) []float64 {
	var b []float64
	for e := 1; ; e *= 10 {
		for _, m := range []int{1, 2, 5} {
			if m*e > max {
				return b
			}
			b = append(b, float64(m*e))
		}
	}
}

// vllmCacheInfo is the label set of vllm:cache_config_info besides engine: a few of
// CacheConfig's keys (the upstream file does not enumerate them; vLLM writes one label per
// key).
var vllmCacheInfo = []string{"block_size", "cache_dtype", "enable_prefix_caching", "gpu_memory_utilization", "num_gpu_blocks"}

const vllmBlockSize = 16

func newVLLM(model string, maxModelLen int, kvTokens float64) *vllm {
	l := []string{"model_name", "engine"}
	with := func(extra ...string) []string { return append([]string{"model_name", "engine"}, extra...) }
	tokens := buckets125(maxModelLen)
	g := func(name, unit, help string, labels []string) *family {
		return &family{name: name, kind: gauge, unit: unit, help: help, labels: labels}
	}
	c := func(name, unit, help string, labels []string) *family {
		return &family{name: name, kind: counter, unit: unit, help: help, labels: labels, created: true}
	}
	h := func(name, unit, help string, buckets []float64) *family {
		return &family{name: name, kind: histogram, unit: unit, help: help, labels: l, buckets: buckets, created: true}
	}
	return &vllm{
		model: model, engine: "0", maxModelLen: maxModelLen, kvTokens: kvTokens,
		running:          g("vllm:num_requests_running", "requests", "Requests in the running batch.", l),
		waiting:          g("vllm:num_requests_waiting", "requests", "Requests waiting to be scheduled.", l),
		waitingByReason:  g("vllm:num_requests_waiting_by_reason", "requests", "Waiting requests by why they wait.", with("reason")),
		kv:               g("vllm:kv_cache_usage_perc", "ratio", "KV cache usage, 0..1.", l),
		sleep:            g("vllm:engine_sleep_state", "boolean", "Engine sleep state, 1 for the current one.", with("sleep_state")),
		success:          c("vllm:request_success_total", "requests", "Finished requests by finish reason.", with("finished_reason")),
		promptTokens:     c("vllm:prompt_tokens_total", "tokens", "Prefilled prompt tokens.", l),
		generationTokens: c("vllm:generation_tokens_total", "tokens", "Generated tokens.", l),
		promptBySource:   c("vllm:prompt_tokens_by_source_total", "tokens", "Prompt tokens by where their KV came from.", with("source")),
		cached:           c("vllm:prompt_tokens_cached_total", "tokens", "Prompt tokens found in a cache.", l),
		preemptions:      c("vllm:num_preemptions_total", "requests", "Preempted requests.", l),
		prefixQueries:    c("vllm:prefix_cache_queries_total", "tokens", "Tokens looked up in the prefix cache.", l),
		prefixHits:       c("vllm:prefix_cache_hits_total", "tokens", "Tokens found in the prefix cache.", l),
		ttft:             h("vllm:time_to_first_token_seconds", "seconds", "Time from arrival to the first token.", vllmTTFTBuckets),
		itl:              h("vllm:inter_token_latency_seconds", "seconds", "Time between two output tokens.", vllmITLBuckets),
		tpot:             h("vllm:request_time_per_output_token_seconds", "seconds", "A finished request's mean time per output token.", vllmITLBuckets),
		e2e:              h("vllm:e2e_request_latency_seconds", "seconds", "Time from arrival to the last token.", vllmRequestBuckets),
		queue:            h("vllm:request_queue_time_seconds", "seconds", "Time queued before first scheduled.", vllmRequestBuckets),
		inference:        h("vllm:request_inference_time_seconds", "seconds", "Time from first scheduled to the last token.", vllmRequestBuckets),
		prefill:          h("vllm:request_prefill_time_seconds", "seconds", "Time from first scheduled to the first token.", vllmRequestBuckets),
		decode:           h("vllm:request_decode_time_seconds", "seconds", "Time from the first token to the last.", vllmRequestBuckets),
		promptHist:       h("vllm:request_prompt_tokens", "tokens", "A finished request's prompt tokens.", tokens),
		generationHist:   h("vllm:request_generation_tokens", "tokens", "A finished request's output tokens.", tokens),
		prefillKV:        h("vllm:request_prefill_kv_computed_tokens", "tokens", "A finished request's prompt tokens computed, not cached.", tokens),
		iteration:        h("vllm:iteration_tokens_total", "tokens", "Tokens per engine step.", vllmIterationBuckets),
		n:                h("vllm:request_params_n", "count", "A request's n.", vllmNBuckets),
		maxTokens:        h("vllm:request_params_max_tokens", "tokens", "A request's max_tokens.", tokens),
		maxGeneration:    h("vllm:request_max_num_generation_tokens", "tokens", "A request's most output tokens over its sequences.", tokens),
		cacheInfo:        g("vllm:cache_config_info", "boolean", "The KV cache configuration, as labels.", append([]string{"engine"}, vllmCacheInfo...)),
	}
}

func (v *vllm) families() []*family {
	return []*family{v.running, v.waiting, v.waitingByReason, v.kv, v.sleep, v.success, v.promptTokens,
		v.generationTokens, v.promptBySource, v.cached, v.preemptions, v.prefixQueries, v.prefixHits,
		v.ttft, v.itl, v.tpot, v.e2e, v.queue, v.inference, v.prefill, v.decode, v.promptHist,
		v.generationHist, v.prefillKV, v.iteration, v.n, v.maxTokens, v.maxGeneration, v.cacheInfo}
}

func (v *vllm) start(s *series, _ string) {
	m, e := v.model, v.engine
	for _, f := range v.families() {
		switch f {
		case v.waitingByReason:
			s.child(f, m, e, "capacity")
			s.child(f, m, e, "deferred")
		case v.sleep:
			s.set(f, 1, m, e, "awake")
			s.child(f, m, e, "weights_offloaded")
			s.child(f, m, e, "discard_all")
		case v.success:
			for _, r := range []string{"stop", "length", "abort"} {
				s.child(f, m, e, r)
			}
		case v.promptBySource:
			for _, src := range []string{"local_compute", "local_cache_hit", "external_kv_transfer"} {
				s.child(f, m, e, src)
			}
		case v.cacheInfo:
			blocks := strconv.Itoa(int(v.kvTokens) / vllmBlockSize)
			s.set(f, 1, e, strconv.Itoa(vllmBlockSize), "auto", "True", "0.9", blocks)
		default:
			s.child(f, m, e)
		}
	}
}

func (v *vllm) tick(s *series, t *podTick) {
	m, e := v.model, v.engine
	waiting := math.Round(t.occ.Waiting)
	s.set(v.running, math.Round(t.occ.Running), m, e)
	s.set(v.waiting, waiting, m, e)
	s.set(v.waitingByReason, waiting, m, e, "capacity")
	s.set(v.kv, t.occ.KV, m, e)
	for _, d := range t.served {
		// A request without max_tokens may generate up to the context length; it stops
		// before, so every finish is "stop".
		maxTokens := float64(v.maxModelLen - d.Prompt)
		s.add(v.success, 1, m, e, "stop")
		s.observe(v.ttft, d.TTFT(), 1, m, e)
		s.observe(v.itl, d.ITL, uint64(d.Output-1), m, e)
		tpot := 0.0 // vLLM's mean time per output token of a one-token request
		if d.Output > 1 {
			tpot = d.Decode / float64(d.Output-1)
		}
		s.observe(v.tpot, tpot, 1, m, e)
		s.observe(v.e2e, d.E2E(), 1, m, e)
		s.observe(v.queue, d.Queue, 1, m, e)
		s.observe(v.inference, d.Inference(), 1, m, e)
		s.observe(v.prefill, d.Prefill, 1, m, e)
		s.observe(v.decode, d.Decode, 1, m, e)
		s.observe(v.promptHist, float64(d.Prompt), 1, m, e)
		s.observe(v.generationHist, float64(d.Output), 1, m, e)
		s.observe(v.prefillKV, float64(d.Prompt), 1, m, e)
		s.observe(v.n, 1, 1, m, e)
		s.observe(v.maxTokens, maxTokens, 1, m, e)
		s.observe(v.maxGeneration, float64(d.Output), 1, m, e)
	}
	prompt, output := t.tokens()
	s.add(v.promptTokens, prompt, m, e)
	s.add(v.generationTokens, output, m, e)
	s.add(v.promptBySource, prompt, m, e, "local_compute")
	s.add(v.prefixQueries, prompt, m, e)
	if steps := t.carry("steps", t.steps); steps > 0 {
		s.observe(v.iteration, (prompt+output)/steps, uint64(steps), m, e)
	}
}
