package scaler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prescale/prescale/alloc"
)

const gpu = corev1.ResourceName("nvidia.com/gpu")

func gpuNode(name string, gpus int64, mutate ...func(*corev1.Node)) *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"nvidia.com/gpu.product": "H100"}},
		Status: corev1.NodeStatus{
			Allocatable: corev1.ResourceList{gpu: *resource.NewQuantity(gpus, resource.DecimalSI)},
			Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
	for _, m := range mutate {
		m(n)
	}
	return n
}

func gpuPod(name, node string, gpus int64, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "inference"},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "server",
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{gpu: *resource.NewQuantity(gpus, resource.DecimalSI)},
				Limits:   corev1.ResourceList{gpu: *resource.NewQuantity(gpus, resource.DecimalSI)},
			}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, m := range mutate {
		m(p)
	}
	return p
}

// fits is how many more pods like template fit, by what the controller hands the
// allocator: the nodes' free GPUs and the template's claim, one policy wanting far more.
func fits(template *corev1.Pod, nodes []*corev1.Node, pods []*corev1.Pod) (int32, int, bool) {
	isGPU := DefaultOptions().Capacity.IsGPU
	perPod, eligible := claimOf(template, nodes, isGPU)
	if perPod == nil {
		return 0, 0, false
	}
	r := alloc.Allocate(alloc.Input{Nodes: nodesFree(nodes, pods, isGPU),
		Policies: []alloc.Policy{{Name: "p", PerPod: perPod, Nodes: eligible, Wanted: 1000}}})
	return r.Grants[0].Granted, len(eligible), true
}

func TestFit(t *testing.T) {
	template := gpuPod("tpl", "", 2)
	tests := []struct {
		name      string
		template  *corev1.Pod
		nodes     []*corev1.Node
		pods      []*corev1.Pod
		wantPods  int32
		wantNodes int
		wantOK    bool
	}{
		{
			// 8 free on each of two nodes: floor(8/2) * 2 = 8
			name:      "free GPUs over the per-pod request",
			template:  template,
			nodes:     []*corev1.Node{gpuNode("a", 8), gpuNode("b", 8)},
			wantPods:  8,
			wantNodes: 2,
			wantOK:    true,
		},
		{
			// a: 8 - 2 - 3 = 3 free -> 1; b: 8 - 8 = 0 -> 0. Pending (unbound) and finished
			// pods hold nothing; a terminating one still holds its GPUs (c: 8 - 8 = 0).
			name:     "running and terminating pods hold their GPUs, finished and unbound ones do not",
			template: template,
			nodes:    []*corev1.Node{gpuNode("a", 8), gpuNode("b", 8), gpuNode("c", 8)},
			pods: []*corev1.Pod{gpuPod("x", "a", 2), gpuPod("y", "a", 3), gpuPod("z", "b", 8),
				gpuPod("done", "a", 2, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
				gpuPod("failed", "b", 8, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
				gpuPod("pending", "", 8, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }),
				gpuPod("terminating", "c", 8, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} })},
			wantPods:  1,
			wantNodes: 3,
			wantOK:    true,
		},
		{
			name:     "cordoned and not-ready nodes do not count",
			template: template,
			nodes: []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
				gpuNode("b", 8, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }),
				gpuNode("c", 4)},
			wantPods:  2,
			wantNodes: 1,
			wantOK:    true,
		},
		{
			name:      "a node selector the node does not match excludes it",
			template:  gpuPod("tpl", "", 2, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"nvidia.com/gpu.product": "A100"} }),
			nodes:     []*corev1.Node{gpuNode("a", 8), gpuNode("b", 8, func(n *corev1.Node) { n.Labels["nvidia.com/gpu.product"] = "A100" })},
			wantPods:  4,
			wantNodes: 1,
			wantOK:    true,
		},
		{
			name: "required node affinity is honoured",
			template: gpuPod("tpl", "", 2, func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}}}}}}}
			}),
			nodes:     []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) { n.Labels["zone"] = "z1" }), gpuNode("b", 8)},
			wantPods:  4,
			wantNodes: 1,
			wantOK:    true,
		},
		{
			name: "an untolerated NoSchedule taint excludes the node; a tolerated one does not",
			template: gpuPod("tpl", "", 2, func(p *corev1.Pod) {
				p.Spec.Tolerations = []corev1.Toleration{{Key: "gpu", Operator: corev1.TolerationOpExists}}
			}),
			nodes: []*corev1.Node{
				gpuNode("a", 8, func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "gpu", Effect: corev1.TaintEffectNoSchedule}}
				}),
				gpuNode("b", 8, func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectNoSchedule}}
				}),
				gpuNode("c", 8, func(n *corev1.Node) {
					n.Spec.Taints = []corev1.Taint{{Key: "other", Effect: corev1.TaintEffectPreferNoSchedule}}
				})},
			wantPods:  8,
			wantNodes: 2,
			wantOK:    true,
		},
		{
			name:     "a node without the resource does not count",
			template: template,
			nodes:    []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) { n.Status.Allocatable = corev1.ResourceList{} })},
			wantOK:   true,
		},
		{
			name:     "a template without GPUs is not arbitrated",
			template: &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}},
			nodes:    []*corev1.Node{gpuNode("a", 8)},
			wantOK:   false,
		},
		{
			// A MIG profile is a GPU kind of its own (nvidia.com/mig-*): a node with 7
			// slices and 8 GPUs takes 7 pods of one slice each.
			name: "a MIG profile is read from the template",
			template: gpuPod("tpl", "", 0, func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests = corev1.ResourceList{"nvidia.com/mig-1g.10gb": resource.MustParse("1")}
			}),
			nodes: []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) {
				n.Status.Allocatable["nvidia.com/mig-1g.10gb"] = resource.MustParse("7")
			})},
			wantPods:  7,
			wantNodes: 1,
			wantOK:    true,
		},
		{
			// 1 GPU and 1 slice a pod: a has 8 GPUs and no slice, b 2 GPUs and 3 slices.
			name: "a pod asking for two kinds fits where both are free",
			template: gpuPod("tpl", "", 1, func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources.Requests["nvidia.com/mig-1g.10gb"] = resource.MustParse("1")
			}),
			nodes: []*corev1.Node{gpuNode("a", 8), gpuNode("b", 2, func(n *corev1.Node) {
				n.Status.Allocatable["nvidia.com/mig-1g.10gb"] = resource.MustParse("3")
			})},
			wantPods:  2,
			wantNodes: 1,
			wantOK:    true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pods, nodes, ok := fits(tc.template, tc.nodes, tc.pods)
			if ok != tc.wantOK {
				t.Fatalf("arbitrated = %v, want %v", ok, tc.wantOK)
			}
			if pods != tc.wantPods || nodes != tc.wantNodes {
				t.Errorf("%d pods fit on %d eligible nodes, want %d on %d", pods, nodes, tc.wantPods, tc.wantNodes)
			}
		})
	}
}

func TestGPUKinds(t *testing.T) {
	o := DefaultOptions().Capacity
	for name, want := range map[string]bool{"nvidia.com/gpu": true, "nvidia.com/mig-3g.40gb": true, "amd.com/gpu": true,
		"nvidia.com/gpu.shared": false, "cpu": false, "nvidia.com/mig": false} {
		if got := o.IsGPU(name); got != want {
			t.Errorf("IsGPU(%q) = %v, want %v", name, got, want)
		}
	}
	o.Resources = []string{"example.com/tpu"}
	if !o.IsGPU("example.com/tpu") || o.IsGPU("nvidia.com/gpu") {
		t.Errorf("a configured list replaces the default kinds: %v", o.Resources)
	}
}
