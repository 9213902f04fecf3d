package scaler

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// poolLabels are the node labels that name the pool a node autoscaler grew it in, read in
// this order: Karpenter's NodePool, then the node groups of GKE, EKS and AKS, which their
// cluster-autoscaler scales. A node without any is in no pool: it was not provisioned on
// demand, and its boot says nothing of a pool's lead time.
var poolLabels = []string{
	karpenterPoolLabel,
	"cloud.google.com/gke-nodepool",
	"eks.amazonaws.com/nodegroup",
	"kubernetes.azure.com/agentpool",
}

// nodePool returns the pool of a node ("" for none).
func nodePool(n *corev1.Node) string {
	for _, l := range poolLabels {
		if v := n.Labels[l]; v != "" {
			return v
		}
	}
	return ""
}

// nodeLeadOf returns a node's creation-to-Ready time, as startupOf a pod's: ready is
// whether its Ready condition is True, ok whether the time is a lead time (both timestamps
// set, within 0..maxStartup: a node Ready again after a failure says nothing of its boot).
func nodeLeadOf(n *corev1.Node) (d time.Duration, ready, ok bool) {
	if n.DeletionTimestamp != nil {
		return 0, false, false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return readyLead(n.CreationTimestamp, c.Status, c.LastTransitionTime)
		}
	}
	return 0, false, false
}

// nodeLeads measures each node pool's lead time: how long its nodes take from creation
// (the node autoscaler's launch) to Ready (the VM booted, its driver and kubelet up), each
// node once, when first seen Ready, over the pool's last startupWindow nodes, as the pods'
// start-up is measured (docs/capacity.md). A pool whose nodes are all gone keeps what was
// measured: its next node takes as long.
type nodeLeads map[string]*startups

// observe measures the nodes of every pool.
func (l nodeLeads) observe(nodes []*corev1.Node) {
	byPool := map[string][]leadSample{}
	for _, n := range nodes {
		pool := nodePool(n)
		if pool == "" {
			continue
		}
		d, ready, ok := nodeLeadOf(n)
		byPool[pool] = append(byPool[pool], leadSample{uid: n.UID, d: d, ready: ready, ok: ok})
	}
	for pool, samples := range byPool {
		s := l[pool]
		if s == nil {
			s = &startups{}
			l[pool] = s
		}
		s.observeSamples(samples)
	}
}

// p90 returns the p90 of each pool's measured lead times; pools not yet measured are absent.
func (l nodeLeads) p90() map[string]time.Duration {
	out := make(map[string]time.Duration, len(l))
	for pool, s := range l {
		if d, ok := s.p90(); ok {
			out[pool] = d
		}
	}
	return out
}
