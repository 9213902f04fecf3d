package scaler

import (
	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	schedulinghelper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"
)

// Fit is how many more pods like a template the cluster's nodes can take.
type Fit struct {
	// PerPod is what one pod requests of the resource.
	PerPod int64
	// Pods is the sum over eligible nodes of floor(free / PerPod).
	Pods int32
	// Nodes is the number of eligible nodes.
	Nodes int
}

// fitPods computes how many more pods like template fit: over Ready, schedulable nodes that
// match its nodeSelector and required node affinity and whose NoSchedule/NoExecute taints it
// tolerates, the sum of floor((allocatable - requested by non-terminal pods) / per pod). It
// returns false when the template requests none of the resource (no cap applies).
func fitPods(template *corev1.Pod, nodes []*corev1.Node, pods []*corev1.Pod, resource corev1.ResourceName) (Fit, bool) {
	perPod := requestOf(template, resource)
	if perPod <= 0 {
		return Fit{}, false
	}
	used := make(map[string]int64, len(nodes))
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		used[p.Spec.NodeName] += requestOf(p, resource)
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(template)
	fit := Fit{PerPod: perPod}
	for _, n := range nodes {
		if !eligible(template, affinity, n) {
			continue
		}
		q, ok := n.Status.Allocatable[resource]
		if !ok {
			continue
		}
		fit.Nodes++
		if free := q.Value() - used[n.Name]; free >= perPod {
			fit.Pods += int32(free / perPod)
		}
	}
	return fit, true
}

// eligible reports whether the scheduler could place template on n at all.
func eligible(template *corev1.Pod, affinity nodeaffinity.RequiredNodeAffinity, n *corev1.Node) bool {
	if n.Spec.Unschedulable || !nodeReady(n) {
		return false
	}
	if ok, err := affinity.Match(n); err != nil || !ok {
		return false
	}
	_, untolerated := schedulinghelper.FindMatchingUntoleratedTaint(klog.Background(), n.Spec.Taints, template.Spec.Tolerations,
		func(t *corev1.Taint) bool {
			return t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute
		}, true)
	return !untolerated
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// requestOf returns a pod's effective request of resource (containers, init containers and
// overhead, as the scheduler counts them).
func requestOf(p *corev1.Pod, resource corev1.ResourceName) int64 {
	reqs := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	q, ok := reqs[resource]
	if !ok {
		return 0
	}
	return q.Value()
}
