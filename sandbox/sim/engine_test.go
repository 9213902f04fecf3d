package sim

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testEngine: a batch of 16 completing 20 requests/s (a mean request stays 0.8 s in the
// batch), mean requests of 1000 prompt and 200 output tokens, 100 prompt tokens prefilled
// per step: a step is 0.8 / (1000/100 + 200) = 0.8/210 s. The KV cache holds 16 requests'
// whole context, 16 * 1200 = 19200 tokens.
var testEngine = Engine{Batch: 16, Mu: 20, Prompt: 1000, Output: 200, PrefillRatio: 100, KVTokens: 19200}

const testStep = 0.8 / 210

var approx = cmpopts.EquateApprox(0, 1e-9)

func TestEngineLatency(t *testing.T) {
	cases := []struct {
		name  string
		queue float64
		req   Request
		want  Latency
	}{
		{
			// Prefill: 1 + 1000/100 = 11 steps; decode: 199 steps; in all 210 steps = 0.8 s.
			name: "a mean request admitted at once", req: Request{Prompt: 1000, Output: 200},
			want: Latency{Prefill: 11 * testStep, Decode: 199 * testStep, ITL: testStep},
		},
		{
			name: "a queue delays the first token and the last alike", queue: 7.5, req: Request{Prompt: 1000, Output: 200},
			want: Latency{Queue: 7.5, Prefill: 11 * testStep, Decode: 199 * testStep, ITL: testStep},
		},
		{
			// 1 + 8000/100 = 81 steps of prefill, one output token: no decode.
			name: "a long prompt with one output token ends at its first token", req: Request{Prompt: 8000, Output: 1},
			want: Latency{Prefill: 81 * testStep, ITL: testStep},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := testEngine.Latency(c.queue, c.req)
			if diff := cmp.Diff(c.want, got, approx); diff != "" {
				t.Errorf("Latency (-want +got):\n%s", diff)
			}
			if got.TTFT() != got.Queue+got.Prefill || got.E2E() != got.TTFT()+got.Decode {
				t.Errorf("TTFT %v, E2E %v: want queue+prefill and TTFT+decode", got.TTFT(), got.E2E())
			}
		})
	}
	if got := testEngine.Latency(0, Request{Prompt: 1000, Output: 200}).E2E(); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("a mean request's time in the batch = %v, want Batch/Mu = 0.8 s", got)
	}
}

// TestEngineUnderLoad runs the fluid queue at a fixed arrival rate and reads each tick's
// latency and occupancy: below capacity nothing waits and the first token comes well
// before the last; above it the queue time grows tick after tick.
func TestEngineUnderLoad(t *testing.T) {
	dt := 15 * time.Second
	mean := Request{Prompt: 1000, Output: 200}
	cases := []struct {
		name      string
		lambda    float64 // requests/s on 2 replicas of 20/s
		wantQueue []float64
		wantRun   float64
	}{
		// 20/s on 40/s: half the batch runs (Little: 10/s per replica x 0.8 s = 8).
		{name: "half the capacity queues nothing", lambda: 20, wantQueue: []float64{0, 0, 0}, wantRun: 8},
		// Exactly at capacity: everything is served within its tick.
		{name: "at capacity queues nothing", lambda: 40, wantQueue: []float64{0, 0, 0}, wantRun: 16},
		// 60/s on 40/s: 300 more requests wait each tick, 300/40 = 7.5 s more queue time.
		{name: "over capacity the queue time grows", lambda: 60, wantQueue: []float64{7.5, 15, 22.5}, wantRun: 16},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st State
			for i, want := range c.wantQueue {
				var tick Tick
				st, tick = Step(st, c.lambda, testEngine.Mu, 2, dt)
				lat := testEngine.Latency(tick.Delay, mean)
				if math.Abs(lat.Queue-want) > 1e-9 {
					t.Errorf("tick %d: queue time %v, want %v", i, lat.Queue, want)
				}
				if !(lat.TTFT() < lat.E2E()) {
					t.Errorf("tick %d: TTFT %v, want below the end-to-end latency %v", i, lat.TTFT(), lat.E2E())
				}
				if got := testEngine.Occupancy(tick, 2).Running; math.Abs(got-c.wantRun) > 1e-9 {
					t.Errorf("tick %d: running %v, want %v", i, got, c.wantRun)
				}
			}
		})
	}
}

func TestEngineOccupancy(t *testing.T) {
	dt := 15 * time.Second
	occupancy := func(e Engine, lambda float64) Occupancy {
		_, tick := Step(State{}, lambda, e.Mu, 2, dt)
		return e.Occupancy(tick, 2)
	}
	// A running request holds its prompt and half its output on average: 1000 + 100 tokens
	// of the 19200.
	cases := []struct {
		name   string
		lambda float64
		want   Occupancy
	}{
		{name: "idle", lambda: 0, want: Occupancy{}},
		// 2.5/s per replica x 0.8 s = 2 running; 2 x 1100 / 19200; busy 1 - e^-2.
		{name: "an eighth of the capacity", lambda: 5, want: Occupancy{Running: 2, KV: 2200.0 / 19200, Busy: 1 - math.Exp(-2)}},
		{name: "half the capacity", lambda: 20, want: Occupancy{Running: 8, KV: 8800.0 / 19200, Busy: 1 - math.Exp(-8)}},
		// The batch is full; the rest waits (300 requests, 150 per replica) and holds no KV.
		{name: "over capacity", lambda: 60, want: Occupancy{Running: 16, Waiting: 150, KV: 17600.0 / 19200, Busy: 1 - math.Exp(-16)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, occupancy(testEngine, c.lambda), approx); diff != "" {
				t.Errorf("Occupancy (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("KV usage rises with concurrency and stays in [0, 1]", func(t *testing.T) {
		small := testEngine
		small.KVTokens = 5000 // fills at 4.5 running requests
		for _, e := range []Engine{testEngine, small} {
			last := -1.0
			for lambda := 0.0; lambda <= 80; lambda += 2.5 {
				kv := occupancy(e, lambda).KV
				if kv < last || kv < 0 || kv > 1 {
					t.Fatalf("KV cache of %v tokens at %v/s: %v after %v, want non-decreasing in [0, 1]", e.KVTokens, lambda, kv, last)
				}
				last = kv
			}
			if e.KVTokens == small.KVTokens && last != 1 {
				t.Errorf("a KV cache smaller than the batch's context reads %v at overload, want 1", last)
			}
		}
	})
	t.Run("no replica holds nothing", func(t *testing.T) {
		_, tick := Step(State{Queue: 10}, 5, testEngine.Mu, 0, dt)
		if got := testEngine.Occupancy(tick, 0); got != (Occupancy{}) {
			t.Errorf("Occupancy with no replica = %+v, want zero", got)
		}
	})
}

func TestEngineDutyCycleIsNotLoad(t *testing.T) {
	// The trap of GPU utilization: at a sixteenth of the capacity (1 request in a batch of
	// 16) the GPU is busy 1 - e^-1 = 63 % of the time; at a quarter (4 running), 98 %.
	_, tick := Step(State{}, 2.5, testEngine.Mu, 2, 15*time.Second)
	if got := testEngine.Occupancy(tick, 2).Busy; math.Abs(got-(1-math.Exp(-1))) > 1e-9 {
		t.Errorf("busy at 1/16 of capacity = %v, want 0.632", got)
	}
	_, tick = Step(State{}, 10, testEngine.Mu, 2, 15*time.Second)
	if got := testEngine.Occupancy(tick, 2).Busy; got < 0.98 {
		t.Errorf("busy at 1/4 of capacity = %v, want above 0.98", got)
	}
}
