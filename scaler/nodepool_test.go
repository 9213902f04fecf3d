package scaler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

func TestGrowthOf(t *testing.T) {
	isGPU := DefaultOptions().Capacity.IsGPU
	pools := []*unstructured.Unstructured{
		// 16 GPUs at most, 4 on its nodes: 12 more, Ready 9 min after launch.
		karpenterNodePool("gpu", map[string]any{"nvidia.com/gpu": "16", "cpu": "1000"}, map[string]any{"nvidia.com/gpu": "4", "cpu": "48"}),
		// No node yet: its whole limit, written as a number (as a manifest's 8 is kept).
		karpenterNodePool("gpu-spot", map[string]any{"nvidia.com/gpu": int64(8)}, nil),
		// Beyond its limit (limits are soft within one provisioning pass): none, not less.
		karpenterNodePool("mig", map[string]any{"nvidia.com/mig-1g.10gb": "7"}, map[string]any{"nvidia.com/mig-1g.10gb": "9"}),
		// No GPU limit: not counted, whatever its instance types.
		karpenterNodePool("general", map[string]any{"cpu": "100"}, nil),
		karpenterNodePool("unlimited", nil, map[string]any{"nvidia.com/gpu": "8"}),
	}
	leads := map[string]time.Duration{"gpu": 9 * time.Minute, "gpu-spot": 12 * time.Minute, "general": time.Minute}
	got, errs := growthOf(pools, isGPU, leads)
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

func TestGrowthOfNamesWhatDoesNotParse(t *testing.T) {
	isGPU := DefaultOptions().Capacity.IsGPU
	pools := []*unstructured.Unstructured{
		karpenterNodePool("bad-limit", map[string]any{"nvidia.com/gpu": "sixteen"}, nil),
		karpenterNodePool("bad-status", map[string]any{"nvidia.com/gpu": "8"}, map[string]any{"nvidia.com/gpu": "x"}),
		karpenterNodePool("bad-type", map[string]any{"nvidia.com/gpu": true}, nil),
		karpenterNodePool("good", map[string]any{"nvidia.com/gpu": "8"}, map[string]any{"nvidia.com/gpu": "2"}),
	}
	got, errs := growthOf(pools, isGPU, nil)
	if diff := cmp.Diff(map[string]alloc.Growth{"nvidia.com/gpu": {GPUs: 6, Pools: "NodePool good"}}, got); diff != "" {
		t.Errorf("growthOf (-want +got):\n%s", diff)
	}
	if len(errs) != 3 {
		t.Fatalf("errors %v, want 3", errs)
	}
	for i, want := range []string{`NodePool bad-limit: spec.limits["nvidia.com/gpu"]: "sixteen"`, `NodePool bad-status: status.resources["nvidia.com/gpu"]: "x"`,
		`NodePool bad-type: spec.limits["nvidia.com/gpu"]: true: not a quantity`} {
		if !strings.Contains(errs[i].Error(), want) {
			t.Errorf("error %d %q does not name %q", i, errs[i], want)
		}
	}
}
