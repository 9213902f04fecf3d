package backtest

import (
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/policy"
)

// zeroParams: peak 60 req/min on 1 replica at 100%: mu = 1 req/s, 15 requests a tick;
// pods Ready one tick after creation; minReplicas 0.
func zeroParams() Params {
	return Params{Tick: 15 * time.Second, Startup: 15 * time.Second, PeakReplicas: 1, TargetUtilization: 1,
		QueueTarget: 5, MinReplicas: 0, SLO: 2 * time.Second, GPUsPerReplica: 1}
}

// TestZeroScores: a busy minute, two idle minutes, a busy minute (one return, minute 3).
func TestZeroScores(t *testing.T) {
	par := zeroParams()
	q := policy.MustQuantity("1")
	zero := &policy.Policy{Name: "zero", MinReplicas: new(int32), MaxReplicas: 2,
		Target:  policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "b", Name: "m"},
		Metrics: []policy.Metric{{Name: "running", Query: "sum by (pod) (vllm:num_requests_running)", Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &q}}},
		ScaleToZero: &policy.ScaleToZero{Activation: policy.Activation{Query: gatewayArrivals, PerReplica: &q},
			IdleDelay: &policy.Duration{}},
	}
	res, err := Run(Trace{60, 0, 0, 60}, []Contender{{Name: OracleName}, {Name: "zero", Policy: zero}}, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	if res.Returns != 1 {
		t.Errorf("returns = %d, want 1", res.Returns)
	}
	o, _ := res.Policy(OracleName)
	// The oracle needs the largest load of ticks t..t+1: 1 replica at ticks 0-3 (tick 3
	// sees minute 1's 0 and minute 0's 60), 0 at ticks 4-10, 1 from tick 11 (it sees minute
	// 3). It holds 1 pod at ticks 0-4 (tick 4's pod is removed at its decision) and 12-15:
	// 9 pod-ticks = 9 x 15 s = 0.0375 h; of them tick 4, in idle minute 1: 15 s. Zero pods
	// at ticks 5-11: 7 ticks = 105 s. Its pod is Ready at tick 12, when the load returns:
	// no violation.
	if !testutil.Near(o.GPUHours, 0.0375, 1e-9) || !testutil.Near(o.IdleGPUHours, 15.0/3600, 1e-9) || !testutil.Near(o.ZeroHours, 105.0/3600, 1e-9) || o.ReturnViolationMinutes != 0 {
		t.Errorf("oracle: GPU-hours %v, idle %v, at zero %v h, return violations %d; want 0.0375, %v, %v, 0",
			o.GPUHours, o.IdleGPUHours, o.ZeroHours, o.ReturnViolationMinutes, 15.0/3600, 105.0/3600)
	}
	z, _ := res.Policy("zero")
	// The reactive policy wakes on the return's first tick (12): its queue of 15 waits for
	// no Ready pod: delay +Inf, minute 3 violated, and it is a return's minute.
	if z.ZeroHours <= 0 || z.ReturnViolationMinutes != 1 || z.SLOViolationMinutes != 1 {
		t.Errorf("zero: at zero %v h, violations %d at returns of %d; want > 0, 1 of 1", z.ZeroHours, z.ReturnViolationMinutes, z.SLOViolationMinutes)
	}
}

func TestBaselineFromZero(t *testing.T) {
	par := zeroParams()
	if _, err := Baseline(par); err == nil || !strings.Contains(err.Error(), "BaselineFromZero") {
		t.Errorf("Baseline at minReplicas 0: err = %v, want one naming BaselineFromZero", err)
	}
	p, err := BaselineFromZero(par, Trace{60, 0, 0, 60})
	if err != nil {
		t.Fatal(err)
	}
	// mu 1 req/s at target utilization 1: the arrival metric's AverageValue is 1.
	last := p.Metrics[len(p.Metrics)-1]
	if *p.MinReplicas != 0 || last.Target.AverageValue.Float64() != 1 {
		t.Errorf("min %d, arrival target %v; want 0, 1", *p.MinReplicas, last.Target.AverageValue)
	}
	if _, err := BaselineFromZero(par, Trace{0, 0}); err == nil {
		t.Error("a trace without requests: no error")
	}
}

