package scaler

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// reportZero sets scaleToZero's series and its activation condition from the decision, and
// the wake-ahead gate's. A missing activation signal removes the idle series (never 0) and
// is a Warning condition: the target neither goes to zero nor wakes on the signal. At zero,
// where the metrics are not evaluated, their value series are removed.
func (r *pass) reportZero(dec policy.Decision, wake *engine.WakeStatus) {
	m, name := r.c.deps.Metrics, r.p.Name
	z := dec.Zero
	if z == nil {
		m.IdleSeconds.DeleteLabelValues(name)
		m.WakeAheadGated.DeleteLabelValues(name)
		r.t.forgetCondition(condActivation)
		return
	}
	if len(dec.Metrics) == 0 {
		// At zero the metrics are not evaluated: their last values would be stale.
		m.MetricValue.DeletePartialMatch(prometheus.Labels{"policy": name})
		m.MetricMissing.DeletePartialMatch(prometheus.Labels{"policy": name})
	}
	if z.ActivationError != "" {
		m.IdleSeconds.DeleteLabelValues(name)
		r.event(corev1.EventTypeWarning, ReasonActivationMissing, condActivation,
			fmt.Sprintf("scaleToZero.activation is missing (%s): holding %d replicas, neither idling to zero nor waking on it", z.ActivationError, dec.CurrentReplicas))
	} else {
		m.IdleSeconds.WithLabelValues(name).Set(z.IdleSeconds)
		r.t.forgetCondition(condActivation)
	}
	if wake == nil {
		m.WakeAheadGated.DeleteLabelValues(name)
		return
	}
	gated := 0.0
	if wake.Gated {
		gated = 1
	}
	m.WakeAheadGated.WithLabelValues(name).Set(gated)
}

// wakeEvent says that the wake-ahead gate closed or opened.
func (r *pass) wakeEvent(ctx context.Context, w *engine.WakeStatus) {
	kv := []any{"wrong", w.Wrong, "judged", w.Judged, "maxWrong", w.MaxWrong}
	if w.Gated {
		klog.FromContext(ctx).Info("Wake-ahead gated off", kv...)
		r.event(corev1.EventTypeWarning, ReasonWakeAheadGated, "",
			fmt.Sprintf("%d of the last %d wake-ahead claims proved wrong (the load did not come back within the horizon), above wakeAhead.maxWrong %g: the target no longer wakes early, only on its activation signal", w.Wrong, w.Judged, w.MaxWrong))
		return
	}
	klog.FromContext(ctx).Info("Wake-ahead resumed", kv...)
	r.event(corev1.EventTypeNormal, ReasonWakeAheadResumed, "",
		fmt.Sprintf("%d of the last %d wake-ahead claims proved wrong, at or below wakeAhead.maxWrong %g: the target wakes ahead of a forecast return again", w.Wrong, w.Judged, w.MaxWrong))
}

// storedRecord reads what the decision record on p's target (of resource gvr) says of the
// state a fresh engine cannot observe (engine.Stored): whether prescale scaled it to zero.
// It reads the workload itself (the informers' copies and the scale subresource carry no
// annotations), once per fresh engine at zero. A target without a record has nothing
// stored; a record that cannot be read counts as none (unreadable says why, which act
// reports: DecisionRecordUnreadable): the zero then reads as set by hand, never as
// prescale's. An error to get the workload is returned: the sync fails and the next tick
// reads again, the target staying at zero meanwhile.
func (c *Controller) storedRecord(ctx context.Context, p *policy.Policy, gvr schema.GroupVersionResource) (st engine.Stored, unreadable, err error) {
	u, err := c.deps.Dynamic.Resource(gvr).Namespace(p.Target.Namespace).Get(ctx, p.Target.Name, metav1.GetOptions{})
	if err != nil {
		return engine.Stored{}, nil, fmt.Errorf("get %s for its decision record: %w", p.Target, err)
	}
	text, ok := u.GetAnnotations()[DecisionAnnotation]
	if !ok {
		return engine.Stored{}, nil, nil
	}
	if err := json.Unmarshal([]byte(text), &st); err != nil {
		return engine.Stored{}, err, nil
	}
	return st, nil, nil
}
