package backtest

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prescale/prescale/engine"
)

// Epoch is the simulated instant of tick 0: Decide sees now = Epoch + tick*Params.Tick.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Params are the model's parameters (backtest-model.md). DefaultParams gives the spec's
// defaults.
type Params struct {
	// Tick is dt, one control-loop interval, MinTick..MaxTick; it must divide a minute.
	Tick time.Duration
	// Startup is the time from pod creation to Ready, at most MaxStartup.
	Startup time.Duration
	// PeakReplicas scales the trace: the trace's peak minute needs PeakReplicas replicas at
	// TargetUtilization; 1..PeakReplicasLimit.
	PeakReplicas int32
	// TargetUtilization is the GPU-utilization target (0..1] of the baseline and the oracle.
	TargetUtilization float64
	// QueueTarget is the baseline's per-pod queue-depth target (requests).
	QueueTarget float64
	// MinReplicas bounds the baseline and the oracle and sets the initial replicas' floor;
	// 0..PeakReplicasLimit. At 0 the oracle idles at zero, and a request that arrives with
	// no Ready pod waits in the queue for one to start (BaselineFromZero is the HPA's
	// reactive scale-from-zero).
	MinReplicas int32
	// MaxReplicas bounds the baseline; 0 means 2 x PeakReplicas, else
	// MinReplicas..ReplicasLimit.
	MaxReplicas int32
	// SLO is the allowed queueing delay.
	SLO time.Duration
	// GPUsPerReplica is the GPUs each pod holds, Ready or starting: (0, MaxGPUsPerReplica].
	GPUsPerReplica float64
	// Pacing is not the model's: it replaces the objective's pacing constants (zero: the
	// defaults prescale run uses), for choosing them on traces leave-one-out (hack/objloo).
	Pacing engine.Pacing
	// Nodes, when set, models the nodes the pods run on and a reactive node autoscaler
	// (NodeModel); nil: a pod starts as soon as it is asked for.
	Nodes *NodeModel
}

// NodeModel is the nodes of the backtest's service and the node autoscaler that grows them
// (docs/backtest.md, "Nodes"). A pod asked for waits, Pending, for a Ready node with a free
// slot (GPUsPerNode / GPUsPerReplica pods a node), and starts there. At each tick, after
// the decision, the node autoscaler launches nodes for the pods and buffered replicas that
// the Ready and booting nodes cannot hold, in whole nodes, Ready Lead later; it removes
// Ready nodes that none of them needs once they have been surplus for ConsolidateAfter (a
// bin-packing consolidation: the pods are assumed packed onto the fewest nodes).
type NodeModel struct {
	// GPUsPerNode is a node's GPUs, the autoscaler's granularity: 1..MaxGPUsPerReplica,
	// at least GPUsPerReplica.
	GPUsPerNode int `json:"gpusPerNode"`
	// Lead is a node's time from launch to Ready, 0..MaxStartup.
	Lead time.Duration `json:"-"`
	// ConsolidateAfter is how long a node is surplus before it is removed, 0..MaxStartup.
	ConsolidateAfter time.Duration `json:"-"`
	// Buffers has the configured policy and the oracle of Contenders size a CapacityBuffer
	// (Contender.Buffer), as prescale run does where the CapacityBuffer API is served.
	Buffers bool `json:"buffers"`
}

