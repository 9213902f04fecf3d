package backtest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/policy"
)

// PoolMember is one policy of a pool backtest, with the trace of its load.
type PoolMember struct {
	Policy *policy.Policy
	Trace  Trace
	// SLO is the allowed queueing delay of the policy's model (its objective's slo, as in a
	// single backtest); 0 means Params.SLO.
	SLO time.Duration
}

// PoolPolicyResult is one member's outcome in a pool backtest.
type PoolPolicyResult struct {
	PolicyResult
	Priority   int32 `json:"priority"`
	Guaranteed int32 `json:"guaranteed"`
	// SLOSeconds is the queueing delay its SLO-violation minutes are counted over.
	SLOSeconds float64 `json:"sloSeconds"`
	// UnservedGPUHours is the demand of the trace that the pool left unserved: it sums, over
	// the ticks at which the pool granted the policy fewer replicas than it wanted, the
	// replicas the tick's load needs at the target utilization (as the oracle sizes them,
	// without its look-ahead) beyond those granted, times the GPUs a pod holds and the tick.
	// What the policy wanted beyond the load's need (a scale-up overshooting it), or a step
	// its rate rules allowed short of it, does not change it.
	UnservedGPUHours float64 `json:"unservedGPUHours"`
	// LimitedMinutes counts the minutes in which, at some tick, the pool granted the policy
	// fewer replicas than it wanted.
	LimitedMinutes int `json:"limitedMinutes"`
}

// PoolResult is a backtest of several policies sharing one GPU pool.
type PoolResult struct {
	// GPUs is the pool's size; PeakGPUs the most that the members held at once.
	GPUs     int64              `json:"gpus"`
	PeakGPUs int64              `json:"peakGPUs"`
	Minutes  int                `json:"minutes"`
	Ticks    int                `json:"ticks"`
	Policies []PoolPolicyResult `json:"policies"`
	// Warnings are as in Result.
	Warnings []string `json:"warnings,omitempty"`
}

// poolName is the one node of a pool backtest: the pool is one account of GPUs.
const poolName = "pool"

// poolResource is the GPU kind of a pool backtest.
const poolResource = "gpu"

