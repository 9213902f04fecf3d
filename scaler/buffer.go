package scaler

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// bufferGVR is SIG Autoscaling's CapacityBuffer, as Karpenter (its CapacityBuffer feature
// gate) and cluster-autoscaler serve it: spare capacity for replicas pods shaped like a
// workload's, which the node autoscaler provisions as if they were Pending, without the
// pods.
var bufferGVR = schema.GroupVersionResource{Group: "autoscaling.x-k8s.io", Version: "v1beta1", Resource: "capacitybuffers"}

// The labels of the CapacityBuffers prescale owns: the admission policy lets prescale's
// service account touch no other, and a buffer whose policy has left the configuration
// is deleted by them.
const (
	managedByLabel = "app.kubernetes.io/managed-by"
	managedBy      = "prescale"
	policyLabel    = "prescale.io/policy"
	// installLabel names the installation (Options.Install) whose buffer it is: two
	// installations of prescale in one cluster each size and delete only their own.
	installLabel = "prescale.io/install"
)

// bufferSelector selects this installation's buffers.
func (c *Controller) bufferSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{managedByLabel: managedBy, installLabel: c.opts.Install})
}

// bufferManager is the field manager of the buffers' server-side applies.
const bufferManager = "prescale"

// bufferName is the name of a policy's CapacityBuffer, in its target's namespace.
func bufferName(policyName string) string { return "prescale-" + policyName }

// bufferFor returns the CapacityBuffer of a policy whose target (its uid read this tick)
// should have room for replicas more pods: its scalableRef is the target, so the node
// autoscaler shapes the buffer's pods from the target's own template; it is labelled as
// prescale's and owned by the target (deleted with it).
func bufferFor(p *policy.Policy, install, uid string, replicas int32) *unstructured.Unstructured {
	gv, _ := schema.ParseGroupVersion(p.Target.APIVersion) // validated with the policy
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": bufferGVR.GroupVersion().String(),
		"kind":       "CapacityBuffer",
		"metadata": map[string]any{
			"name":      bufferName(p.Name),
			"namespace": p.Target.Namespace,
			"labels":    map[string]any{managedByLabel: managedBy, policyLabel: p.Name, installLabel: install},
			"ownerReferences": []any{map[string]any{
				"apiVersion": p.Target.APIVersion, "kind": p.Target.Kind, "name": p.Target.Name, "uid": uid,
			}},
		},
		"spec": map[string]any{
			"scalableRef": map[string]any{"apiGroup": gv.Group, "kind": p.Target.Kind, "name": p.Target.Name},
			"replicas":    int64(replicas),
		},
	}}
	return u
}

// bufferCurrent reports whether a buffer read back from the cluster is what bufferFor
// would write: same replicas, target and owner. A buffer changed by hand is written again.
func bufferCurrent(have, want *unstructured.Unstructured) bool {
	hr, _, _ := unstructured.NestedInt64(have.Object, "spec", "replicas")
	wr, _, _ := unstructured.NestedInt64(want.Object, "spec", "replicas")
	href, _, _ := unstructured.NestedStringMap(have.Object, "spec", "scalableRef")
	wref, _, _ := unstructured.NestedStringMap(want.Object, "spec", "scalableRef")
	owners := func(u *unstructured.Unstructured) []string {
		var out []string
		for _, o := range u.GetOwnerReferences() {
			out = append(out, string(o.UID))
		}
		return out
	}
	return hr == wr && fmt.Sprint(href) == fmt.Sprint(wref) && fmt.Sprint(owners(have)) == fmt.Sprint(owners(want)) &&
		have.GetLabels()[policyLabel] == want.GetLabels()[policyLabel]
}

// bufferSize is the CapacityBuffer a pass asks for: the replicas the forecast plans for
// over the node lead beyond its horizon (engine.Engine.Ahead: a pod that will need a node
// then must have it asked for now, a node taking lead to be Ready and the pod its start-up
// after), less the replicas it asks for now (the node autoscaler provisions for those
// itself, once Pending), none below 0. A forecast gated off plans nothing ahead: 0. One
// not known (its history loading, warming up, its load missing) gives known false: the
// buffer stays as it is, since missing data releases no capacity.
func (r *pass) bufferSize(lead time.Duration) (replicas int32, state engine.AheadState) {
	ahead, state := r.t.eng.Ahead(lead)
	if state != engine.AheadKnown {
		return 0, state
	}
	return max(0, ahead-r.res.Decision.DesiredReplicas), state
}

// aheadStates name engine.AheadState in the log.
var aheadStates = map[engine.AheadState]string{engine.AheadKnown: "known", engine.AheadOff: "off", engine.AheadUnknown: "unknown"}

