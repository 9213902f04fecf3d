package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/policy"
)

// DecisionAnnotation holds the last decision record on the target, so that `kubectl
// describe` answers "why".
const DecisionAnnotation = "prescale.io/decision"

// maxAnnotation bounds the decision annotation.
const maxAnnotation = 4096

var labelsEverything = labels.Everything()

// target is what the controller remembers of one policy between ticks.
type target struct {
	ref        policy.TargetRef
	hist       policy.History // the policy's engine
	shadow     policy.History // the HPA-equivalent engine: no forecast, no capacity cap
	uid        types.UID
	lastSpec   int32
	standby    bool // the last tick was a hot standby's
	seen       bool
	lastTick   time.Time
	annotation string
	conditions map[string]string // event reason -> last message, so that each is sent on change
	dryRun     bool              // this tick's dry-run setting: no writes, no events
	score      scorecard
	// fc is the forecast's state, nil until the policy forecasts; startup measures the
	// pods' start-up for horizon: auto.
	fc      *predictor
	startup startups
	// mu guards what Status and ForecastReplicas read while a tick runs.
	mu         sync.Mutex
	last       policy.Decision
	forecast   *ForecastStatus // the forecast's status at the last tick, nil without one
	lastShadow int32
	lastHPA    *int32
}

// observed is one tick's view of a target.
type observed struct {
	in    policy.Observation
	scale *autoscalingv1.Scale
	gr    schema.GroupResource
	gvr   schema.GroupVersionResource
	ref   *corev1.ObjectReference
	fit   *Fit
	// load is the forecast's load sample, for a policy that forecasts.
	load policy.Sample
}

// sync runs one policy for one tick: observe, decide, act.
func (c *Controller) sync(ctx context.Context, p *policy.Policy, t *target, now time.Time) {
	logger := klog.FromContext(ctx).WithValues("policy", p.Name, "target", p.Target.String())
	obs, err := c.observe(ctx, p, t, now)
	if err != nil {
		c.targetFailed(ctx, p, t, err)
		return
	}
	t.forgetCondition("TargetMissing")
	dryRun := c.opts.DryRun
	if p.DryRun != nil {
		dryRun = *p.DryRun
	}
	t.dryRun = dryRun
	// A hot standby's tick (not leading) decides and reports, and writes nothing.
	leading := c.Leading()
	cur := obs.in.SpecReplicas
	if (dryRun || !leading || t.standby) && t.seen && t.lastSpec != cur {
		// Someone else wrote the scale since the last tick: an HPA beside a dry-run, or
		// the leader seen by a hot standby (up to its first tick as leader): the rate
		// policies count that change as the writer's own history would.
		t.hist = t.hist.RecordScale(p, t.lastSpec, cur, now)
		t.shadow = t.shadow.RecordScale(p, t.lastSpec, cur, now)
	}

	dec, shadow, fst := c.decide(ctx, p, t, &obs, now)

	kv := []any{"current", cur, "desired", dec.DesiredReplicas, "reason", dec.Reason, "metric", dec.Metric, "proposal", dec.Proposal,
		"hpaEquivalent", shadow.DesiredReplicas, "dryRun", dryRun}
	if fst != nil {
		kv = append(kv, "forecast", dec.Forecast, "horizon", time.Duration(fst.HorizonSeconds*float64(time.Second)),
			"startupMeasured", fst.StartupMeasured, "loadError", fst.LoadError)
	}
	logger.V(2).Info("Decided", kv...)

	if !dryRun && leading && dec.DesiredReplicas != cur {
		c.rescale(ctx, p, t, obs, dec, now)
	}
	if !dryRun && leading {
		c.annotate(ctx, p, t, obs, dec, fst)
	}
	c.report(ctx, p, t, obs, dec, shadow, leading, now)
	if fst != nil {
		c.reportForecast(p, t.fc, dec, fst)
	}
	t.mu.Lock()
	t.last, t.forecast = dec, fst
	t.mu.Unlock()
	t.lastSpec, t.seen, t.lastTick, t.standby = cur, true, now, !leading
}

