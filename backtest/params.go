package backtest

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Epoch is the simulated instant of tick 0: Decide sees now = Epoch + tick*Params.Tick.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Params are the model's parameters (backtest-model.md). DefaultParams gives the spec's
// defaults.
type Params struct {
	// Tick is dt, one control-loop interval; it must divide a minute.
	Tick time.Duration
	// Startup is the time from pod creation to Ready.
	Startup time.Duration
	// PeakReplicas scales the trace: the trace's peak minute needs PeakReplicas replicas at
	// TargetUtilization.
	PeakReplicas int32
	// TargetUtilization is the GPU-utilization target (0..1] of the baseline and the oracle.
	TargetUtilization float64
	// QueueTarget is the baseline's per-pod queue-depth target (requests).
	QueueTarget float64
	// MinReplicas bounds the baseline and the oracle and sets the initial replicas' floor.
	MinReplicas int32
	// MaxReplicas bounds the baseline; 0 means 2 x PeakReplicas.
	MaxReplicas int32
	// SLO is the allowed queueing delay.
	SLO time.Duration
	// GPUsPerReplica is the GPUs each pod holds, Ready or starting.
	GPUsPerReplica float64
}

// DefaultParams returns the spec's defaults: 15 s tick, 180 s startup, peak 40 replicas at
// 70% utilization, queue target 5, 1..80 replicas, 2 s SLO, 1 GPU per replica.
func DefaultParams() Params {
	return Params{
		Tick:              15 * time.Second,
		Startup:           180 * time.Second,
		PeakReplicas:      40,
		TargetUtilization: 0.7,
		QueueTarget:       5,
		MinReplicas:       1,
		SLO:               2 * time.Second,
		GPUsPerReplica:    1,
	}
}

// Max returns MaxReplicas, or 2 x PeakReplicas when it is 0.
func (p Params) Max() int32 {
	if p.MaxReplicas == 0 {
		return 2 * p.PeakReplicas
	}
	return p.MaxReplicas
}

// Validate returns every problem with p at once.
func (p Params) Validate() error {
	var errs []error
	if p.Tick <= 0 || time.Minute%p.Tick != 0 {
		errs = append(errs, fmt.Errorf("tick: must divide a minute, got %v", p.Tick))
	}
	if p.Startup < 0 {
		errs = append(errs, fmt.Errorf("startup: must be >= 0, got %v", p.Startup))
	}
	if p.PeakReplicas < 1 {
		errs = append(errs, fmt.Errorf("peak replicas: must be >= 1, got %d", p.PeakReplicas))
	}
	if !(p.TargetUtilization > 0 && p.TargetUtilization <= 1) {
		errs = append(errs, fmt.Errorf("target utilization: must be in (0, 1], got %v", p.TargetUtilization))
	}
	if !(p.QueueTarget > 0) || math.IsInf(p.QueueTarget, 0) {
		errs = append(errs, fmt.Errorf("queue target: must be > 0, got %v", p.QueueTarget))
	}
	if p.MinReplicas < 1 {
		errs = append(errs, fmt.Errorf("min replicas: must be >= 1, got %d", p.MinReplicas))
	}
	if p.MaxReplicas != 0 && p.MaxReplicas < p.MinReplicas {
		errs = append(errs, fmt.Errorf("max replicas: must be >= min replicas (%d), got %d", p.MinReplicas, p.MaxReplicas))
	}
	if p.SLO <= 0 {
		errs = append(errs, fmt.Errorf("slo: must be > 0, got %v", p.SLO))
	}
	if !(p.GPUsPerReplica > 0) || math.IsInf(p.GPUsPerReplica, 0) {
		errs = append(errs, fmt.Errorf("gpus per replica: must be > 0, got %v", p.GPUsPerReplica))
	}
	return errors.Join(errs...)
}

// Mu returns the per-replica capacity in requests/s at 100% busy that makes the trace's peak
// minute need PeakReplicas replicas at TargetUtilization.
func (p Params) Mu(tr Trace) float64 {
	return tr.Peak() / 60 / (float64(p.PeakReplicas) * p.TargetUtilization)
}

// ticksPerMinute returns how many ticks make a minute; Validate ensures it is whole.
func (p Params) ticksPerMinute() int { return int(time.Minute / p.Tick) }

// startupTicks returns the ticks from creation to Ready, rounded up to whole ticks.
func (p Params) startupTicks() int { return int((p.Startup + p.Tick - 1) / p.Tick) }
