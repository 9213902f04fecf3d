package sandbox

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestInstanceTypesJSON(t *testing.T) {
	data, err := instanceTypesJSON(KarpenterOptions{GPUsPerNode: []int{1, 4}})
	if err != nil {
		t.Fatal(err)
	}
	var got []kwokInstanceType
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	offering := func(gpus string, price float64) []kwokOffering {
		return []kwokOffering{{Price: price, Available: true, Requirements: []kwokNodeRequirement{
			{Key: "karpenter.sh/capacity-type", Operator: "In", Values: []string{"on-demand"}},
			{Key: "topology.kubernetes.io/zone", Operator: "In", Values: []string{"sandbox-a"}},
			{Key: "nvidia.com/gpu.count", Operator: "In", Values: []string{gpus}},
		}}}
	}
	// 12 CPUs, 128 GiB and 2.5 an hour per GPU.
	want := []kwokInstanceType{
		{Name: "sandbox-gpu-1", Offerings: offering("1", 2.5), Architecture: "amd64", OperatingSystems: []string{"linux"},
			Resources: map[string]string{"cpu": "12", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": "1"}},
		{Name: "sandbox-gpu-4", Offerings: offering("4", 10), Architecture: "amd64", OperatingSystems: []string{"linux"},
			Resources: map[string]string{"cpu": "48", "memory": "512Gi", "pods": "110", "nvidia.com/gpu": "4"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instance types (-want +got):\n%s", diff)
	}
}

func TestNodePool(t *testing.T) {
	tests := []struct {
		name      string
		delay     time.Duration
		wantDelay string
	}{
		{name: "whole seconds are kept", delay: 90 * time.Second, wantDelay: "90"},
		{name: "a part of a second rounds up, never shortening the delay", delay: 1500 * time.Millisecond, wantDelay: "2"},
		{name: "no delay", delay: 0, wantDelay: "0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := KarpenterOptions{NodeDelay: tc.delay, GPULimit: 12}.Defaults()
			p := nodePool("pool-a", o, "NVIDIA-A100")
			got, _, _ := unstructured.NestedString(p.Object, "spec", "template", "metadata", "annotations", NodeReadyDelayAnnotation)
			if got != tc.wantDelay {
				t.Errorf("ready delay annotation = %q, want %q", got, tc.wantDelay)
			}
			limit, _, _ := unstructured.NestedString(p.Object, "spec", "limits", "nvidia.com/gpu")
			product, _, _ := unstructured.NestedString(p.Object, "spec", "template", "metadata", "labels", "nvidia.com/gpu.product")
			kwok, _, _ := unstructured.NestedString(p.Object, "spec", "template", "metadata", "labels", NodeLabel)
			after, _, _ := unstructured.NestedString(p.Object, "spec", "disruption", "consolidateAfter")
			if limit != "12" || product != "NVIDIA-A100" || kwok != "true" || after != "5m0s" || p.GetName() != "pool-a" {
				t.Errorf("name %q, limit %q, product %q, %s %q, consolidateAfter %q; want pool-a, 12, NVIDIA-A100, true, 5m0s",
					p.GetName(), limit, product, NodeLabel, kwok, after)
			}
		})
	}
}

func TestKarpenterOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		o    KarpenterOptions
		want []string // substrings of the error, all of them; none: valid
	}{
		{name: "defaults are valid", o: KarpenterOptions{}.Defaults()},
		{name: "a zero delay is valid", o: KarpenterOptions{NodeDelay: 0, GPUsPerNode: []int{1}}},
		{
			name: "every problem is reported at once",
			o:    KarpenterOptions{NodeDelay: -time.Second, GPULimit: -1, GPUsPerNode: []int{8, 0}, FeatureGates: "A=true, B=false"},
			want: []string{"karpenter.nodeDelay: must not be negative, got -1s", "karpenter.gpuLimit: must not be negative, got -1",
				"karpenter.gpusPerNode[1]: must be positive, got 0", `karpenter.featureGates: must be Name=bool pairs separated by commas, got "A=true, B=false"`},
		},
		{
			name: "the CapacityBuffer feature gate without its CRD",
			o:    KarpenterOptions{FeatureGates: "CapacityBuffer=true", WithoutCapacityBuffers: true},
			want: []string{`karpenter.withoutCapacityBuffers: the CapacityBuffer feature gate needs the CRD, got featureGates "CapacityBuffer=true"`},
		},
		{
			name: "NodePools named twice or not as a DNS subdomain",
			o:    KarpenterOptions{NodePools: []string{"hpa", "Prescale", "hpa"}},
			want: []string{`karpenter.nodePools[1]: must be a unique DNS subdomain name, got "Prescale"`,
				`karpenter.nodePools[2]: must be a unique DNS subdomain name, got "hpa"`},
		},
		{
			name: "without the CapacityBuffer CRD, its gate off",
			o:    KarpenterOptions{FeatureGates: "CapacityBuffer=false", WithoutCapacityBuffers: true},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validate() = nil, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("validate() = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}