// decide runs the policy's engine, with its forecast, and the HPA-equivalent engine (no
// forecast, no capacity cap). The forecast's Predictor observes the load, its forecast
// joins the metrics in Decide, and Learn sees the decision, as the backtest drives it. fst
// is the forecast's status, nil for a policy without a forecast.
func (c *Controller) decide(ctx context.Context, p *policy.Policy, t *target, obs *observed, now time.Time) (dec, shadow policy.Decision, fst *ForecastStatus) {
	var load float64
	var loadOK bool
	if forecasting(p) != nil {
		c.ensurePredictor(ctx, p, t, obs, now)
		c.maybeRefit(ctx, p, t, obs, now)
		fst, load, loadOK = c.observeForecast(ctx, p, t, obs, now)
	} else if t.fc != nil {
		t.fc = nil
		c.deps.Metrics.forgetForecast(p.Name)
	}
	dec, t.hist = policy.Decide(p, obs.in, t.hist, now)
	if t.fc != nil && t.fc.pred != nil {
		t.fc.pred.Learn(dec, load, loadOK)
	}
	if fst != nil {
		fst.ForecastResult = dec.Forecast
	}
	shadowIn := obs.in
	shadowIn.Capacity, shadowIn.Forecast, shadowIn.LoadErr = nil, nil, nil
	shadow, t.shadow = policy.Decide(p, shadowIn, t.shadow, now)
	return dec, shadow, fst
}

