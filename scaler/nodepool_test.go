package scaler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/prescale/prescale/alloc"
)

// karpenterNodePool is a Karpenter NodePool with spec.limits and status.resources.
func karpenterNodePool(name string, limits, resources map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
		"metadata": map[string]any{"name": name}, "spec": map[string]any{}}}
	if limits != nil {
		u.Object["spec"].(map[string]any)["limits"] = limits
	}
	if resources != nil {
		u.Object["status"] = map[string]any{"resources": resources}
	}
	return u
}

// karpenterNode is a node (gpuNode) of Karpenter's NodePool pool ("" for none) with gpus of
// kind, Ready or booting.
func karpenterNode(name, pool, kind string, gpus int64, ready bool) *corev1.Node {
	return gpuNode(name, 0, func(n *corev1.Node) {
		n.Status.Allocatable = corev1.ResourceList{corev1.ResourceName(kind): *resource.NewQuantity(gpus, resource.DecimalSI)}
		if pool != "" {
			n.Labels["karpenter.sh/nodepool"] = pool
		}
		if !ready {
			n.Status.Conditions[0].Status = corev1.ConditionFalse
		}
	})
}

func TestGrowthOf(t *testing.T) {
	isGPU := DefaultOptions().Capacity.IsGPU
	pools := []*unstructured.Unstructured{
		// 16 GPUs at most. Its status counts 12 (a booting node's 8 with them), but only the
		// Ready node's 4 are taken: 12 more, Ready 9 min after launch.
		karpenterNodePool("gpu", map[string]any{"nvidia.com/gpu": "16", "cpu": "1000"}, map[string]any{"nvidia.com/gpu": "12", "cpu": "48"}),
		// No node yet: its whole limit, written as a number (as a manifest's 8 is kept).
		karpenterNodePool("gpu-spot", map[string]any{"nvidia.com/gpu": int64(8)}, nil),
		// Beyond its limit (limits are soft within one provisioning pass): none, not less.
		karpenterNodePool("mig", map[string]any{"nvidia.com/mig-1g.10gb": "7"}, map[string]any{"nvidia.com/mig-1g.10gb": "9"}),
		// No GPU limit: not counted, whatever its instance types.
		karpenterNodePool("general", map[string]any{"cpu": "100"}, nil),
		karpenterNodePool("unlimited", nil, map[string]any{"nvidia.com/gpu": "8"}),
	}
	nodes := []*corev1.Node{
		karpenterNode("gpu-a", "gpu", "nvidia.com/gpu", 4, true),
		karpenterNode("gpu-booting", "gpu", "nvidia.com/gpu", 8, false),
		karpenterNode("mig-a", "mig", "nvidia.com/mig-1g.10gb", 9, true),
		karpenterNode("unlimited-a", "unlimited", "nvidia.com/gpu", 8, true),
		karpenterNode("static", "", "nvidia.com/gpu", 8, true), // in no NodePool
	}
	leads := map[string]time.Duration{"gpu": 9 * time.Minute, "gpu-spot": 12 * time.Minute, "general": time.Minute}
	got, errs := growthOf(pools, nodes, isGPU, leads)
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := map[string]alloc.Growth{
		"nvidia.com/gpu":         {GPUs: 20, Lead: 12 * time.Minute, Pools: "NodePools gpu, gpu-spot"},
		"nvidia.com/mig-1g.10gb": {GPUs: 0, Pools: "NodePool mig"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("growthOf (-want +got):\n%s", diff)
	}
}

// A NodePool at its limit whose nodes were launched for a surge and still boot can still
// add them: the pods waiting for them are granted (with the lead), not cut to what fits now.
func TestGrowthOfBootingNodesAtTheLimit(t *testing.T) {
	isGPU := DefaultOptions().Capacity.IsGPU
	pools := []*unstructured.Unstructured{karpenterNodePool("gpu", map[string]any{"nvidia.com/gpu": "32"}, map[string]any{"nvidia.com/gpu": "32"})}
	nodes := []*corev1.Node{karpenterNode("a", "gpu", "nvidia.com/gpu", 8, true)}
	for i := range 3 {
		nodes = append(nodes, karpenterNode(fmt.Sprintf("booting-%d", i), "gpu", "nvidia.com/gpu", 8, false))
	}
	got, _ := growthOf(pools, nodes, isGPU, map[string]time.Duration{"gpu": time.Minute})
	if g := got["nvidia.com/gpu"]; g.GPUs != 24 || g.Lead != time.Minute {
		t.Errorf("growth %+v, want the 24 GPUs of the booting nodes, ready in 1m0s", g)
	}
	// One that was up and went NotReady (its kubelet lost) still counts against the limit:
	// Karpenter launches nothing for it.
	nodes[1].Labels["karpenter.sh/initialized"] = "true"
	got, _ = growthOf(pools, nodes, isGPU, nil)
	if g := got["nvidia.com/gpu"]; g.GPUs != 16 {
		t.Errorf("growth %+v with one initialized node NotReady, want the 16 GPUs of the two booting", g)
	}
	// Once they are Ready, they fit now: nothing more to add.
	for _, n := range nodes {
		n.Status.Conditions[0].Status = corev1.ConditionTrue
	}
	got, _ = growthOf(pools, nodes, isGPU, nil)
	if g := got["nvidia.com/gpu"]; g.GPUs != 0 {
		t.Errorf("growth %+v with every node Ready, want 0", g)
	}
}

func TestGrowthOfNamesWhatDoesNotParse(t *testing.T) {
	isGPU := DefaultOptions().Capacity.IsGPU
	pools := []*unstructured.Unstructured{
		karpenterNodePool("bad-limit", map[string]any{"nvidia.com/gpu": "sixteen"}, nil),
		karpenterNodePool("bad-type", map[string]any{"nvidia.com/gpu": true}, nil),
		karpenterNodePool("good", map[string]any{"nvidia.com/gpu": "8"}, map[string]any{"nvidia.com/gpu": "2"}),
	}
	got, errs := growthOf(pools, []*corev1.Node{karpenterNode("a", "good", "nvidia.com/gpu", 2, true)}, isGPU, nil)
	if diff := cmp.Diff(map[string]alloc.Growth{"nvidia.com/gpu": {GPUs: 6, Pools: "NodePool good"}}, got); diff != "" {
		t.Errorf("growthOf (-want +got):\n%s", diff)
	}
	if len(errs) != 2 {
		t.Fatalf("errors %v, want 2", errs)
	}
	for i, want := range []string{`NodePool bad-limit: spec.limits["nvidia.com/gpu"]: "sixteen"`,
		`NodePool bad-type: spec.limits["nvidia.com/gpu"]: true: not a quantity`} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d %q does not name %q", i, errs[i], want)
		}
	}
}
