package scaler

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/policy"
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

// rolloutPolicy scales Deployment default/web on load (AverageValue 10: proposal
// ceil(load / 10)), up by as many pods as it wants at once.
const rolloutPolicy = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 10
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleUp:
        stabilizationWindowSeconds: 0
        policies: [{type: Pods, value: 10, periodSeconds: 60}]
`

// TestNewPodsRequestTheCurrentTemplate: in the middle of a rollout from 1 GPU a pod to 2,
// Deployment default/web runs one pod of each ReplicaSet on node gpu-0 (8 GPUs, 8 - 1 - 2
// = 5 free). The old ReplicaSet's pod is the first by name and the older; the new one is
// the newer. A scale-up from 2 to ceil(50 / 10) = 5 replicas asks for 3 new pods, which
// the Deployment controller creates from the current template: 2 GPUs each, so floor(5 /
// 2) = 2 fit and 2 + 2 = 4 replicas are granted (at the old pod's 1 GPU, all 3 would seem
// to fit: 5). For a kind without spec.template the newest pod stands for the template; a
// workload that cannot be read is granted no scale-up (2), and says why.
func TestNewPodsRequestTheCurrentTemplate(t *testing.T) {
	old := gpuPod("web-5d8f9-aaaaa", "gpu-0", 1, func(p *corev1.Pod) {
		p.Namespace, p.Labels = "default", map[string]string{"app": "web"}
		p.CreationTimestamp = metav1.NewTime(epoch.Add(-time.Hour))
	})
	current := gpuPod("web-7c6b4-zzzzz", "gpu-0", 2, func(p *corev1.Pod) {
		p.Namespace, p.Labels = "default", map[string]string{"app": "web"}
		p.CreationTimestamp = metav1.NewTime(epoch.Add(-time.Minute))
	})
	two := int32(2)
	d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1", ResourceVersion: "1"},
		Spec: appsv1.DeploymentSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{Spec: gpuPod("", "", 2, func(p *corev1.Pod) {
				// The informer's cache keeps what the allocation reads, not the image or env.
				p.Spec.Containers[0].Image = "vllm:new"
				p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MODEL", Value: "llama"}}
			}).Spec}},
		Status: appsv1.DeploymentStatus{Replicas: 2}}
	withTemplate, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	noTemplate := &unstructured.Unstructured{}
	noTemplate.SetAPIVersion("apps/v1")
	noTemplate.SetKind("Deployment")
	noTemplate.SetNamespace("default")
	noTemplate.SetName("web")
	for _, tc := range []struct {
		name string
		// watchTargets: the scale and template from the informer's cache, else the scale
		// through its subresource and the template through the dynamic client, which holds
		// workload (nil: none, the get fails).
		watchTargets bool
		workload     *unstructured.Unstructured
		want         int32
		message      string // in the CapacityLimited event; "" for none
	}{
		{name: "template read through the dynamic client", workload: &unstructured.Unstructured{Object: withTemplate}, want: 4,
			message: "wanted 5, granted 4"},
		{name: "template read from the informer's cache, never through the dynamic client", watchTargets: true, want: 4,
			message: "wanted 5, granted 4"},
		{name: "a kind without spec.template: the newest pod", workload: noTemplate, want: 4, message: "wanted 5, granted 4"},
		{name: "workload unreadable", want: 2, message: "wanted 5, granted 2: get Deployment default/web for its pod template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			var objects []runtime.Object
			if tc.workload != nil {
				objects = append(objects, tc.workload)
			}
			cl.dyn = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objects...)
			if tc.watchTargets {
				if _, err := cl.kube.AppsV1().Deployments("default").Create(cl.ctx, d, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cl.kube.CoreV1().Nodes().Create(cl.ctx, gpuNode("gpu-0", 8), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []*corev1.Pod{old, current} {
				if _, err := cl.kube.CoreV1().Pods("default").Create(cl.ctx, p, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			cl.source.set("load", policy.Sample{Value: 50})
			opts := DefaultOptions()
			opts.Capacity.PendingAllowance = 0
			opts.WatchTargets = tc.watchTargets
			c := cl.controller(rolloutPolicy, opts)
			lead(c)
			events := cl.tickAt(c, 0)
			if got := cl.replicas(); got != tc.want {
				t.Errorf("scaled to %d replicas, want %d (events %q)", got, tc.want, events)
			}
			var limited []string
			for _, e := range events {
				if strings.HasPrefix(e, corev1.EventTypeWarning+" "+ReasonCapacityLimited+" ") {
					limited = append(limited, e)
				}
			}
			if len(limited) != 1 || !strings.Contains(limited[0], tc.message) {
				t.Errorf("CapacityLimited events %q, want one saying %q", limited, tc.message)
			}
		})
	}
}
