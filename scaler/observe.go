package scaler

import (
	"context"
	"fmt"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/prescale/prescale/policy"
)

var labelsEverything = labels.Everything()

// observed is one tick's view of a target, from the apiserver (the scale) and the
// informers' caches (pods, nodes).
type observed struct {
	in    policy.Observation // without the metrics: the query phase adds them
	scale *autoscalingv1.Scale
	gr    schema.GroupResource
	gvr   schema.GroupVersionResource
	ref   *corev1.ObjectReference
	// template is what a new pod of the target requests, and where it may go (read with
	// capacity.mode cap only): the workload's current spec.template (podTemplate), or, for
	// a kind without one, its newest pod not being deleted; nil when neither exists.
	// templateErr says why the workload could not be read. placed counts the target's pods
	// bound to a node.
	template    *corev1.Pod
	templateErr error
	placed      int32
	placedOn    map[string]int32 // those pods by node name
	// recreated is the UID the target had before it was deleted and recreated, empty
	// otherwise.
	recreated string
	// selector is the scale's status.selector, and pods every pod it selects (from the
	// informer's cache: read only), for the check of selectors shared between policies.
	selector labels.Selector
	pods     []*corev1.Pod
}

// observe reads the target's scale and its pods. It writes nothing.
func (c *Controller) observeTarget(ctx context.Context, p *policy.Policy, t *policyState) (observed, error) {
	var o observed
	gv, err := schema.ParseGroupVersion(p.Target.APIVersion)
	if err != nil {
		return o, fmt.Errorf("parse apiVersion %q: %w", p.Target.APIVersion, err)
	}
	mapping, err := c.deps.Mapper.RESTMapping(gv.WithKind(p.Target.Kind).GroupKind(), gv.Version)
	if err != nil {
		c.deps.Mapper.Reset()
		return o, fmt.Errorf("map %s to a resource: %w", p.Target, err)
	}
	o.gvr, o.gr = mapping.Resource, mapping.Resource.GroupResource()
	var cached bool
	if o.scale, cached, err = c.cachedScale(o.gvr, p.Target); !cached {
		// From the API server's watch cache (resourceVersion "0"), as an informer reads,
		// not a quorum read of etcd (docs/performance.md). Either way the scale is at most
		// as stale as a watch; the write carries its resourceVersion, so a scale changed
		// since is a Conflict, never overwritten.
		o.scale, err = c.deps.Scales.Scales(p.Target.Namespace).Get(ctx, o.gr, p.Target.Name, metav1.GetOptions{ResourceVersion: "0"})
	}
	if err != nil {
		return o, fmt.Errorf("get scale of %s: %w", p.Target, err)
	}
	o.ref = &corev1.ObjectReference{Kind: p.Target.Kind, APIVersion: p.Target.APIVersion, Namespace: p.Target.Namespace,
		Name: p.Target.Name, UID: o.scale.UID}
	if t.uid != "" && t.uid != o.scale.UID {
		o.recreated = string(t.uid)
	}
	t.uid = o.scale.UID
	if o.scale.Status.Selector == "" {
		return o, fmt.Errorf("scale of %s has no status.selector", p.Target)
	}
	sel, err := labels.Parse(o.scale.Status.Selector)
	if err != nil {
		return o, fmt.Errorf("parse selector %q of %s: %w", o.scale.Status.Selector, p.Target, err)
	}
	pods, err := selectPods(c.podIndex, p.Target.Namespace, sel)
	if err != nil {
		return o, fmt.Errorf("list pods of %s: %w", p.Target, err)
	}
	o.selector, o.pods, t.selector = sel, pods, sel
	if forecasting(p) != nil {
		t.startup.observe(pods)
	}
	var newest *corev1.Pod
	o.in = policy.Observation{
		SpecReplicas:   o.scale.Spec.Replicas,
		StatusReplicas: o.scale.Status.Replicas,
		Pods:           make([]policy.Pod, len(pods)),
	}
	for i, pod := range pods {
		o.in.Pods[i] = policy.Pod{Name: pod.Name, Phase: policy.PodPhase(pod.Status.Phase), Ready: podReady(pod),
			Deleting: pod.DeletionTimestamp != nil}
		if pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			if newest == nil || newer(pod, newest) {
				newest = pod
			}
			if pod.Spec.NodeName != "" {
				o.placed++
				if o.placedOn == nil {
					o.placedOn = map[string]int32{}
				}
				o.placedOn[pod.Spec.NodeName]++
			}
		}
	}
	if c.opts.Capacity.Mode == CapacityCap {
		o.template, o.templateErr = c.podTemplate(ctx, p, t, &o, newest)
	}
	return o, nil
}

// newer reports whether pod a was created after b (by name at the same second).
func newer(a, b *corev1.Pod) bool {
	if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
		return c > 0
	}
	return a.Name > b.Name
}

