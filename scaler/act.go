package scaler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// DecisionAnnotation holds the last decision record on the target, so that `kubectl
// describe` answers "why".
const DecisionAnnotation = "prescale.io/decision"

// maxAnnotation bounds the decision annotation.
const maxAnnotation = 4096

// Writer makes every write the controller makes to the cluster, as KEDA's ScaleExecutor
// does: the act phase calls it only while this instance may write (it leads, the lease of
// the tick is held, and the policy is not in dry-run).
type Writer interface {
	// Scale sets spec.replicas through the target's scale subresource, on top of s, the
	// scale read this tick: a conflict means that another writer changed it since.
	Scale(ctx context.Context, gr schema.GroupResource, s *autoscalingv1.Scale, replicas int32) error
	// Annotate sets the decision annotation on the target.
	Annotate(ctx context.Context, gvr schema.GroupVersionResource, ref policy.TargetRef, text string) error
	// Event records an event on the target.
	Event(ref *corev1.ObjectReference, eventType, reason, message string)
	// Buffer applies a CapacityBuffer of prescale's (bufferFor), taking its fields over.
	Buffer(ctx context.Context, u *unstructured.Unstructured) error
	// DeleteBuffer deletes a CapacityBuffer of prescale's.
	DeleteBuffer(ctx context.Context, namespace, name string) error
}

// kubeWriter is the Writer of a cluster: the scale subresource, a merge patch of the
// annotation, and the event recorder, each under the instance's field manager.
type kubeWriter struct {
	scales   scale.ScalesGetter
	dynamic  dynamic.Interface
	recorder record.EventRecorder
	manager  string
}

func (w kubeWriter) Scale(ctx context.Context, gr schema.GroupResource, s *autoscalingv1.Scale, replicas int32) error {
	next := s.DeepCopy()
	next.Spec.Replicas = replicas
	_, err := w.scales.Scales(s.Namespace).Update(ctx, gr, next, metav1.UpdateOptions{FieldManager: w.manager})
	if err != nil {
		return fmt.Errorf("update scale of %s/%s to %d: %w", s.Namespace, s.Name, replicas, err)
	}
	return nil
}

func (w kubeWriter) Annotate(ctx context.Context, gvr schema.GroupVersionResource, ref policy.TargetRef, text string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{DecisionAnnotation: text}}})
	if err != nil {
		return fmt.Errorf("encode the annotation patch: %w", err)
	}
	_, err = w.dynamic.Resource(gvr).Namespace(ref.Namespace).Patch(ctx, ref.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: w.manager})
	if err != nil {
		return fmt.Errorf("annotate %s: %w", ref, err)
	}
	return nil
}

func (w kubeWriter) Event(ref *corev1.ObjectReference, eventType, reason, message string) {
	w.recorder.Event(ref, eventType, reason, message)
}