// RunPool replays every member's trace through the model at once, each policy deciding as
// in Run, and grants their replicas out of one pool of gpus GPUs at each tick with
// alloc.Step, as prescale run does with capacity.mode: cap: by each policy's
// capacity.priority and capacity.guaranteed, then by how far it is below its need. A pod
// holds Params.GPUsPerReplica GPUs (an integer here) from its creation, starting or Ready;
// a removed pod frees them at the next tick. The traces are cut to the shortest. Guarantees
// that sum to more than the pool are run, with a warning. It returns
// an error for invalid parameters, a member's trace that CheckTrace refuses, a duplicate policy
// name, a guarantee over ReplicasLimit, a policy that asks for more than ReplicasLimit
// replicas, or a pool too small for the members' first replicas.
func RunPool(members []PoolMember, gpus int64, opt Options) (PoolResult, error) {
	par := opt.Params
	if err := par.Validate(); err != nil {
		return PoolResult{}, fmt.Errorf("model parameters: %w", err)
	}
	perPod := int64(par.GPUsPerReplica)
	if float64(perPod) != par.GPUsPerReplica {
		return PoolResult{}, fmt.Errorf("gpusPerReplica: must be a whole number of GPUs in a pool backtest, got %v", par.GPUsPerReplica)
	}
	if len(members) == 0 {
		return PoolResult{}, errors.New("a pool backtest needs at least one policy")
	}
	if par.Nodes != nil {
		return PoolResult{}, errors.New("nodes: a pool backtest has no node model (its pool is the GPUs it is given)")
	}
	minutes := math.MaxInt
	for _, m := range members {
		minutes = min(minutes, len(m.Trace))
	}
	res := PoolResult{GPUs: gpus, Minutes: minutes, Policies: make([]PoolPolicyResult, len(members))}
	sims := make([]*sim, len(members))
	var guaranteed []string
	var guaranteedGPUs int64
	for i, m := range members {
		p := m.Policy
		if slices.ContainsFunc(members[:i], func(o PoolMember) bool { return o.Policy.Name == p.Name }) {
			return PoolResult{}, fmt.Errorf("policy %q given twice", p.Name)
		}
		if g := p.CapacityGuaranteed(); g > ReplicasLimit {
			return PoolResult{}, fmt.Errorf("policy %s: capacity.guaranteed %d: a pool backtest holds at most %d replicas a policy", p.Name, g, ReplicasLimit)
		}
		tr := m.Trace[:minutes]
		if err := par.CheckTrace(tr); err != nil {
			return PoolResult{}, fmt.Errorf("trace of policy %s: %w", p.Name, err)
		}
		mp := par
		if m.SLO > 0 {
			mp.SLO = m.SLO
		}
		d, err := newDecider(p, mp, mp.Mu(tr), false)
		if err != nil {
			return PoolResult{}, err
		}
		if d.noForecast != nil {
			res.Warnings = append(res.Warnings, d.noForecast.Error())
		}
		sims[i] = newEnv(mp, tr).newSim(p.Name, d, opt)
		r := &res.Policies[i]
		r.Priority, r.Guaranteed, r.SLOSeconds = p.CapacityPriority(), p.CapacityGuaranteed(), mp.SLO.Seconds()
		if r.Guaranteed > 0 {
			guaranteed = append(guaranteed, fmt.Sprintf("%s %d", p.Name, r.Guaranteed))
			guaranteedGPUs += int64(r.Guaranteed) * perPod
		}
	}
	if guaranteedGPUs > gpus {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the guarantees (%s replicas; %d GPUs at %d a replica) exceed the pool's %d GPUs: not all can be held",
			strings.Join(guaranteed, ", "), guaranteedGPUs, perPod, gpus))
	}
	ticks := sims[0].e.ticks
	res.Ticks = ticks
	var held int64
	for _, m := range sims {
		held += int64(m.s.total()) * perPod
	}
	if held > gpus {
		return PoolResult{}, fmt.Errorf("the pool of %d GPUs is smaller than the %d the policies' first replicas hold", gpus, held)
	}
	dt := par.Tick.Seconds()
	in := alloc.Input{Nodes: []alloc.Node{{Name: poolName, Free: map[string]int64{}}}, Policies: make([]alloc.Policy, len(sims))}
	wants := make([]int32, len(sims))
	lastLimited := make([]int, len(sims))
	for i := range lastLimited {
		lastLimited[i] = -1
	}
	for t := range ticks {
		held = 0
		for i, m := range sims {
			m.serve(t)
			total := m.s.total()
			held += int64(total) * perPod
			wants[i], _ = m.decide(t)
			if err := m.bound(t, wants[i]); err != nil {
				return PoolResult{}, err // before the allocator places that many
			}
			in.Policies[i] = alloc.Policy{Name: m.name, Priority: res.Policies[i].Priority, Guaranteed: res.Policies[i].Guaranteed,
				PerPod: map[string]int64{poolResource: perPod}, Nodes: []string{poolName}, Current: total, Placed: total,
				PlacedOn: map[string]int32{poolName: total}, Wanted: wants[i]}
		}
		res.PeakGPUs = max(res.PeakGPUs, held)
		in.Nodes[0].Free[poolResource] = max(0, gpus-held)
		// Every member writes its scale: one tier, as the controller's writers are.
		now := Epoch.Add(time.Duration(t) * par.Tick)
		_, err := alloc.Step(in.Nodes, in.Allowance, nil, func(_, i int, g alloc.Grant) error {
			m := sims[i]
			if g.Granted < wants[i] {
				if short := m.e.need(t) - g.Granted; short > 0 {
					res.Policies[i].UnservedGPUHours += float64(short) * float64(perPod) * dt / 3600
				}
				if minute := t / m.e.tpm; lastLimited[i] != minute {
					lastLimited[i] = minute
					res.Policies[i].LimitedMinutes++
				}
			}
			return m.actuate(t, g.Granted, now)
		}, in.Policies)
		if err != nil {
			return PoolResult{}, err
		}
		if opt.Progress != nil && (t+1)%4096 == 0 {
			opt.Progress(t+1, ticks)
		}
	}
	for i, m := range sims {
		res.Policies[i].PolicyResult = m.finish()
	}
	return res, nil
}
