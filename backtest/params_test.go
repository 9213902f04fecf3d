package backtest

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prescale/prescale/policy"
)

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name string
		set  func(p *Params)
		want string // "" for valid
	}{
		{"defaults", func(*Params) {}, ""},
		{"the shortest tick", func(p *Params) { p.Tick = time.Second }, ""},
		{"a sub-second tick", func(p *Params) { p.Tick = 500 * time.Millisecond }, "tick: must be 1s..1m0s and divide a minute, got 500ms"},
		{"a nanosecond tick", func(p *Params) { p.Tick = time.Nanosecond }, "tick: must be 1s..1m0s and divide a minute, got 1ns"},
		{"a minute tick", func(p *Params) { p.Tick = time.Minute }, ""},
		{"a tick over a minute", func(p *Params) { p.Tick = 2 * time.Minute }, "tick: must be 1s..1m0s and divide a minute, got 2m0s"},
		{"a tick not dividing a minute", func(p *Params) { p.Tick = 7 * time.Second }, "tick: must be 1s..1m0s and divide a minute, got 7s"},
		{"a zero tick", func(p *Params) { p.Tick = 0 }, "tick: must be 1s..1m0s and divide a minute, got 0s"},
		{"no startup", func(p *Params) { p.Startup = 0 }, ""},
		{"a day's startup", func(p *Params) { p.Startup = 24 * time.Hour }, ""},
		{"a startup over a day", func(p *Params) { p.Startup = 24*time.Hour + time.Second }, "startup: must be 0s..24h0m0s, got 24h0m1s"},
		{"the longest duration as startup", func(p *Params) { p.Startup = 2562047 * time.Hour }, "startup: must be 0s..24h0m0s, got 2562047h0m0s"},
		{"a negative startup", func(p *Params) { p.Startup = -time.Second }, "startup: must be 0s..24h0m0s, got -1s"},
		{"the most peak replicas", func(p *Params) { p.PeakReplicas = PeakReplicasLimit }, ""},
		{"peak replicas over the limit", func(p *Params) { p.PeakReplicas = PeakReplicasLimit + 1 }, "peakReplicas: must be 1..100000, got 100001"},
		{"peak replicas that double past int32", func(p *Params) { p.PeakReplicas = 2000000000 }, "peakReplicas: must be 1..100000, got 2000000000"},
		{"no peak replicas", func(p *Params) { p.PeakReplicas = 0 }, "peakReplicas: must be 1..100000, got 0"},
		{"min replicas at the default max", func(p *Params) { p.MinReplicas = 80 }, ""},
		{"min replicas over the default max", func(p *Params) { p.MinReplicas = 81 },
			"minReplicas: must be at most maxReplicas (default 2 x peakReplicas = 80), got 81"},
		{"min replicas over the limit", func(p *Params) { p.MinReplicas, p.MaxReplicas = PeakReplicasLimit+1, ReplicasLimit },
			"minReplicas: must be 0..100000, got 100001"},
		{"negative min replicas", func(p *Params) { p.MinReplicas = -1 }, "minReplicas: must be 0..100000, got -1"},
		{"the most max replicas", func(p *Params) { p.MaxReplicas = ReplicasLimit }, ""},
		{"max replicas over the limit", func(p *Params) { p.MaxReplicas = ReplicasLimit + 1 }, "maxReplicas: must be 0 (2 x peakReplicas) or minReplicas (1)..1000000, got 1000001"},
		{"the largest int32 as max replicas", func(p *Params) { p.MaxReplicas = math.MaxInt32 }, "maxReplicas: must be 0 (2 x peakReplicas) or minReplicas (1)..1000000, got 2147483647"},
		{"max replicas under min replicas", func(p *Params) { p.MinReplicas, p.MaxReplicas = 3, 2 }, "maxReplicas: must be 0 (2 x peakReplicas) or minReplicas (3)..1000000, got 2"},
		{"the most GPUs per replica", func(p *Params) { p.GPUsPerReplica = 1024 }, ""},
		{"a fraction of a GPU per replica", func(p *Params) { p.GPUsPerReplica = 0.5 }, ""},
		{"GPUs per replica over the limit", func(p *Params) { p.GPUsPerReplica = 1024.5 }, "gpusPerReplica: must be in (0, 1024], got 1024.5"},
		{"1e308 GPUs per replica", func(p *Params) { p.GPUsPerReplica = 1e308 }, "gpusPerReplica: must be in (0, 1024], got 1e+308"},
		{"infinite GPUs per replica", func(p *Params) { p.GPUsPerReplica = math.Inf(1) }, "gpusPerReplica: must be in (0, 1024], got +Inf"},
		{"NaN GPUs per replica", func(p *Params) { p.GPUsPerReplica = math.NaN() }, "gpusPerReplica: must be in (0, 1024], got NaN"},
		{"no GPU per replica", func(p *Params) { p.GPUsPerReplica = 0 }, "gpusPerReplica: must be in (0, 1024], got 0"},
		{"target utilization 1", func(p *Params) { p.TargetUtilization = 1 }, ""},
		{"target utilization over 1", func(p *Params) { p.TargetUtilization = 1.01 }, "targetUtilization: must be in (0, 1], got 1.01"},
		{"an infinite queue target", func(p *Params) { p.QueueTarget = math.Inf(1) }, "queueTarget: must be a finite number > 0, got +Inf"},
		{"no slo", func(p *Params) { p.SLO = 0 }, "slo: must be > 0, got 0s"},
		{"every problem at once", func(p *Params) { p.Tick, p.GPUsPerReplica = time.Nanosecond, 1e308 },
			"tick: must be 1s..1m0s and divide a minute, got 1ns\ngpusPerReplica: must be in (0, 1024], got 1e+308"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultParams()
			tc.set(&p)
			err := p.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("error = %v, want none", err)
			case tc.want != "" && (err == nil || err.Error() != tc.want):
				t.Errorf("error = %v, want %s", err, tc.want)
			}
		})
	}
}