// nodeLeadFor is the node lead time a pass's buffer is sized for: the longest measured one
// of the node pools that can add the GPU kinds its pods request (alloc.Growth), else the
// longest measured of any node pool, else capacity.nodeLead.
func (c *Controller) nodeLeadFor(template *corev1.Pod) time.Duration {
	var lead time.Duration
	if template != nil {
		for kind := range gpuRequests(template, c.opts.Capacity.IsGPU) {
			lead = max(lead, c.growth[kind].Lead)
		}
	}
	if lead > 0 {
		return lead
	}
	for _, d := range c.leads {
		lead = max(lead, d)
	}
	if lead > 0 {
		return lead
	}
	return c.opts.Capacity.NodeLead
}

// startBuffers starts an informer on prescale's CapacityBuffers when capacity.buffers is
// auto and their API is served; otherwise it says once that the nodes of a surge are asked
// for by its Pending pods only. Like startNodePools, it does not hold Start.
func (c *Controller) startBuffers(ctx context.Context) {
	if c.opts.Capacity.Buffers != BuffersAuto || c.deps.Dynamic == nil || c.deps.Mapper == nil {
		return
	}
	logger := klog.FromContext(ctx)
	if _, err := c.deps.Mapper.RESTMapping(schema.GroupKind{Group: bufferGVR.Group, Kind: "CapacityBuffer"}, bufferGVR.Version); err != nil {
		logger.Info("The CapacityBuffer API is not served: nodes are asked for by Pending pods only (within the Pending allowance or what the NodePools can add), not ahead of the forecast",
			"resource", bufferGVR.String(), "err", err)
		return
	}
	f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(c.deps.Dynamic, 0, metav1.NamespaceAll, func(o *metav1.ListOptions) {
		o.LabelSelector = c.bufferSelector().String()
	})
	inf := f.ForResource(bufferGVR)
	c.buffers, c.buffersSync = inf.Lister(), inf.Informer().HasSynced
	f.Start(ctx.Done())
	logger.Info("Sizing a CapacityBuffer for each policy with a forecast: the node autoscaler provisions the nodes of a surge ahead of it",
		"resource", bufferGVR.String())
}

// sizeBuffer writes the pass's CapacityBuffer when its size changed (bufferSize, for the
// node lead of its pods' pools): a policy with a forecast, while the pass writes. A buffer
// of 0 that does not exist is not created. What the node autoscaler made of the buffer, as
// read at now, is reported (reportBufferAck).
func (r *pass) sizeBuffer(ctx context.Context, now time.Time) error {
	c := r.c
	if c.buffers == nil || !c.buffersSync() || !r.writes || forecasting(r.p) == nil || r.obs.scale == nil {
		return nil
	}
	lead := c.nodeLeadFor(r.obs.template)
	size, state := r.bufferSize(lead)
	if state == engine.AheadUnknown {
		return nil // kept as it is, and so is its gauge
	}
	c.deps.Metrics.BufferReplicas.WithLabelValues(r.p.Name).Set(float64(size))
	want := bufferFor(r.p, c.opts.Install, string(r.obs.scale.UID), size)
	have, err := c.buffers.ByNamespace(r.p.Target.Namespace).Get(bufferName(r.p.Name))
	switch {
	case apierrors.IsNotFound(err):
		// Nothing to read back (deleted with a recreated target, or by hand).
		c.deps.Metrics.BufferReady.DeleteLabelValues(r.p.Name)
		r.t.forgetCondition(condBuffer)
		if size == 0 {
			return nil
		}
	case err == nil:
		if u, ok := have.(*unstructured.Unstructured); ok {
			r.reportBufferAck(ctx, bufferAckOf(u, now))
			if bufferCurrent(u, want) {
				return nil
			}
		}
	}
	if err := r.mayWrite(ctx, "buffer_write"); err != nil {
		return err
	}
	if err := c.writer.Buffer(ctx, want); err != nil {
		return failure("buffer_write", err)
	}
	klog.FromContext(ctx).Info("Sized the CapacityBuffer", "buffer", klog.KRef(r.p.Target.Namespace, bufferName(r.p.Name)),
		"replicas", size, "nodeLead", lead, "forecast", aheadStates[state], "desired", r.res.Decision.DesiredReplicas)
	return nil
}

// bufferReadyCondition is the condition a node autoscaler writes on a CapacityBuffer it
// reads (Karpenter's CapacityBuffer controller, cluster-autoscaler's alike): True once it
// has resolved the buffer's pods (its provisioner then plans for them; whether new nodes
// come, within the NodePools' limits, is its Provisioning condition's to say), False with a
// reason (ScalableRefNotFound, PodTemplateNotFound, ResolutionFailed) when it cannot.
const bufferReadyCondition = "ReadyForProvisioning"