// cachedScale returns the scale of an apps/v1 Deployment or StatefulSet from the informers'
// caches (Options.WatchTargets), as the API server's scale subresource renders it: cached
// false for any other resource, which is read through its scale subresource.
func (c *Controller) cachedScale(gvr schema.GroupVersionResource, ref policy.TargetRef) (s *autoscalingv1.Scale, cached bool, err error) {
	if c.deployments == nil || gvr.Group != "apps" || gvr.Version != "v1" {
		return nil, false, nil
	}
	var meta metav1.ObjectMeta
	var replicas *int32
	var current int32
	var selector *metav1.LabelSelector
	switch gvr.Resource {
	case "deployments":
		d, err := c.deployments.Deployments(ref.Namespace).Get(ref.Name)
		if err != nil {
			return nil, true, fmt.Errorf("get %s from the cache: %w", ref, err)
		}
		meta, replicas, current, selector = d.ObjectMeta, d.Spec.Replicas, d.Status.Replicas, d.Spec.Selector
	case "statefulsets":
		st, err := c.statefulsets.StatefulSets(ref.Namespace).Get(ref.Name)
		if err != nil {
			return nil, true, fmt.Errorf("get %s from the cache: %w", ref, err)
		}
		meta, replicas, current, selector = st.ObjectMeta, st.Spec.Replicas, st.Status.Replicas, st.Spec.Selector
	default:
		return nil, false, nil
	}
	// As the API server's scale of either: the selector rendered from the object's, the
	// replicas defaulted to 1.
	sel, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, true, fmt.Errorf("selector of %s: %w", ref, err)
	}
	spec := int32(1)
	if replicas != nil {
		spec = *replicas
	}
	s = &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Name: meta.Name, Namespace: meta.Namespace, UID: meta.UID, ResourceVersion: meta.ResourceVersion,
			CreationTimestamp: meta.CreationTimestamp},
		Spec:   autoscalingv1.ScaleSpec{Replicas: spec},
		Status: autoscalingv1.ScaleStatus{Replicas: current, Selector: sel.String()},
	}
	return s, true, nil
}

