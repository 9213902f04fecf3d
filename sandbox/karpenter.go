package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

const (
	// KarpenterNodePool and KarpenterNodeClass name the NodePool and KWOKNodeClass the
	// sandbox creates when Karpenter is on.
	KarpenterNodePool  = "gpu"
	KarpenterNodeClass = "gpu"

	karpenterInstanceTypesFile = "karpenter-instance-types.json"
)

// KarpenterOptions turn on Karpenter (sigs.k8s.io/karpenter's kwok provider) beside the
// sandbox: one NodePool of simulated GPU nodes that it grows for Pending pods and
// shrinks when they are empty. Zero values take the defaults of Defaults.
type KarpenterOptions struct {
	// NodeDelay is the time from a Karpenter node's creation to its Ready condition, like
	// a GPU VM's boot, driver install and image pull; rounded up to whole seconds. Zero:
	// Ready at once.
	NodeDelay time.Duration
	// GPULimit is the NodePool's spec.limits for nvidia.com/gpu: Karpenter launches no
	// node that would take the pool's GPUs past it. Default 16.
	GPULimit int
	// GPUsPerNode lists the instance types, one per entry, by their nvidia.com/gpu.
	// Default 1, 4 and 8. Each type has 12 CPUs and 128 GiB per GPU, like Options'
	// nodes, and costs in proportion to its GPUs, so Karpenter launches the smallest
	// type that fits what is Pending.
	GPUsPerNode []int
	// ConsolidateAfter is how long a node stays empty before Karpenter removes it
	// (the NodePool's disruption.consolidateAfter, policy WhenEmpty). Default 5m.
	ConsolidateAfter time.Duration
	// FeatureGates is Karpenter's --feature-gates, e.g. "CapacityBuffer=true"; empty
	// keeps Karpenter's defaults.
	FeatureGates string
	// NodePools names the NodePools, alike but for their names (each with GPULimit), so that
	// workloads can keep to nodes of their own by selecting karpenter.sh/nodepool. Default
	// one, KarpenterNodePool.
	NodePools []string
	// WithoutCapacityBuffers leaves out the CapacityBuffer CRD (capacitybuffers.autoscaling.x-k8s.io),
	// as in a cluster whose node autoscaler does not serve the API; Karpenter's other CRDs
	// are applied. It cannot go with the CapacityBuffer feature gate.
	WithoutCapacityBuffers bool
}

// capacityBufferCRD is the name of the CapacityBuffer CRD among Karpenter's.
const capacityBufferCRD = "capacitybuffers.autoscaling.x-k8s.io"

// Defaults fills the zero fields of o.
func (o KarpenterOptions) Defaults() KarpenterOptions {
	if o.GPULimit == 0 {
		o.GPULimit = 16
	}
	if len(o.GPUsPerNode) == 0 {
		o.GPUsPerNode = []int{1, 4, 8}
	}
	if o.ConsolidateAfter == 0 {
		o.ConsolidateAfter = 5 * time.Minute
	}
	if len(o.NodePools) == 0 {
		o.NodePools = []string{KarpenterNodePool}
	}
	return o
}

// instanceTypeName is the Karpenter instance type with gpus GPUs, named like the
// sandbox's own nodes' node.kubernetes.io/instance-type.
func instanceTypeName(gpus int) string { return "sandbox-gpu-" + strconv.Itoa(gpus) }

// kwokInstanceType is one entry of the kwok provider's instance types file
// (sigs.k8s.io/karpenter/kwok/cloudprovider.InstanceTypeOptions).
type kwokInstanceType struct {
	Name             string            `json:"name"`
	Offerings        []kwokOffering    `json:"offerings"`
	Architecture     string            `json:"architecture"`
	OperatingSystems []string          `json:"operatingSystems"`
	Resources        map[string]string `json:"resources"`
}

type kwokOffering struct {
	Price        float64               `json:"Price"`
	Available    bool                  `json:"Available"`
	Requirements []kwokNodeRequirement `json:"Requirements"`
}

type kwokNodeRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values"`
}

// karpenterZone is the one zone of the instance types' offerings.
const karpenterZone = "sandbox-a"

