package scaler

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	schedulinghelper "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/alloc"
)

// nodesFree returns, for each Ready, schedulable node, its free GPUs of each kind (isGPU):
// its allocatable minus the requests of the pods bound to it that are not finished.
// Terminating pods still hold their GPUs: a scale-down frees them once its pods are gone.
func nodesFree(nodes []*corev1.Node, pods []*corev1.Pod, isGPU func(string) bool) []alloc.Node {
	used := make(map[string]map[string]int64, len(nodes))
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		for r, n := range gpuRequests(p, isGPU) {
			if used[p.Spec.NodeName] == nil {
				used[p.Spec.NodeName] = map[string]int64{}
			}
			used[p.Spec.NodeName][r] += n
		}
	}
	out := make([]alloc.Node, 0, len(nodes))
	for _, n := range nodes {
		if n.Spec.Unschedulable || !nodeReady(n) {
			continue
		}
		free := map[string]int64{}
		for r, q := range n.Status.Allocatable {
			if isGPU(string(r)) {
				free[string(r)] = max(0, q.Value()-used[n.Name][string(r)])
			}
		}
		if len(free) > 0 {
			out = append(out, alloc.Node{Name: n.Name, Free: free})
		}
	}
	return out
}

// claimOf returns what one pod like template requests of each GPU kind (nil for none: the
// policy is not arbitrated) and the nodes the scheduler could place it on: Ready,
// schedulable nodes that match its nodeSelector and required node affinity, whose
// NoSchedule/NoExecute taints it tolerates, and that offer every kind it requests.
func claimOf(template *corev1.Pod, nodes []*corev1.Node, isGPU func(string) bool) (map[string]int64, []string) {
	perPod := gpuRequests(template, isGPU)
	if len(perPod) == 0 {
		return nil, nil
	}
	affinity := nodeaffinity.GetRequiredNodeAffinity(template)
	var names []string
	for _, n := range nodes {
		if !eligible(template, affinity, n) {
			continue
		}
		offers := true
		for r := range perPod {
			if _, ok := n.Status.Allocatable[corev1.ResourceName(r)]; !ok {
				offers = false
			}
		}
		if offers {
			names = append(names, n.Name)
		}
	}
	slices.Sort(names)
	return perPod, names
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

// gpuRequests returns a pod's effective request of each GPU kind (containers, init
// containers and overhead, as the scheduler counts them), the kinds it requests none of
// left out.
func gpuRequests(p *corev1.Pod, isGPU func(string) bool) map[string]int64 {
	var out map[string]int64
	for r, q := range resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{}) {
		if v := q.Value(); v > 0 && isGPU(string(r)) {
			if out == nil {
				out = map[string]int64{}
			}
			out[string(r)] = v
		}
	}
	return out
}
