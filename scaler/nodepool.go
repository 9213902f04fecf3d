package scaler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/alloc"
)

// nodePoolGVR is Karpenter's NodePool, whose spec.limits bound what it provisions.
var nodePoolGVR = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}

// karpenterPoolLabel names the NodePool of a node Karpenter launched;
// karpenterInitializedLabel marks one that has been Ready with its resources registered.
const (
	karpenterPoolLabel        = "karpenter.sh/nodepool"
	karpenterInitializedLabel = "karpenter.sh/initialized"
)

// growthOf returns, per GPU kind, what Karpenter's NodePools can still add beyond their
// nodes that are up: each NodePool whose spec.limits names the kind adds its limit less the
// allocatable GPUs of that kind on its nodes (the karpenter.sh/nodepool label) that are
// Ready or were once (Karpenter's karpenter.sh/initialized label: a node that went NotReady
// after its boot still counts against the limit, and its pods still hold their GPUs); none
// below 0, a limit being soft within one provisioning pass. A node that is launched but
// still booting is in the NodePool's status.resources, yet its GPUs fit no pod now: they
// are counted as growth, with the pool's lead, for the pods waiting for them; subtracting
// them (status.resources) would deny those pods at a pool's limit, and take the replicas
// down to what fits while their nodes boot. A NodePool without a limit on a kind
// is not counted for it: whether its instance types have that GPU is the cloud provider's
// to say, not the NodePool's, so prescale does not grant on it (docs/capacity.md). Each
// kind's lead time is the longest of its NodePools' measured ones (leads, by NodePool
// name), 0 when none is measured. A NodePool whose limit does not parse is skipped, and
// returned as an error naming it and the field.
func growthOf(pools []*unstructured.Unstructured, nodes []*corev1.Node, isGPU func(string) bool, leads map[string]time.Duration) (map[string]alloc.Growth, []error) {
	ready := map[string]map[string]int64{} // by NodePool, then kind
	for _, n := range nodes {
		pool := n.Labels[karpenterPoolLabel]
		if pool == "" || !nodeReady(n) && n.Labels[karpenterInitializedLabel] != "true" {
			continue
		}
		for r, q := range n.Status.Allocatable {
			if isGPU(string(r)) {
				if ready[pool] == nil {
					ready[pool] = map[string]int64{}
				}
				ready[pool][string(r)] += q.Value()
			}
		}
	}
	type acc struct {
		gpus  int64
		lead  time.Duration
		names []string
	}
	kinds := map[string]*acc{}
	var errs []error
	for _, u := range pools {
		limits, _, _ := unstructured.NestedMap(u.Object, "spec", "limits")
		for kind, limit := range limits {
			if !isGPU(kind) {
				continue
			}
			l, err := quantity(limit)
			if err != nil {
				errs = append(errs, fmt.Errorf("NodePool %s: spec.limits[%q]: %w", u.GetName(), kind, err))
				continue
			}
			a := kinds[kind]
			if a == nil {
				a = &acc{}
				kinds[kind] = a
			}
			a.gpus += max(0, l.Value()-ready[u.GetName()][kind])
			a.lead = max(a.lead, leads[u.GetName()])
			a.names = append(a.names, u.GetName())
		}
	}
	out := make(map[string]alloc.Growth, len(kinds))
	for kind, a := range kinds {
		slices.Sort(a.names)
		noun := "NodePool "
		if len(a.names) > 1 {
			noun = "NodePools "
		}
		out[kind] = alloc.Growth{GPUs: a.gpus, Lead: a.lead, Pools: noun + strings.Join(a.names, ", ")}
	}
	return out, errs
}

// quantity parses a resource quantity as a custom resource holds it: a string ("16"), or
// the number a manifest gave (16), which JSON keeps as a number.
func quantity(v any) (resource.Quantity, error) {
	switch x := v.(type) {
	case string:
		q, err := resource.ParseQuantity(x)
		if err != nil {
			return q, fmt.Errorf("%q: %w", x, err)
		}
		return q, nil
	case int64:
		return *resource.NewQuantity(x, resource.DecimalSI), nil
	case float64:
		q, err := resource.ParseQuantity(strconv.FormatFloat(x, 'f', -1, 64))
		if err != nil {
			return q, fmt.Errorf("%v: %w", x, err)
		}
		return q, nil
	}
	return resource.Quantity{}, fmt.Errorf("%v: not a quantity (%T)", v, v)
}

// startNodePools starts an informer on Karpenter's NodePools when capacity.mode is cap and
// their API is served; otherwise it says once that the allocation grants Pending pods under
// the allowance only. It does not hold Start: the NodePools are read once synced, and until
// then (or without list and watch on them, which the informer's log then says) the growth
// is unknown.
func (c *Controller) startNodePools(ctx context.Context) {
	if c.opts.Capacity.Mode != CapacityCap || c.deps.Dynamic == nil || c.deps.Mapper == nil {
		return
	}
	logger := klog.FromContext(ctx)
	if _, err := c.deps.Mapper.RESTMapping(schema.GroupKind{Group: nodePoolGVR.Group, Kind: "NodePool"}, nodePoolGVR.Version); err != nil {
		logger.Info("Karpenter's NodePool API is not served: pods beyond what fits are granted under each pool's Pending allowance only",
			"resource", nodePoolGVR.String(), "err", err)
		return
	}
	f := dynamicinformer.NewDynamicSharedInformerFactory(c.deps.Dynamic, 0)
	inf := f.ForResource(nodePoolGVR)
	c.nodePools, c.poolsSync = inf.Lister(), inf.Informer().HasSynced
	f.Start(ctx.Done())
	logger.Info("Reading Karpenter's NodePools: a GPU kind that a NodePool limits is granted Pending pods out of what it can still add",
		"resource", nodePoolGVR.String())
}

// observeGrowth reads what the NodePools can add beyond their Ready nodes (growthOf), for
// the tick's allocation.
func (c *Controller) observeGrowth(ctx context.Context, nodes []*corev1.Node) {
	c.growth = nil
	if c.nodePools == nil || !c.poolsSync() {
		return
	}
	objs, err := c.nodePools.List(labelsEverything)
	if err != nil {
		return // a lister does not fail
	}
	pools := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			pools = append(pools, u)
		}
	}
	growth, errs := growthOf(pools, nodes, c.opts.Capacity.IsGPU, c.leads)
	err = errors.Join(errs...)
	if msg := fmt.Sprint(err); err != nil && msg != c.growthErrs {
		klog.FromContext(ctx).Error(err, "Skipping NodePools whose GPU limits do not parse")
		c.growthErrs = msg
	} else if err == nil {
		c.growthErrs = ""
	}
	c.growth = growth
}