// observe reads the target's scale, pods, metrics and the GPUs left.
func (c *Controller) observe(ctx context.Context, p *policy.Policy, t *target, now time.Time) (observed, error) {
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
	o.scale, err = c.deps.Scales.Scales(p.Target.Namespace).Get(ctx, o.gr, p.Target.Name, metav1.GetOptions{})
	if err != nil {
		return o, fmt.Errorf("get scale of %s: %w", p.Target, err)
	}
	o.ref = &corev1.ObjectReference{Kind: p.Target.Kind, APIVersion: p.Target.APIVersion, Namespace: p.Target.Namespace,
		Name: p.Target.Name, UID: o.scale.UID}
	if t.uid != "" && t.uid != o.scale.UID {
		// Deleted and recreated: the old recommendations describe another object.
		c.event(ctx, t, o.ref, corev1.EventTypeNormal, "TargetRecreated", "",
			fmt.Sprintf("%s was recreated (uid %s, was %s): decision history reset", p.Target, o.scale.UID, t.uid))
		t.hist, t.shadow, t.seen = policy.History{}, policy.History{}, false
	}
	t.uid = o.scale.UID
	if o.scale.Status.Selector == "" {
		return o, fmt.Errorf("scale of %s has no status.selector", p.Target)
	}
	sel, err := labels.Parse(o.scale.Status.Selector)
	if err != nil {
		return o, fmt.Errorf("parse selector %q of %s: %w", o.scale.Status.Selector, p.Target, err)
	}
	pods, err := c.pods.Pods(p.Target.Namespace).List(sel)
	if err != nil {
		return o, fmt.Errorf("list pods of %s: %w", p.Target, err)
	}
	queries := make([]string, len(p.Metrics), len(p.Metrics)+1)
	for i := range p.Metrics {
		queries[i] = p.Metrics[i].Query
	}
	if f := forecasting(p); f != nil {
		queries = append(queries, f.Load.Query)
		t.startup.observe(pods)
	}
	samples := c.queryAll(ctx, queries, now)
	o.in = policy.Observation{
		SpecReplicas:   o.scale.Spec.Replicas,
		StatusReplicas: o.scale.Status.Replicas,
		Pods:           make([]policy.Pod, len(pods)),
		Metrics:        samples[:len(p.Metrics)],
	}
	if len(samples) > len(p.Metrics) {
		o.load = samples[len(p.Metrics)]
	}
	placed := int32(0)
	var template *corev1.Pod
	for i, pod := range pods {
		o.in.Pods[i] = policy.Pod{Name: pod.Name, Phase: policy.PodPhase(pod.Status.Phase), Ready: podReady(pod),
			Deleting: pod.DeletionTimestamp != nil}
		if pod.DeletionTimestamp == nil {
			if template == nil {
				template = pod
			}
			if pod.Spec.NodeName != "" {
				placed++
			}
		}
	}
	if c.opts.Capacity.Mode == CapacityCap && template != nil {
		nodes, err := c.nodes.List(labelsEverything)
		if err != nil {
			return o, fmt.Errorf("list nodes: %w", err)
		}
		all, err := c.pods.List(labelsEverything)
		if err != nil {
			return o, fmt.Errorf("list pods: %w", err)
		}
		if fit, ok := fitPods(template, nodes, all, corev1.ResourceName(c.opts.Capacity.Resource)); ok {
			o.fit = &fit
			capacity := placed + fit.Pods + c.opts.Capacity.PendingAllowance
			o.in.Capacity = &capacity
		}
	}
	return o, nil
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// queryAll runs a policy's queries concurrently, within the controller-wide bound.
func (c *Controller) queryAll(ctx context.Context, queries []string, now time.Time) []policy.Sample {
	out := make([]policy.Sample, len(queries))
	done := make(chan struct{}, len(queries))
	for i := range queries {
		go func() {
			defer func() { done <- struct{}{} }()
			c.querySlots <- struct{}{}
			defer func() { <-c.querySlots }()
			start := time.Now()
			s, err := c.deps.Source.Sample(ctx, queries[i], now, c.opts.Staleness)
			c.deps.Metrics.QueryDuration.Observe(time.Since(start).Seconds())
			c.deps.Metrics.Queries.Inc()
			if err != nil {
				c.deps.Metrics.Errors.WithLabelValues(c.deps.ErrorKind(err)).Inc()
				s = policy.Sample{Err: err}
			}
			out[i] = s
		}()
	}
	for range queries {
		<-done
	}
	return out
}

// rescale writes the decision to the scale subresource, and records the change for the rate
// policies only once it is written. A conflict means that another writer changed the scale
// since this tick read it: the decision, made from the replicas read, is dropped (not written
// over that change, not recorded, no event), and the next tick decides from the new scale.
func (c *Controller) rescale(ctx context.Context, p *policy.Policy, t *target, o observed, dec policy.Decision, now time.Time) {
	cur := o.in.SpecReplicas
	err := c.writeScale(ctx, p, o, dec.DesiredReplicas)
	if apierrors.IsConflict(err) {
		c.deps.Metrics.Scales.WithLabelValues(p.Name, "conflict").Inc()
		klog.FromContext(ctx).Info("Scale changed by another writer since it was read; deciding again at the next tick",
			"policy", p.Name, "target", p.Target.String(), "read", cur, "desired", dec.DesiredReplicas)
		return
	}
	if err != nil {
		c.deps.Metrics.Scales.WithLabelValues(p.Name, "error").Inc()
		c.deps.Metrics.Errors.WithLabelValues("scale_write").Inc()
		c.event(ctx, t, o.ref, corev1.EventTypeWarning, "FailedRescale", "",
			fmt.Sprintf("New size: %d; reason: %s; error: %v", dec.DesiredReplicas, describe(dec), err))
		klog.FromContext(ctx).Error(err, "Rescale failed", "policy", p.Name, "target", p.Target.String(), "from", cur, "to", dec.DesiredReplicas)
		return
	}
	t.hist = t.hist.RecordScale(p, cur, dec.DesiredReplicas, now)
	t.shadow = t.shadow.RecordScale(p, cur, dec.DesiredReplicas, now)
	c.deps.Metrics.Scales.WithLabelValues(p.Name, "ok").Inc()
	c.event(ctx, t, o.ref, corev1.EventTypeNormal, "SuccessfulRescale", "",
		fmt.Sprintf("New size: %d; reason: %s", dec.DesiredReplicas, describe(dec)))
	klog.FromContext(ctx).Info("Rescaled workload", "policy", p.Name, "target", p.Target.String(),
		"from", cur, "to", dec.DesiredReplicas, "reason", dec.Reason, "metric", dec.Metric)
}

var errNotLeader = errors.New("not the leader")

// writeScale updates spec.replicas through the scale subresource, under this instance's
// field manager, once. The update carries the resourceVersion read this tick, so that a
// scale changed since fails with a Conflict (apierrors.IsConflict) instead of being
// overwritten with a decision made from the old replicas. It writes only while leading.
func (c *Controller) writeScale(ctx context.Context, p *policy.Policy, o observed, desired int32) error {
	if !c.Leading() || ctx.Err() != nil {
		return errNotLeader
	}
	next := o.scale.DeepCopy()
	next.Spec.Replicas = desired
	if _, err := c.deps.Scales.Scales(p.Target.Namespace).Update(ctx, o.gr, next, metav1.UpdateOptions{FieldManager: c.opts.Identity}); err != nil {
		return fmt.Errorf("update scale of %s to %d: %w", p.Target, desired, err)
	}
	return nil
}

// annotate writes the decision record on the target when it changed (ignoring its time).
func (c *Controller) annotate(ctx context.Context, p *policy.Policy, t *target, o observed, dec policy.Decision, fst *ForecastStatus) {
	text := annotationFor(dec, fst)
	if text == t.annotation || !c.Leading() {
		return
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{DecisionAnnotation: text}}})
	if err != nil {
		return
	}
	_, err = c.deps.Dynamic.Resource(o.gvr).Namespace(p.Target.Namespace).Patch(ctx, p.Target.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: c.opts.Identity})
	if err != nil {
		c.deps.Metrics.Errors.WithLabelValues("annotation_write").Inc()
		klog.FromContext(ctx).V(2).Info("Annotating the decision failed", "policy", p.Name, "err", err)
		return
	}
	t.annotation = text
}