// bufferUnreadAfter is how long a buffer that asks for pods may go without
// bufferReadyCondition before prescale says that no node autoscaler reads it. Karpenter
// writes the condition within seconds of a buffer's creation when its CapacityBuffer
// feature gate is on, and never when it is off, while the CRD is served either way.
const bufferUnreadAfter = 2 * time.Minute

// bufferAck is what the node autoscaler made of a buffer, read back from its status.
type bufferAck struct {
	// known is false while it is too early to tell (a new buffer, one of 0 replicas with
	// no condition yet, a condition of status Unknown).
	known bool
	// ready: the node autoscaler has resolved the buffer's pods (bufferReadyCondition True).
	ready bool
	// message says why it does not, for the log and the event.
	message string
}

// bufferAckOf reads a buffer's status back, at now.
func bufferAckOf(u *unstructured.Unstructured, now time.Time) bufferAck {
	ref := u.GetNamespace() + "/" + u.GetName()
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != bufferReadyCondition {
			continue
		}
		switch m["status"] {
		case string(metav1.ConditionTrue):
			return bufferAck{known: true, ready: true}
		case string(metav1.ConditionFalse):
			return bufferAck{known: true, message: fmt.Sprintf("the node autoscaler cannot resolve the pods of CapacityBuffer %s: %s: %v: %v",
				ref, bufferReadyCondition, m["reason"], m["message"])}
		}
		return bufferAck{}
	}
	replicas, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if replicas == 0 || now.Sub(u.GetCreationTimestamp().Time) < bufferUnreadAfter {
		return bufferAck{}
	}
	// The message is the same at every tick: it is sent once per change.
	return bufferAck{known: true, message: fmt.Sprintf("no node autoscaler has read CapacityBuffer %s (no %s condition within %s of its creation): "+
		"the nodes of a surge are asked for by its Pending pods only; turn on the node autoscaler's CapacityBuffer support (Karpenter: --feature-gates=CapacityBuffer=true)",
		ref, bufferReadyCondition, bufferUnreadAfter)}
}

// reportBufferAck sets prescale_capacity_buffer_ready from what the node autoscaler made of
// the pass's buffer and, once per change of its message, says why it does not read it or
// cannot resolve its pods (a CapacityBufferNotReady event on the target and a log line).
func (r *pass) reportBufferAck(ctx context.Context, ack bufferAck) {
	if !ack.known {
		return
	}
	gauge := r.c.deps.Metrics.BufferReady.WithLabelValues(r.p.Name)
	if ack.ready {
		gauge.Set(1)
		r.t.forgetCondition(condBuffer)
		return
	}
	gauge.Set(0)
	if r.t.setCondition(condBuffer, ack.message) {
		r.c.writer.Event(r.obs.ref, corev1.EventTypeWarning, ReasonCapacityBufferNotReady, ack.message)
		klog.FromContext(ctx).Info("CapacityBuffer not resolved by the node autoscaler", "buffer", klog.KRef(r.p.Target.Namespace, bufferName(r.p.Name)),
			"reason", ack.message)
	}
}

// pruneBuffers deletes the CapacityBuffers of this installation's that no policy with a forecast
// stands for: its policy left the configuration, lost its forecast, or moved to another
// target namespace. The buffers of the others are sizeBuffer's.
func (c *Controller) pruneBuffers(ctx context.Context, policies []policy.Policy) {
	if c.buffers == nil || !c.buffersSync() || c.dryRun.Load() {
		return
	}
	keep := map[string]bool{}
	for i := range policies {
		if p := &policies[i]; forecasting(p) != nil {
			keep[p.Target.Namespace+"/"+bufferName(p.Name)] = true
		}
	}
	objs, err := c.buffers.List(c.bufferSelector())
	if err != nil {
		return // a lister does not fail
	}
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithTimeout(ctx, c.opts.Interval)
	defer cancel()
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok || keep[u.GetNamespace()+"/"+u.GetName()] || u.GetDeletionTimestamp() != nil {
			continue
		}
		if !c.Leading() || ctx.Err() != nil {
			return
		}
		err := c.writer.DeleteBuffer(ctx, u.GetNamespace(), u.GetName())
		if err != nil && !apierrors.IsNotFound(err) {
			c.deps.Metrics.Errors.WithLabelValues("buffer_write").Inc()
			logger.Error(err, "Deleting a CapacityBuffer whose policy is gone", "buffer", klog.KObj(u))
			continue
		}
		c.deps.Metrics.BufferReplicas.DeleteLabelValues(u.GetLabels()[policyLabel])
		c.deps.Metrics.BufferReady.DeleteLabelValues(u.GetLabels()[policyLabel])
		logger.Info("Deleted the CapacityBuffer of a policy that is gone or has no forecast", "buffer", klog.KObj(u),
			"policy", u.GetLabels()[policyLabel])
	}
}