// podTemplate returns what a new pod of the target requests, and where it may go: a pod
// made of the workload's current spec.template, so that during a rollout it is the new
// revision's, never an old ReplicaSet's pod. A kind without spec.template (a custom
// resource of another shape, such as a LeaderWorkerSet) falls back to newest, its newest
// pod (nil for none: it is then not arbitrated). A workload that cannot be read is an
// error: what its pods request is unknown.
func (c *Controller) podTemplate(ctx context.Context, p *policy.Policy, t *policyState, o *observed, newest *corev1.Pod) (*corev1.Pod, error) {
	tmpl, found, err := c.cachedTemplate(o.gvr, p.Target)
	if !found && err == nil {
		tmpl, found, err = c.workloadTemplate(ctx, p, t, o)
	}
	switch {
	case err != nil:
		return nil, err
	case !found:
		return newest, nil
	}
	pod := &corev1.Pod{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
	pod.Namespace, pod.Name = p.Target.Namespace, p.Target.Name+" (template)"
	return pod, nil
}

// cachedTemplate returns the pod template of an apps/v1 Deployment or StatefulSet from the
// informers' caches (Options.WatchTargets; stripCached keeps what the allocation reads of
// it): found false for any other resource.
func (c *Controller) cachedTemplate(gvr schema.GroupVersionResource, ref policy.TargetRef) (tmpl *corev1.PodTemplateSpec, found bool, err error) {
	if c.deployments == nil || gvr.Group != "apps" || gvr.Version != "v1" {
		return nil, false, nil
	}
	switch gvr.Resource {
	case "deployments":
		d, err := c.deployments.Deployments(ref.Namespace).Get(ref.Name)
		if err != nil {
			return nil, false, fmt.Errorf("get %s from the cache for its pod template: %w", ref, err)
		}
		return &d.Spec.Template, true, nil
	case "statefulsets":
		st, err := c.statefulsets.StatefulSets(ref.Namespace).Get(ref.Name)
		if err != nil {
			return nil, false, fmt.Errorf("get %s from the cache for its pod template: %w", ref, err)
		}
		return &st.Spec.Template, true, nil
	}
	return nil, false, nil
}

// workloadTemplate reads the workload's spec.template through the dynamic client: found
// false when it has none. The scale's resourceVersion is the workload's, so the template
// is read once per version of the workload and kept in t.
func (c *Controller) workloadTemplate(ctx context.Context, p *policy.Policy, t *policyState, o *observed) (*corev1.PodTemplateSpec, bool, error) {
	if rv := o.scale.ResourceVersion; rv != "" && t.templateVersion == rv {
		return t.template, t.template != nil, nil
	}
	u, err := c.deps.Dynamic.Resource(o.gvr).Namespace(p.Target.Namespace).Get(ctx, p.Target.Name, metav1.GetOptions{})
	if err != nil {
		return nil, false, fmt.Errorf("get %s for its pod template: %w", p.Target, err)
	}
	raw, found, err := unstructured.NestedMap(u.Object, "spec", "template")
	if err != nil {
		return nil, false, fmt.Errorf("read spec.template of %s: %w", p.Target, err)
	}
	var tmpl *corev1.PodTemplateSpec
	if found {
		tmpl = &corev1.PodTemplateSpec{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, tmpl); err != nil {
			return nil, false, fmt.Errorf("read spec.template of %s: %w", p.Target, err)
		}
	}
	// Kept under the version the scale was read at: a later write to the workload changes
	// it, and the template is read again.
	t.template, t.templateVersion = tmpl, o.scale.ResourceVersion
	return tmpl, found, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// query samples the policy's metrics, for a forecast its load, for an objective its
// latency (and its waiting requests, with objective.waiting), and for scaleToZero its
// activation signal, concurrently within the controller-wide bound. A failed query is a
// sample with Err (missing), never zero.
func (c *Controller) query(ctx context.Context, p *policy.Policy, now time.Time) (metrics []policy.Sample, load, latency, waiting, activation *policy.Sample) {
	queries := make([]string, len(p.Metrics), len(p.Metrics)+4)
	for i := range p.Metrics {
		queries[i] = p.Metrics[i].Query
	}
	loadAt, latencyAt, waitingAt, activationAt := -1, -1, -1, -1
	if forecasting(p) != nil {
		loadAt = len(queries)
		queries = append(queries, p.Forecast.Load.Query)
	}
	if p.Objective != nil {
		latencyAt = len(queries)
		queries = append(queries, p.Objective.Query)
		if p.Objective.Waiting != "" {
			waitingAt = len(queries)
			queries = append(queries, p.Objective.Waiting)
		}
	}
	if z := p.ScaleToZero; z != nil {
		activationAt = len(queries)
		queries = append(queries, z.Activation.Query)
	}
	// names label each query in prescale_query_warnings_total: the metric's name, or the
	// forecast's load or the objective's latency and waiting requests.
	names := make([]string, len(queries))
	for i := range p.Metrics {
		names[i] = p.Metrics[i].Name
	}
	if loadAt >= 0 {
		names[loadAt] = warningsForecast
	}
	if latencyAt >= 0 {
		names[latencyAt] = warningsObjective
	}
	if waitingAt >= 0 {
		names[waitingAt] = warningsObjective
	}
	if activationAt >= 0 {
		names[activationAt] = policy.ActivationMetric
	}
	out := make([]policy.Sample, len(queries))
	done := make(chan struct{}, len(queries))
	for i := range queries {
		go func() {
			defer func() { done <- struct{}{} }()
			c.querySlots <- struct{}{}
			defer func() { <-c.querySlots }()
			start := time.Now()
			var s policy.Sample
			var err error
			if i == latencyAt {
				s, err = c.sampleLatency(ctx, queries[i], now)
			} else {
				s, err = c.deps.Source.Sample(ctx, queries[i], now, c.opts.Staleness)
			}
			c.deps.Metrics.QueryDuration.Observe(time.Since(start).Seconds())
			c.deps.Metrics.Queries.Inc()
			if err != nil {
				c.deps.Metrics.Errors.WithLabelValues(c.deps.ErrorKind(err)).Inc()
				s = policy.Sample{Err: err}
			}
			if len(s.Warnings) > 0 {
				c.deps.Metrics.QueryWarnings.WithLabelValues(p.Name, names[i]).Inc()
			}
			out[i] = s
		}()
	}
	for range queries {
		<-done
	}
	if loadAt >= 0 {
		load = &out[loadAt]
	}
	if latencyAt >= 0 {
		latency = &out[latencyAt]
	}
	if waitingAt >= 0 {
		waiting = &out[waitingAt]
	}
	if activationAt >= 0 {
		activation = &out[activationAt]
	}
	return out[:len(p.Metrics)], load, latency, waiting, activation
}

// sampleLatency samples an objective's latency: through the LatencySource when there is
// one (+Inf is a value), else as a metric (the engine then rejects a result per pod).
func (c *Controller) sampleLatency(ctx context.Context, query string, now time.Time) (policy.Sample, error) {
	if c.deps.Latency == nil {
		return c.deps.Source.Sample(ctx, query, now, c.opts.Staleness)
	}
	v, warnings, err := c.deps.Latency.Latency(ctx, query, now, c.opts.Staleness)
	return policy.Sample{Value: v, Warnings: warnings}, err
}