func TestActivationBinding(t *testing.T) {
	q := policy.MustQuantity("1")
	p := &policy.Policy{Name: "zero", MinReplicas: new(int32), MaxReplicas: 2,
		Metrics:     []policy.Metric{{Name: "gpu", Query: "DCGM_FI_DEV_GPU_UTIL", Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &q}}},
		ScaleToZero: &policy.ScaleToZero{Activation: policy.Activation{Query: "vllm:num_requests_waiting", PerReplica: &q}},
	}
	if _, err := newDecider(p, zeroParams(), 1, true); err == nil || !strings.Contains(err.Error(), "scaleToZero.activation") {
		t.Errorf("a per-pod activation series: err = %v, want one naming scaleToZero.activation", err)
	}
}

func TestPoliciesStartWithAReplica(t *testing.T) {
	// A trace whose first minute is idle, at --min-replicas 0: the load needs no replica at
	// the start. A policy still starts with one, else its fresh engine reads the zero as
	// turned off (ScalingDisabled) and never scales: "one" (minReplicas 1, as the HPA grid),
	// the HPA's scale-from-zero baseline and a scaleToZero policy served none of minutes 1-3
	// (3 violation minutes each, 0 GPU-hours). The oracle starts at zero.
	par := zeroParams()
	tr := Trace{0, 60, 60, 60}
	hpa, err := BaselineFromZero(par, tr)
	if err != nil {
		t.Fatal(err)
	}
	one := clonePolicy(hpa)
	one.Name, one.MinReplicas = "one", ptr[int32](1)
	q := policy.MustQuantity("1")
	zero := &policy.Policy{Name: "zero", MinReplicas: new(int32), MaxReplicas: 2,
		Target:  policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "b", Name: "m"},
		Metrics: []policy.Metric{{Name: "running", Query: "sum by (pod) (vllm:num_requests_running)", Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &q}}},
		ScaleToZero: &policy.ScaleToZero{Activation: policy.Activation{Query: gatewayArrivals, PerReplica: &q},
			IdleDelay: &policy.Duration{}},
	}
	res, err := Run(tr, []Contender{{Name: HPAName, Policy: hpa, Reference: true}, {Name: "one", Policy: one, Reference: true}, {Name: "zero", Policy: zero}, {Name: OracleName}},
		Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	// 60 requests a minute is 1 req/s, one replica's mu at utilization 1: the replica held
	// from tick 0 serves minutes 1-3 as they come. "one" and the baseline keep it (the
	// baseline's 300 s scale-down window outlasts the idle minute): 16 ticks x 15 s = 1/15 h.
	for _, name := range []string{HPAName, "one"} {
		p, _ := res.Policy(name)
		if p.SLOViolationMinutes != 0 || !testutil.Near(p.GPUHours, 1.0/15, 1e-9) {
			t.Errorf("%s: %d violation minutes, %v GPU-hours; want 0, 1/15", name, p.SLOViolationMinutes, p.GPUHours)
		}
	}
	// The scaleToZero policy may idle to zero in minute 0; the load then wakes it.
	if z, _ := res.Policy("zero"); z.ScaleEvents == 0 || z.SLOViolationMinutes >= 3 {
		t.Errorf("zero: %d scale events, %d violation minutes; want it woken by the load", z.ScaleEvents, z.SLOViolationMinutes)
	}
	if o, _ := res.Policy(OracleName); o.ZeroHours <= 0 {
		t.Errorf("oracle: %v hours at zero, want it to start there", o.ZeroHours)
	}
}

// gatewayArrivals is the arrival rate as the model's gateway counts it: requests dispatched
// to a Ready pod, and those refused while there is none.
const gatewayArrivals = `sum(rate({__name__=~"inference_objective_request_total|inference_objective_request_error_total"}[1m]))`