// annotationFor renders a decision and its forecast's status compactly, within
// maxAnnotation bytes: the metrics are dropped from the end until it fits.
func annotationFor(dec policy.Decision, fst *ForecastStatus) string {
	type metric struct {
		Name     string  `json:"name"`
		Value    any     `json:"value,omitempty"`
		Target   float64 `json:"target"`
		Proposal int32   `json:"proposal,omitempty"`
		Error    string  `json:"error,omitempty"`
	}
	type record struct {
		Current  int32           `json:"current"`
		Desired  int32           `json:"desired"`
		Reason   policy.Reason   `json:"reason"`
		Metric   string          `json:"metric,omitempty"`
		Proposal int32           `json:"proposal"`
		Clamps   []policy.Clamp  `json:"clamps,omitempty"`
		Metrics  []metric        `json:"metrics,omitempty"`
		Forecast *ForecastStatus `json:"forecast,omitempty"`
	}
	r := record{Current: dec.CurrentReplicas, Desired: dec.DesiredReplicas, Reason: dec.Reason, Metric: dec.Metric,
		Proposal: dec.Proposal, Clamps: dec.Clamps, Forecast: fst}
	for _, m := range dec.Metrics {
		mm := metric{Name: m.Name, Target: m.Target, Error: truncate(m.Error, 200)}
		if m.Error == "" {
			mm.Value, mm.Proposal = m.Value, m.Proposal
		}
		r.Metrics = append(r.Metrics, mm)
	}
	for {
		b, err := json.Marshal(r)
		if err == nil && (len(b) <= maxAnnotation || len(r.Metrics) == 0) {
			return string(b)
		}
		r.Metrics = r.Metrics[:len(r.Metrics)-1]
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// describe names a decision's reason for an event: the reason, the metric, and the clamps.
func describe(dec policy.Decision) string {
	var b strings.Builder
	b.WriteString(string(dec.Reason))
	if dec.Metric != "" {
		fmt.Fprintf(&b, " (metric %s proposed %d)", dec.Metric, dec.Proposal)
	}
	for _, cl := range dec.Clamps {
		fmt.Fprintf(&b, "; %s %d->%d", cl.Reason, cl.From, cl.To)
	}
	return b.String()
}

// targetFailed reports a tick that could not observe the target.
func (c *Controller) targetFailed(ctx context.Context, p *policy.Policy, t *target, err error) {
	kind := "target"
	if apierrors.IsNotFound(err) {
		kind = "target_not_found"
		if t.setCondition("TargetMissing", err.Error()) {
			klog.FromContext(ctx).Info("Target not found; holding its history until it returns", "policy", p.Name, "target", p.Target.String())
		}
	} else {
		klog.FromContext(ctx).Error(err, "Observing the target failed", "policy", p.Name)
	}
	c.deps.Metrics.Errors.WithLabelValues(kind).Inc()
}

// event records a Kubernetes event on the target, while leading. With a key, the event is a
// condition: sent only when its message changes, until forgetCondition(key).
func (c *Controller) event(ctx context.Context, t *target, ref *corev1.ObjectReference, typ, reason, key, msg string) {
	if !c.Leading() || t.dryRun {
		return
	}
	if key != "" && !t.setCondition(key, msg) {
		return
	}
	c.deps.Recorder.Event(ref, typ, reason, msg)
}

// setCondition remembers the last message under key and reports whether it changed.
func (t *target) setCondition(key, msg string) bool {
	if t.conditions == nil {
		t.conditions = map[string]string{}
	}
	if t.conditions[key] == msg {
		return false
	}
	t.conditions[key] = msg
	return true
}

func (t *target) forgetCondition(reason string) { delete(t.conditions, reason) }

func apiGroup(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return apiVersion
	}
	return gv.Group
}