// instanceTypesJSON returns the kwok provider's instance types file for o: one
// on-demand offering per type, in one zone. The offering's requirements also label the
// node with its nvidia.com/gpu.count, as the GPU operator's feature discovery would.
func instanceTypesJSON(o KarpenterOptions) ([]byte, error) {
	var types []kwokInstanceType
	for _, g := range o.GPUsPerNode {
		if g <= 0 {
			return nil, fmt.Errorf("karpenter instance types: GPUs per node must be positive, got %d", g)
		}
		types = append(types, kwokInstanceType{
			Name: instanceTypeName(g),
			Offerings: []kwokOffering{{
				Price:     2.5 * float64(g), // per hour; only the order matters to Karpenter
				Available: true,
				Requirements: []kwokNodeRequirement{
					{Key: "karpenter.sh/capacity-type", Operator: "In", Values: []string{"on-demand"}},
					{Key: "topology.kubernetes.io/zone", Operator: "In", Values: []string{karpenterZone}},
					{Key: "nvidia.com/gpu.count", Operator: "In", Values: []string{strconv.Itoa(g)}},
				},
			}},
			Architecture:     "amd64",
			OperatingSystems: []string{"linux"},
			Resources: map[string]string{
				"cpu":               strconv.Itoa(12 * g),
				"memory":            strconv.Itoa(128*g) + "Gi",
				"pods":              "110",
				string(GPUResource): strconv.Itoa(g),
			},
		})
	}
	data, err := json.MarshalIndent(types, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode karpenter instance types: %w", err)
	}
	return data, nil
}

var (
	crdGVR       = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	nodePoolGVR  = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
	nodeClassGVR = schema.GroupVersionResource{Group: "karpenter.kwok.sh", Version: "v1alpha1", Resource: "kwoknodeclasses"}
)

// nodePool returns the sandbox's NodePool name: nodes labelled like the sandbox's own (so that
// the sandbox's kwok manages them, and with the GPU operator's labels), annotated with
// their ready delay, limited to o.GPULimit GPUs, removed when empty.
func nodePool(name string, o KarpenterOptions, gpuProduct string) *unstructured.Unstructured {
	delay := int64(math.Ceil(o.NodeDelay.Seconds()))
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.sh/v1",
		"kind":       "NodePool",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"template": map[string]any{
				"metadata": map[string]any{
					"labels": map[string]any{
						NodeLabel:                "true",
						"type":                   "kwok",
						"nvidia.com/gpu.present": "true",
						"nvidia.com/gpu.product": gpuProduct,
					},
					"annotations": map[string]any{
						NodeReadyDelayAnnotation: strconv.FormatInt(delay, 10),
					},
				},
				"spec": map[string]any{
					"requirements": []any{
						map[string]any{"key": "kubernetes.io/os", "operator": "In", "values": []any{"linux"}},
						map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []any{"on-demand"}},
					},
					"nodeClassRef": map[string]any{"group": "karpenter.kwok.sh", "kind": "KWOKNodeClass", "name": KarpenterNodeClass},
					"expireAfter":  "Never",
				},
			},
			"limits": map[string]any{string(GPUResource): strconv.Itoa(o.GPULimit)},
			"disruption": map[string]any{
				"consolidationPolicy": "WhenEmpty",
				"consolidateAfter":    o.ConsolidateAfter.String(),
			},
		},
	}}
}

func nodeClass() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "karpenter.kwok.sh/v1alpha1",
		"kind":       "KWOKNodeClass",
		"metadata":   map[string]any{"name": KarpenterNodeClass},
	}}
}