// slots is the pods a node holds.
func (n NodeModel) slots(gpusPerReplica float64) int32 {
	return max(1, int32(math.Floor(float64(n.GPUsPerNode)/gpusPerReplica+1e-9)))
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

// The model's bounds. They keep a run's memory and time proportional to the trace: every
// per-tick and per-replica structure is sized by them.
const (
	// MinTick and MaxTick bound Params.Tick, which must also divide a minute (the trace's
	// resolution): 1 s makes 60 ticks a minute, 86,400 a day.
	MinTick, MaxTick = time.Second, time.Minute
	// MaxStartup bounds Params.Startup: a day.
	MaxStartup = 24 * time.Hour
	// PeakReplicasLimit bounds Params.PeakReplicas and Params.MinReplicas.
	PeakReplicasLimit = 100_000
	// ReplicasLimit bounds Params.MaxReplicas and the total any policy may set during a run:
	// 2 x 100,000 with room. A policy's own maxReplicas may be larger; the run stops with
	// an error when it actually asks for more.
	ReplicasLimit = 1_000_000
	// MaxGPUsPerReplica bounds Params.GPUsPerReplica.
	MaxGPUsPerReplica = 1024
)

// Max returns MaxReplicas, or 2 x PeakReplicas when it is 0.
func (p Params) Max() int32 {
	if p.MaxReplicas == 0 {
		return 2 * p.PeakReplicas
	}
	return p.MaxReplicas
}

// ParamError is one invalid parameter: Field names it as its JSON and sweep key
// (peakReplicas, gpusPerReplica), so that a caller can name its flag.
type ParamError struct {
	Field string
	Err   error
}

func (e *ParamError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *ParamError) Unwrap() error { return e.Err }

// Validate returns every problem with p at once, each a *ParamError. The bounds (MinTick,
// MaxStartup, PeakReplicasLimit, ReplicasLimit, MaxGPUsPerReplica, ...) keep every number of
// the run finite and its memory proportional to the trace.
func (p Params) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ParamError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if p.Tick < MinTick || p.Tick > MaxTick || time.Minute%p.Tick != 0 {
		bad("tick", "must be %v..%v and divide a minute, got %v", MinTick, MaxTick, p.Tick)
	}
	if p.Startup < 0 || p.Startup > MaxStartup {
		bad("startup", "must be 0s..%v, got %v", MaxStartup, p.Startup)
	}
	peakOK := p.PeakReplicas >= 1 && p.PeakReplicas <= PeakReplicasLimit
	if !peakOK {
		bad("peakReplicas", "must be 1..%d, got %d", PeakReplicasLimit, p.PeakReplicas)
	}
	if !(p.TargetUtilization > 0 && p.TargetUtilization <= 1) {
		bad("targetUtilization", "must be in (0, 1], got %v", p.TargetUtilization)
	}
	if !(p.QueueTarget > 0) || math.IsInf(p.QueueTarget, 0) {
		bad("queueTarget", "must be a finite number > 0, got %v", p.QueueTarget)
	}
	switch {
	case p.MinReplicas < 0 || p.MinReplicas > PeakReplicasLimit:
		bad("minReplicas", "must be 0..%d, got %d", PeakReplicasLimit, p.MinReplicas)
	case p.MaxReplicas == 0 && peakOK && p.MinReplicas > 2*p.PeakReplicas:
		bad("minReplicas", "must be at most maxReplicas (default 2 x peakReplicas = %d), got %d", 2*p.PeakReplicas, p.MinReplicas)
	}
	if p.MaxReplicas != 0 && (p.MaxReplicas < p.MinReplicas || p.MaxReplicas > ReplicasLimit) {
		bad("maxReplicas", "must be 0 (2 x peakReplicas) or minReplicas (%d)..%d, got %d", p.MinReplicas, ReplicasLimit, p.MaxReplicas)
	}
	if p.SLO <= 0 {
		bad("slo", "must be > 0, got %v", p.SLO)
	}
	if !(p.GPUsPerReplica > 0 && p.GPUsPerReplica <= MaxGPUsPerReplica) {
		bad("gpusPerReplica", "must be in (0, %d], got %v", MaxGPUsPerReplica, p.GPUsPerReplica)
	}
	if n := p.Nodes; n != nil {
		if n.GPUsPerNode < 1 || n.GPUsPerNode > MaxGPUsPerReplica || float64(n.GPUsPerNode) < p.GPUsPerReplica {
			bad("gpusPerNode", "must be 1..%d and at least gpusPerReplica (%v), got %d", MaxGPUsPerReplica, p.GPUsPerReplica, n.GPUsPerNode)
		}
		if n.Lead < 0 || n.Lead > MaxStartup {
			bad("nodeLead", "must be 0s..%v, got %v", MaxStartup, n.Lead)
		}
		if n.ConsolidateAfter < 0 || n.ConsolidateAfter > MaxStartup {
			bad("consolidateAfter", "must be 0s..%v, got %v", MaxStartup, n.ConsolidateAfter)
		}
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
