package scaler

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

func TestFitPods(t *testing.T) {
	template := gpuPod("tpl", "", 2)
	tests := []struct {
		name     string
		template *corev1.Pod
		nodes    []*corev1.Node
		pods     []*corev1.Pod
		want     Fit
		wantOK   bool
	}{
		{
			// 8 free on each of two nodes: floor(8/2) * 2 = 8
			name:     "free GPUs over the per-pod request",
			template: template,
			nodes:    []*corev1.Node{gpuNode("a", 8), gpuNode("b", 8)},
			want:     Fit{PerPod: 2, Pods: 8, Nodes: 2},
			wantOK:   true,
		},
		{
			// a: 8 - 2 - 3 = 3 free -> 1; b: 8 - 8 = 0 -> 0. Pending (unbound) and finished
			// pods hold nothing.
			name:     "running pods hold their GPUs, finished and unbound ones do not",
			template: template,
			nodes:    []*corev1.Node{gpuNode("a", 8), gpuNode("b", 8)},
			pods: []*corev1.Pod{gpuPod("x", "a", 2), gpuPod("y", "a", 3), gpuPod("z", "b", 8),
				gpuPod("done", "a", 2, func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
				gpuPod("failed", "b", 8, func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }),
				gpuPod("pending", "", 8, func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending })},
			want:   Fit{PerPod: 2, Pods: 1, Nodes: 2},
			wantOK: true,
		},
		{
			name:     "cordoned and not-ready nodes do not count",
			template: template,
			nodes: []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) { n.Spec.Unschedulable = true }),
				gpuNode("b", 8, func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }),
				gpuNode("c", 4)},
			want:   Fit{PerPod: 2, Pods: 2, Nodes: 1},
			wantOK: true,
		},
		{
			name:     "a node selector the node does not match excludes it",
			template: gpuPod("tpl", "", 2, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{"nvidia.com/gpu.product": "A100"} }),
			nodes:    []*corev1.Node{gpuNode("a", 8), gpuNode("b", 8, func(n *corev1.Node) { n.Labels["nvidia.com/gpu.product"] = "A100" })},
			want:     Fit{PerPod: 2, Pods: 4, Nodes: 1},
			wantOK:   true,
		},
		{
			name: "required node affinity is honoured",
			template: gpuPod("tpl", "", 2, func(p *corev1.Pod) {
				p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
						{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"z1"}}}}}}}}
			}),
			nodes:  []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) { n.Labels["zone"] = "z1" }), gpuNode("b", 8)},
			want:   Fit{PerPod: 2, Pods: 4, Nodes: 1},
			wantOK: true,
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
			want:   Fit{PerPod: 2, Pods: 8, Nodes: 2},
			wantOK: true,
		},
		{
			name:     "a node without the resource does not count",
			template: template,
			nodes:    []*corev1.Node{gpuNode("a", 8, func(n *corev1.Node) { n.Status.Allocatable = corev1.ResourceList{} })},
			want:     Fit{PerPod: 2},
			wantOK:   true,
		},
		{
			name:     "a template without GPUs is not capped",
			template: &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}}},
			nodes:    []*corev1.Node{gpuNode("a", 8)},
			wantOK:   false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := fitPods(tc.template, tc.nodes, tc.pods, gpu)
			if ok != tc.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tc.wantOK)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("fit (-want +got):\n%s", diff)
			}
		})
	}
}