// applyCRDs creates the CustomResourceDefinitions in the YAML files of dir, but those named
// in skip, and waits
// until each is established.
func applyCRDs(ctx context.Context, c dynamic.Interface, dir string, timeout time.Duration, skip ...string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return fmt.Errorf("list CRDs in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return fmt.Errorf("list CRDs in %s: none found (run make tools)", dir)
	}
	var names []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read CRD %s: %w", f, err)
		}
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			return fmt.Errorf("decode CRD %s: %w", f, err)
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetKind() != "CustomResourceDefinition" {
			return fmt.Errorf("decode CRD %s: kind is %q, want CustomResourceDefinition", f, u.GetKind())
		}
		if slices.Contains(skip, u.GetName()) {
			continue
		}
		if _, err := c.Resource(crdGVR).Create(ctx, u, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", u.GetName(), err)
		}
		names = append(names, u.GetName())
	}
	deadline := time.Now().Add(timeout)
	for _, name := range names {
		for {
			established, err := crdEstablished(ctx, c, name)
			if err != nil {
				return err
			}
			if established {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("wait for CRD %s to be established: not after %s", name, timeout)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for CRD %s to be established: %w", name, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func crdEstablished(ctx context.Context, c dynamic.Interface, name string) (bool, error) {
	u, err := c.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("get CRD %s: %w", name, err)
	}
	// A CRD just created may have no conditions yet, or a null list.
	v, _, _ := unstructured.NestedFieldNoCopy(u.Object, "status", "conditions")
	conds, _ := v.([]any)
	return slices.ContainsFunc(conds, func(c any) bool {
		m, ok := c.(map[string]any)
		return ok && m["type"] == "Established" && m["status"] == "True"
	}), nil
}

// startKarpenter applies Karpenter's CRDs, starts its kwok provider with the sandbox's
// GPU instance types, and creates the KWOKNodeClass and the NodePool once it is ready.
func (u *upper) startKarpenter(ctx context.Context, cfg *rest.Config) error {
	o := u.o.Karpenter.Defaults()
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build dynamic client: %w", err)
	}
	var skip []string
	if o.WithoutCapacityBuffers {
		skip = append(skip, capacityBufferCRD)
	}
	if err := applyCRDs(ctx, dc, filepath.Join(u.bin, "karpenter-crds"), u.o.Timeout, skip...); err != nil {
		return fmt.Errorf("install karpenter CRDs: %w", err)
	}
	types, err := instanceTypesJSON(o)
	if err != nil {
		return err
	}
	typesPath := filepath.Join(u.s.Dir, karpenterInstanceTypesFile)
	if err := os.WriteFile(typesPath, types, 0o644); err != nil {
		return fmt.Errorf("write karpenter instance types: %w", err)
	}
	var metricsPort, healthPort int
	if metricsPort, err = freePort(); err != nil {
		return err
	}
	if healthPort, err = freePort(); err != nil {
		return err
	}
	// Flags where Karpenter has them (its command line then names the state folder, as
	// every component's does); the client configuration comes only from KUBECONFIG.
	args := []string{
		"--instance-types-file-path=" + typesPath,
		"--metrics-port=" + strconv.Itoa(metricsPort),
		"--health-probe-port=" + strconv.Itoa(healthPort),
		"--log-level=info",
	}
	if o.FeatureGates != "" {
		args = append(args, "--feature-gates="+o.FeatureGates)
	}
	k, err := u.startEnv("karpenter", []string{"KUBECONFIG=" + u.s.Kubeconfig, "DISABLE_LEADER_ELECTION=true"}, args...)
	if err != nil {
		return err
	}
	if err := k.waitReady(ctx, u.o.Timeout, httpOK(fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))); err != nil {
		return err
	}
	if _, err := dc.Resource(nodeClassGVR).Create(ctx, nodeClass(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create KWOKNodeClass %s: %w", KarpenterNodeClass, err)
	}
	for _, name := range o.NodePools {
		if _, err := dc.Resource(nodePoolGVR).Create(ctx, nodePool(name, o, u.o.GPUProduct), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create NodePool %s: %w", name, err)
		}
	}
	u.s.Karpenter = &KarpenterState{
		NodePools:  o.NodePools,
		NodeDelay:  time.Duration(math.Ceil(o.NodeDelay.Seconds())) * time.Second,
		GPULimit:   o.GPULimit,
		MetricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
	}
	return u.s.save()
}

// KarpenterState describes the Karpenter of a running sandbox.
type KarpenterState struct {
	NodePools  []string      `json:"nodePools"`
	NodeDelay  time.Duration `json:"nodeDelay"` // from a node's creation to Ready, whole seconds
	GPULimit   int           `json:"gpuLimit"`
	MetricsURL string        `json:"metricsURL"` // Karpenter's own Prometheus metrics
}

// validate reports every problem of o at once.
func (o KarpenterOptions) validate() error {
	var errs []error
	if o.NodeDelay < 0 {
		errs = append(errs, fmt.Errorf("karpenter.nodeDelay: must not be negative, got %s", o.NodeDelay))
	}
	if o.GPULimit < 0 {
		errs = append(errs, fmt.Errorf("karpenter.gpuLimit: must not be negative, got %d", o.GPULimit))
	}
	for i, g := range o.GPUsPerNode {
		if g <= 0 {
			errs = append(errs, fmt.Errorf("karpenter.gpusPerNode[%d]: must be positive, got %d", i, g))
		}
	}
	if strings.ContainsAny(o.FeatureGates, " \n") {
		errs = append(errs, fmt.Errorf("karpenter.featureGates: must be Name=bool pairs separated by commas, got %q", o.FeatureGates))
	}
	for i, name := range o.NodePools {
		if errs1 := validation.IsDNS1123Subdomain(name); len(errs1) > 0 || slices.Contains(o.NodePools[:i], name) {
			errs = append(errs, fmt.Errorf("karpenter.nodePools[%d]: must be a unique DNS subdomain name, got %q", i, name))
		}
	}
	if o.WithoutCapacityBuffers && strings.Contains(o.FeatureGates, "CapacityBuffer=true") {
		errs = append(errs, fmt.Errorf("karpenter.withoutCapacityBuffers: the CapacityBuffer feature gate needs the CRD, got featureGates %q", o.FeatureGates))
	}
	return errors.Join(errs...)
}