func (w kubeWriter) Buffer(ctx context.Context, u *unstructured.Unstructured) error {
	// One field manager for every instance: a buffer's fields are the installation's, not
	// a process's, so that a new leader's apply replaces the last one's (an owner reference
	// to a recreated target included) rather than adding to it.
	_, err := w.dynamic.Resource(bufferGVR).Namespace(u.GetNamespace()).Apply(ctx, u.GetName(), u,
		metav1.ApplyOptions{FieldManager: bufferManager, Force: true})
	if err != nil {
		return fmt.Errorf("apply CapacityBuffer %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return nil
}

func (w kubeWriter) DeleteBuffer(ctx context.Context, namespace, name string) error {
	if err := w.dynamic.Resource(bufferGVR).Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete CapacityBuffer %s/%s: %w", namespace, name, err)
	}
	return nil
}

// errNotLeader: the lease of the tick was lost before a write.
var errNotLeader = errors.New("not the leader")

// mayWrite checks, right before a write of kind, that the sync's context (its deadline,
// and the lease's) lives and that this instance still leads.
func (r *pass) mayWrite(ctx context.Context, kind string) error {
	if err := ctx.Err(); err != nil {
		return failure(kind, fmt.Errorf("write to %s: %w", r.p.Target, err))
	}
	if !r.c.Leading() {
		return failure(kind, fmt.Errorf("write to %s: %w", r.p.Target, errNotLeader))
	}
	// ctx is the lease's (Tick runs a leader's syncs under it): checked above, and carried
	// by the write itself, so a lease lost while the request is in flight cancels it.
	return nil
}

// event records an event while the sync may write. With a key, the event is a condition:
// sent only when its message changes, until forgetCondition(key).
func (r *pass) event(typ, reason, key, msg string) { r.eventOn(typ, reason, key, msg, msg) }

// eventOn is event for a condition whose state is not its whole message: sent only when
// state changes.
func (r *pass) eventOn(typ, reason, key, state, msg string) {
	if !r.writes {
		return
	}
	if key != "" && !r.t.setCondition(key, state) {
		return
	}
	r.c.writer.Event(r.obs.ref, typ, reason, msg)
}

// rescale writes the decision to the scale subresource and records it in the engine once
// it is written. A conflict (another writer changed the scale since it was read) writes
// nothing: the next tick decides again from the fresh scale, never this tick's desired
// replicas computed from the old ones.
func (r *pass) rescale(ctx context.Context, eng *engine.Engine, dec policy.Decision) error {
	cur := r.obs.in.SpecReplicas
	m := r.c.deps.Metrics
	if err := r.mayWrite(ctx, "scale_write"); err != nil {
		return err
	}
	err := r.c.writer.Scale(ctx, r.obs.gr, r.obs.scale, dec.DesiredReplicas)
	switch {
	case apierrors.IsConflict(err):
		m.Scales.WithLabelValues(r.p.Name, "conflict").Inc()
		klog.FromContext(ctx).Info("Scale changed by another writer since it was read; deciding again at the next tick",
			"read", cur, "desired", dec.DesiredReplicas)
		return nil
	case err != nil:
		m.Scales.WithLabelValues(r.p.Name, "error").Inc()
		r.event(corev1.EventTypeWarning, ReasonFailedRescale, "",
			fmt.Sprintf("New size: %d; reason: %s; error: %v", dec.DesiredReplicas, describe(dec), err))
		return failure("scale_write", err)
	}
	eng.Scaled(cur, dec.DesiredReplicas, dec.Time)
	m.Scales.WithLabelValues(r.p.Name, "ok").Inc()
	r.event(corev1.EventTypeNormal, ReasonSuccessfulRescale, "", fmt.Sprintf("New size: %d; reason: %s", dec.DesiredReplicas, describe(dec)))
	klog.FromContext(ctx).Info("Rescaled workload", "from", cur, "to", dec.DesiredReplicas, "reason", dec.Reason, "metric", dec.Metric)
	return nil
}

// recordRefresh is how often a decision record whose gist has not changed is rewritten
// with its new values. The Deployment controller copies a Deployment's annotations to its
// ReplicaSet: every record written is also a ReplicaSet update by the controller-manager,
// whose client is rate-limited (20 requests/s by default), and whose queue the targets'
// scale-ups wait in. A thousand records rewritten at every tick for their metrics' values
// delayed the scale-ups of the soak by minutes (docs/performance.md).
const recordRefresh = 5 * time.Minute

// recordFor returns the decision record to write on the target, or nil when it need not be
// written: it has not changed since the last one written (ignoring its time, and the GPU
// counts of its capacity part: a grant is rewritten when its numbers or its takers change,
// not when the takers' GPUs move by a pod in a surge), or only its values have
// (recordGist), for less than recordRefresh. refresh says the record may wait
// (recordsDue): its gist is unchanged, or it is the target's first since this instance
// started (the target likely carries the last instance's) and a plain hold: no scaling,
// nothing withheld by the GPU allocation.
func (r *pass) recordFor(dec policy.Decision, fst *ForecastStatus, ost *ObjectiveStatus, grant *alloc.Grant) (write func(context.Context) error, refresh bool) {
	zeroed := r.t.eng.ScaledToZero()
	key := annotationFor(dec, fst, ost, grantGist(grant), zeroed)
	if key == r.t.annotation {
		return nil, false
	}
	gist := recordGist(dec, fst, ost, grant, zeroed)
	if gist == r.t.recordGist && dec.Time.Sub(r.t.recordAt) < recordRefresh {
		return nil, false
	}
	// Rendered now, in the tick: the write runs after it.
	text := key
	if grant != nil {
		text = annotationFor(dec, fst, ost, grant, zeroed)
	}
	return func(ctx context.Context) error {
		if err := r.annotate(ctx, text); err != nil {
			return err
		}
		r.t.annotation, r.t.recordGist, r.t.recordAt = key, gist, dec.Time
		return nil
	}, gist == r.t.recordGist || r.t.recordGist == "" && dec.DesiredReplicas == dec.CurrentReplicas && (grant == nil || grant.Granted >= grant.Wanted)
}

// storeZero writes the decision record of a decision that takes the target to zero, with
// the ScaledToZero condition it is about to set, before the scale is written: a restarted
// or new instance reads the condition back (storedRecord), and it must never find the zero
// without it. A record of the target still being written in the background (an older one,
// which would land after this one) holds the scale-to-zero until the next tick (stored
// false), and so does a failed write (with its error): the zero waits, it is never written
// unrecorded. Once stored, the scale to write is the one read after the record (stored
// true), or none if another writer changed the replicas meanwhile (stored false).
func (r *pass) storeZero(ctx context.Context, dec policy.Decision, fst *ForecastStatus, ost *ObjectiveStatus, grant *alloc.Grant) (stored bool, err error) {
	if !r.t.recordBusy.CompareAndSwap(false, true) {
		klog.FromContext(ctx).V(2).Info("Scale to zero waits for the last decision record to be written", "desired", dec.DesiredReplicas)
		return false, nil
	}
	defer r.t.recordBusy.Store(false)
	key := annotationFor(dec, fst, ost, grantGist(grant), true)
	text := key
	if grant != nil {
		text = annotationFor(dec, fst, ost, grant, true)
	}
	if err := r.annotate(ctx, text); err != nil {
		return false, fmt.Errorf("store the decision record before scaling %s to zero (the scale is not written): %w", r.p.Target, err)
	}
	r.t.annotation, r.t.recordGist, r.t.recordAt = key, recordGist(dec, fst, ost, grant, true), dec.Time
	// The record changed the workload's resourceVersion, which the scale write carries: the
	// scale is read again (from etcd, to see the record's version), and written only if no
	// other writer changed its replicas since the tick read them.
	s, err := r.c.deps.Scales.Scales(r.p.Target.Namespace).Get(ctx, r.obs.gr, r.p.Target.Name, metav1.GetOptions{})
	if err != nil {
		return false, failure("target", fmt.Errorf("read the scale of %s again after its record: %w", r.p.Target, err))
	}
	if s.Spec.Replicas != r.obs.scale.Spec.Replicas {
		r.c.deps.Metrics.Scales.WithLabelValues(r.p.Name, "conflict").Inc()
		klog.FromContext(ctx).Info("Scale changed by another writer since it was read; deciding again at the next tick",
			"read", r.obs.scale.Spec.Replicas, "now", s.Spec.Replicas, "desired", dec.DesiredReplicas)
		return false, nil
	}
	r.obs.scale = s
	return true, nil
}

// recordsDue returns the runs whose records are written this tick: every one whose gist
// changed, and of the refreshes (refresh from record) the n that have waited longest (the
// oldest record written first, then by policy name), so that the refreshes of many
// targets spread over recordRefresh instead of arriving together: after a start, a
// thousand first records would otherwise be a thousand ReplicaSet updates at once.
func recordsDue(runs []*pass, n int) []int {
	var due, refreshes []int
	for i, r := range runs {
		switch {
		case r == nil || r.record == nil:
		case r.refresh:
			refreshes = append(refreshes, i)
		default:
			due = append(due, i)
		}
	}
	slices.SortFunc(refreshes, func(i, j int) int {
		if c := runs[i].t.recordAt.Compare(runs[j].t.recordAt); c != 0 {
			return c
		}
		return strings.Compare(runs[i].p.Name, runs[j].p.Name)
	})
	return append(due, refreshes[:min(n, len(refreshes))]...)
}

// refreshesPerTick is how many refreshes a tick of n policies writes: enough to refresh
// every record within recordRefresh, at least one.
func refreshesPerTick(n int, interval time.Duration) int {
	return max(1, int(math.Ceil(float64(n)*interval.Seconds()/recordRefresh.Seconds())))
}

// recordGist is the decision record without what moves with the load at every tick: the
// metrics' values and proposals, the clamps that led from the proposal to the desired
// replicas (a stabilization window that holds them one tick and not the next), the
// forecast's load and proposal, the latency and the activation signal, the quantile and the
// minutes counted, the idle time, the takers' GPU counts. Errors and warnings count by
// their presence, not their text. A record whose gist changed is written at once: its
// replicas, reason, winning metric, a metric gone missing, the forecast won or gated, a
// violated minute, the scale-to-zero state, the grant (what was wanted and granted, and
// who took the rest).
func recordGist(dec policy.Decision, fst *ForecastStatus, ost *ObjectiveStatus, grant *alloc.Grant, zeroed bool) string {
	present := func(s string) string {
		if s != "" {
			return "present"
		}
		return ""
	}
	d := dec
	d.Proposal = 0
	d.Metrics = make([]policy.MetricResult, len(dec.Metrics))
	for i, m := range dec.Metrics {
		m.Value, m.Proposal, m.Error, m.Warnings = 0, 0, present(m.Error), nil
		d.Metrics[i] = m
	}
	d.Clamps = nil
	if z := dec.Zero; z != nil {
		zc := *z
		zc.Activation, zc.ActivationError, zc.IdleSeconds, zc.ExpectedReplicas = 0, present(z.ActivationError), 0, 0
		d.Zero = &zc
	}
	if fst != nil {
		f := *fst
		if fr := fst.ForecastResult; fr != nil {
			r := *fr
			r.Point, r.Lo, r.Hi, r.Value, r.Proposal = 0, 0, 0, 0, 0
			f.ForecastResult = &r
		}
		f.StartupSeconds, f.Error, f.MAPE, f.HistorySamples = 0, nil, nil, 0
		f.LoadError, f.LoadWarnings = present(f.LoadError), nil
		fst = &f
	}
	if ost != nil {
		o := *ost
		o.Latency, o.LatencyError, o.LatencyWarnings = nil, present(o.LatencyError), nil
		o.Waiting, o.WaitingError, o.WaitingWarnings = nil, present(o.WaitingError), nil
		o.Quantile, o.Minutes = 0, 0
		// The pacing moves each minute with the bank; a violated minute, which moves it
		// most, changes ViolatedMinutes.
		o.Tightness, o.BankMinutes, o.EpisodeMinutes, o.TargetScale = 0, 0, 0, 0
		o.HoldSeconds, o.ScaleDownWindowSeconds = nil, nil
		ost = &o
	}
	return annotationFor(d, fst, ost, grantGist(grant), zeroed)
}

// grantGist is grant without its GPU counts (alloc.Grant.Gist); nil stays nil.
func grantGist(grant *alloc.Grant) *alloc.Grant {
	if grant == nil {
		return nil
	}
	return &alloc.Grant{Policy: grant.Policy, Wanted: grant.Wanted, Granted: grant.Granted, Message: grant.Gist()}
}

// annotate writes the decision record text.
func (r *pass) annotate(ctx context.Context, text string) error {
	if err := r.mayWrite(ctx, "annotation_write"); err != nil {
		return err
	}
	if err := r.c.writer.Annotate(ctx, r.obs.gvr, r.p.Target, text); err != nil {
		return failure("annotation_write", err)
	}
	return nil
}

// annotationFor renders a decision, its forecast's status, its objective's and its share of
// the GPUs compactly, within maxAnnotation bytes: the metrics are dropped from the end until
// it fits. zeroed is the ScaledToZero condition after the decision's write (engine.Stored):
// the state a fresh engine reads back from the record (storedRecord).
func annotationFor(dec policy.Decision, fst *ForecastStatus, ost *ObjectiveStatus, grant *alloc.Grant, zeroed bool) string {
	type metric struct {
		Name     string  `json:"name"`
		Value    any     `json:"value,omitempty"`
		Target   float64 `json:"target"`
		Proposal int32   `json:"proposal,omitempty"`
		Error    string  `json:"error,omitempty"`
		// Warnings: Prometheus' warnings about the sample (a partial response).
		Warnings []string `json:"warnings,omitempty"`
	}
	// capacity is the policy's share of the GPUs: who took what it wanted.
	type capacity struct {
		Wanted   int32         `json:"wanted"`
		Granted  int32         `json:"granted"`
		Pending  int32         `json:"pending,omitempty"`
		Reserved int32         `json:"reserved,omitempty"`
		Message  string        `json:"message,omitempty"`
		Takers   []alloc.Taker `json:"takers,omitempty"`
	}
	type record struct {
		Current   int32            `json:"current"`
		Desired   int32            `json:"desired"`
		Reason    policy.Reason    `json:"reason"`
		Metric    string           `json:"metric,omitempty"`
		Proposal  int32            `json:"proposal"`
		Clamps    []policy.Clamp   `json:"clamps,omitempty"`
		Metrics   []metric         `json:"metrics,omitempty"`
		Forecast  *ForecastStatus  `json:"forecast,omitempty"`
		Objective *ObjectiveStatus `json:"objective,omitempty"`
		Capacity  *capacity        `json:"capacity,omitempty"`
		// Zero is scaleToZero's part: the activation signal, the idle time, whether the
		// forecast expects the load back and whether wake-ahead is gated.
		Zero *policy.ZeroResult `json:"zero,omitempty"`
		// ScaledToZero: prescale took the target to zero (the HPA's ScaledToZero
		// condition): at zero, a restarted or new instance reads it (engine.Stored) and
		// still wakes the target; without it the zero reads as set by hand.
		ScaledToZero bool `json:"scaledToZero,omitempty"`
	}
	r := record{Current: dec.CurrentReplicas, Desired: dec.DesiredReplicas, Reason: dec.Reason, Metric: dec.Metric,
		Proposal: dec.Proposal, Clamps: dec.Clamps, Forecast: fst, Objective: ost, ScaledToZero: zeroed}
	if grant != nil {
		r.Capacity = &capacity{Wanted: grant.Wanted, Granted: grant.Granted, Pending: grant.Pending, Reserved: grant.Reserved,
			Message: truncate(grant.Message, 600), Takers: grant.Takers}
	}
	if z := dec.Zero; z != nil {
		zc := *z
		zc.ActivationError = truncate(zc.ActivationError, 200)
		r.Zero = &zc
	}
	if fst != nil && len(fst.LoadWarnings) > 0 {
		f := *fst
		f.LoadWarnings = truncateAll(f.LoadWarnings, 200)
		r.Forecast = &f
	}
	if ost != nil {
		o := *ost
		o.LatencyError = truncate(o.LatencyError, 200)
		o.LatencyWarnings = truncateAll(o.LatencyWarnings, 200)
		o.WaitingError = truncate(o.WaitingError, 200)
		o.WaitingWarnings = truncateAll(o.WaitingWarnings, 200)
		r.Objective = &o
	}
	for _, m := range dec.Metrics {
		mm := metric{Name: m.Name, Target: m.Target, Error: truncate(m.Error, 200), Warnings: truncateAll(m.Warnings, 200)}
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

// truncateAll truncates each string to n bytes, in a new slice; nil stays nil.
func truncateAll(ss []string, n int) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = truncate(s, n)
	}
	return out
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

// syncError is a failed sync, with the kind prescale_errors_total counts it under. A
// repeat is the same failure as the last tick's: counted, not logged again.
type syncError struct {
	kind   string
	err    error
	repeat bool
}

func (e *syncError) Error() string { return e.err.Error() }
func (e *syncError) Unwrap() error { return e.err }

// failure marks err as a sync failure of kind.
func failure(kind string, err error) error { return &syncError{kind: kind, err: err} }

// errorKinds returns the kinds of the sync failures joined in err, "sync" for an error of
// no kind.
func errorKinds(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var kinds []string
		for _, e := range j.Unwrap() {
			kinds = append(kinds, errorKinds(e)...)
		}
		return kinds
	}
	if se, ok := errors.AsType[*syncError](err); ok {
		return []string{se.kind}
	}
	return []string{"sync"}
}
