package scaler

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/alloc"
)

// allocate grants the GPUs across the tick's decisions (capacity.mode: cap): one
// allocation over every policy, out of the nodes' free GPUs and each pool's Pending
// allowance (docs/capacity.md). The policies that write this tick are allocated first;
// those that do not (dry-run, beside another autoscaler, a hot standby's) then share what
// is left, so that what they would get takes nothing from the policies that write. Each
// decision above its grant is lowered to it (CapacityLimited). runs holds nil for the
// policies whose sync failed: their pods still hold their GPUs, nothing more is asked for
// them. nodes is the tick's snapshot of the nodes (err: its listing failed).
func (c *Controller) allocate(ctx context.Context, runs []*pass, nodes []*corev1.Node, err error) {
	if c.opts.Capacity.Mode != CapacityCap {
		return
	}
	if err == nil {
		pods, perr := c.pods.List(labelsEverything)
		if perr == nil {
			c.allocateOn(runs, nodesFree(nodes, pods, c.opts.Capacity.IsGPU), func(r *pass) (map[string]int64, []string) {
				return claimOf(r.obs.template, nodes, c.opts.Capacity.IsGPU)
			})
			return
		}
		err = perr
	}
	// Not reached with informers' listers, which do not fail. Without the GPUs, no scale-up
	// is granted; the decisions that hold or scale down stand.
	klog.FromContext(ctx).Error(fmt.Errorf("list nodes and pods for the GPU allocation: %w", err), "Holding every scale-up this tick")
	for _, r := range runs {
		if r != nil && r.obs.template != nil {
			r.holdScaleUp("the nodes and pods could not be listed")
		}
	}
}

// holdScaleUp grants the run no scale-up (a hold or a scale-down stands), for the reason why.
func (r *pass) holdScaleUp(why string) {
	dec := r.res.Decision
	granted := min(dec.DesiredReplicas, dec.CurrentReplicas)
	r.grantCapacity(alloc.Grant{Policy: r.p.Name, Wanted: dec.DesiredReplicas, Granted: granted,
		Message: fmt.Sprintf("wanted %d, granted %d: %s", dec.DesiredReplicas, granted, why)})
}

// allocateOn builds the allocation's input from runs (claim returns what a run's pods
// request of each GPU kind and where they may go), allocates free with
// alloc.Step, the writers as its first tier, and applies the grants.
func (c *Controller) allocateOn(runs []*pass, free []alloc.Node, claim func(*pass) (map[string]int64, []string)) {
	allowance := map[string]int32{}
	for _, n := range free {
		for kind := range n.Free {
			allowance[kind] = c.opts.Capacity.Allowance(kind)
		}
	}
	// The writers first; the others out of what they leave.
	var writers, others []alloc.Policy
	var writerPasses, otherPasses []*pass
	for _, r := range runs {
		if r != nil && r.obs.templateErr != nil {
			// What its pods request is unknown.
			r.holdScaleUp(r.obs.templateErr.Error())
			continue
		}
		if r == nil || r.obs.template == nil {
			continue
		}
		kinds, nodes := claim(r)
		if len(kinds) == 0 {
			continue
		}
		for kind := range kinds {
			if _, ok := allowance[kind]; !ok {
				allowance[kind] = c.opts.Capacity.Allowance(kind)
			}
		}
		dec := r.res.Decision
		ap := alloc.Policy{Name: r.p.Name, Priority: r.p.CapacityPriority(), Guaranteed: r.p.CapacityGuaranteed(),
			PerPod: kinds, Nodes: nodes, Current: dec.CurrentReplicas, Placed: r.obs.placed, PlacedOn: r.obs.placedOn,
			Wanted: dec.DesiredReplicas}
		if r.writes {
			writers, writerPasses = append(writers, ap), append(writerPasses, r)
		} else {
			others, otherPasses = append(others, ap), append(otherPasses, r)
		}
	}
	tiers := [][]*pass{writerPasses, otherPasses}
	results, _ := alloc.Step(free, allowance, c.growth, func(tier, i int, g alloc.Grant) error {
		tiers[tier][i].grantCapacity(g)
		return nil
	}, writers, others)
	c.reportPools(results...)
}
