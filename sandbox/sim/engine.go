package sim

import "math"

// Engine is the request-level model of one replica under the fluid queue of Step. Step
// decides how many requests a tick serves and how long they waited; Engine says what that
// means for each request and for the replica's gauges, the way a continuous-batching
// server (vLLM, TGI, SGLang, Triton with an LLM backend) would show it:
//
//   - a replica runs up to Batch requests at once; a request in the batch takes one engine
//     step per output token, and its prefill costs Prompt/PrefillRatio steps more, so that a
//     request of the mean size stays in the batch Batch/Mu seconds (a full batch then
//     completes Mu requests/s, Step's capacity);
//   - queue time is the wait before admission into the batch (Step's delay); time to first
//     token is the queue time plus the prefill (which emits the first token); end-to-end
//     latency adds one step per further output token; the inter-token latency is one step.
//     The step time does not grow with the batch: the capacity stays Mu, as Step has it;
//   - the running requests are Little's law, the served rate times the time in the batch;
//     the KV cache holds each running request's prompt and, on average, half its output;
//   - the GPU is busy whenever any request runs. With requests arriving at random, the
//     number in the batch is Poisson-distributed around its mean L, so the share of time
//     with a batch running (NVML's utilization, a duty cycle) is 1 - exp(-L): 95 % at three
//     requests in a batch of 256.
//
// Times are model seconds. Engine is pure.
type Engine struct {
	Batch        int     // requests a replica runs at once
	Mu           float64 // requests/s a replica completes with a full batch of mean requests
	Prompt       float64 // mean prompt tokens
	Output       float64 // mean output tokens
	PrefillRatio float64 // prompt tokens prefilled in the time of one decode step
	KVTokens     float64 // tokens a replica's KV cache holds
}

// Latency is one request's times, in model seconds.
type Latency struct {
	Queue   float64 // waiting before admission into the batch
	Prefill float64 // admission to the first token
	Decode  float64 // first token to last
	ITL     float64 // between two output tokens
}

// TTFT is the time from arrival to the first token.
func (l Latency) TTFT() float64 { return l.Queue + l.Prefill }

// E2E is the time from arrival to the last token.
func (l Latency) E2E() float64 { return l.Queue + l.Prefill + l.Decode }

// Inference is the time in the batch, admission to the last token.
func (l Latency) Inference() float64 { return l.Prefill + l.Decode }

// Occupancy is what one replica holds during a tick, the same for every Ready replica
// (Step shares the load evenly).
type Occupancy struct {
	Running float64 // mean requests in the batch
	Waiting float64 // requests waiting for admission
	KV      float64 // share of the KV cache in use, 0..1
	Busy    float64 // share of the time some request ran (the GPU's duty cycle), 0..1
}

// StepTime is the time of one engine step, the inter-token latency, in model seconds.
func (e Engine) StepTime() float64 {
	return float64(e.Batch) / e.Mu / (e.Prompt/e.PrefillRatio + e.Output)
}

// Latency returns the times of request r admitted after waiting queue seconds.
func (e Engine) Latency(queue float64, r Request) Latency {
	step := e.StepTime()
	return Latency{
		Queue:   queue,
		Prefill: step * (1 + float64(r.Prompt)/e.PrefillRatio),
		Decode:  step * float64(max(r.Output-1, 0)),
		ITL:     step,
	}
}

// Occupancy returns a Ready replica's occupancy in tick t of Step with ready replicas;
// zero with none.
func (e Engine) Occupancy(t Tick, ready int) Occupancy {
	if ready <= 0 {
		return Occupancy{}
	}
	// Step's utilization is served / capacity; served per second times the time in the
	// batch (Batch/Mu) is this share of the batch.
	running := t.Util / 100 * float64(e.Batch)
	return Occupancy{
		Running: running,
		Waiting: t.QueuePerPod,
		KV:      min(1, running*(e.Prompt+e.Output/2)/e.KVTokens),
		Busy:    1 - math.Exp(-running),
	}
}