// TestParamsValidateNamesField: each problem is a *ParamError naming its field, so that the
// command can name its flag.
func TestParamsValidateNamesField(t *testing.T) {
	p := DefaultParams()
	p.PeakReplicas = 0
	var pe *ParamError
	if err := p.Validate(); !errors.As(err, &pe) || pe.Field != "peakReplicas" {
		t.Errorf("error %v: want a *ParamError of field peakReplicas, got %+v", err, pe)
	}
}

// TestRunAllocatesPerReplicaUsed: a policy's maxReplicas is a bound, not a size: the
// simulation holds as many pods as the policy has, not as it may have. The short trace needs
// at most 8 replicas (smallParams), so a run costs well under a megabyte whatever the bound;
// 16 MB leaves room and fails when the bound is allocated (a million pods, their names and
// per-pod maps: some 150 MB).
func TestRunAllocatesPerReplicaUsed(t *testing.T) {
	for _, maxReplicas := range []int32{1_000_000, math.MaxInt32} {
		t.Run(fmt.Sprint("maxReplicas=", maxReplicas), func(t *testing.T) {
			p := examplePolicy(t)
			p.MaxReplicas = maxReplicas
			const limit = 16 << 20
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, err := Run(Trace{60, 60, 240}, []Contender{{Name: p.Name, Policy: p}}, Options{Params: smallParams()})
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > limit {
				t.Errorf("run with maxReplicas %d allocated %d bytes, want at most %d", maxReplicas, n, limit)
			}
			if res.Policies[0].ScaleEvents == 0 {
				t.Errorf("the policy never scaled: %+v", res.Policies[0])
			}
		})
	}
}

// TestRunStopsPastReplicasLimit: a policy that asks for more than ReplicasLimit replicas
// stops the run with an error instead of allocating them. Its GPU target is 0.001 %, its
// scale-up limit 10^9 pods per 15 s, and pods are Ready a tick after creation (startup 0).
// Tick 0: 1 Ready pod at 50 % (the target load): 50/0.001 = 50,000 pods. Tick 1: each serves
// 15/(50,000 x 30) = 0.001 %, a window mean of (50 + 0.001)/2 = 25: 50,000 x 25,000 = 1.25 x
// 10^9, limited to 50,000 + 10^9 = 1,000,050,000, in minute 0.
func TestRunStopsPastReplicasLimit(t *testing.T) {
	p, err := Baseline(smallParams()) // the reference: v1's GPU utilization, load over capacity
	if err != nil {
		t.Fatal(err)
	}
	p.Name, p.MaxReplicas = "prescale", math.MaxInt32
	p.Metrics = p.Metrics[:1]
	gpu := policy.MustQuantity("0.001")
	p.Metrics[0].Target.AverageValue = &gpu
	p.Behavior.ScaleUp.Policies = []policy.RatePolicy{{Type: policy.PodsPolicy, Value: 1_000_000_000, PeriodSeconds: 15}}
	par := smallParams()
	par.Startup = 0
	_, err = Run(Trace{60, 60, 240}, []Contender{{Name: p.Name, Policy: p, Reference: true}}, Options{Params: par})
	if want := "policy prescale wants 1000050000 replicas at minute 0: the model simulates at most 1000000"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}
