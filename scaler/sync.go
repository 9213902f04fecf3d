package scaler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/prom"
)

// The phases of a sync, as prescale_sync_phase_duration_seconds labels them.
const (
	phaseObserve = "observe" // the scale, pods and GPUs left, from the apiserver and caches
	phaseQuery   = "query"   // the metrics, the forecast's load and the objective's latency, from Prometheus
	phaseDecide  = "decide"  // the engine: forecast (and its history when due), Decide
	phaseAct     = "act"     // the writes, events, metrics and status
	// A tick's phases (prescale_tick_phase_duration_seconds) are decide (every policy's
	// observe, query and decide), allocate and act.
	tickPhaseAllocate = "allocate"
	// After the tick, in the background: the decision records (writeRecords).
	tickPhaseRecord = "record"
	// Beside the ticks, in the background: one forecast history load (loadHistory).
	tickPhaseHistory = "history"
)

// pass is one policy's pass through one tick: what observe read, what decide decided and
// what allocate granted, which act turns into every write, event, log line and metric. It
// lives for one tick; what outlives it is in the policy's state (t). Each phase writes its
// own fields, and the later phases read them.
type pass struct {
	c     *Controller
	p     *policy.Policy
	t     *policyState
	timer *phaseTimer

	// observe's: the target, the pods and the caches; the real HPA beside it; the record
	// stored on the target; the samples from Prometheus; the forecast history.
	obs observed
	hpa *autoscalingv2.HorizontalPodAutoscaler
	// conflict says which other autoscaler scales the workload ("" for none): prescale then
	// writes nothing. shared (set between observe and decide, markShared) says which other
	// policies' targets select pods of this one's ("" for none): the decision holds.
	conflict, shared string
	dryRun, writes   bool
	// leading: this instance led as the tick began (Tick).
	leading bool
	// stored is what the decision record on a target at zero says, for a fresh engine (nil:
	// not read); unreadable why the record there is not one (nil: it is, or there is none).
	stored     *engine.Stored
	unreadable error
	// in is the engine's input but its Observation (obs.in), which decide joins to it.
	in engine.Input
	// history is the forecast's history in flight (historyDone false: it was started, or is
	// still loading) or arrived this tick (historyDone: decide hands it to the engine); nil
	// for none. historyStarted: observe started it this tick.
	history        *historyLoad
	historyDone    bool
	historyStarted bool

	// decide's
	res engine.Result
	fit *fitOutcome // what handing the arrived history to the engine did; nil: none arrived

	// allocate's: the policy's share of the GPUs this tick, nil when it was not allocated
	// (capacity.mode off, or its pods request no GPU kind and it has none to read).
	grant *alloc.Grant

	// act's: record writes the decision record, after the tick; nil when the pass does not
	// write or the record has not changed. refresh: it may wait (recordsDue).
	record  func(context.Context) error
	refresh bool
}

// observe runs the first phase of one policy's pass: every read. The target's scale, pods
// and pod template (the API server and the informers' caches), the real HPA beside it, the
// decision record stored on a target at zero for a fresh engine, the metrics, the
// forecast's load and the objective's latency (Prometheus), and the forecast's history:
// started in the background when the engine wants it, taken once it has arrived.
// leading is whether this instance led when the tick began: the pass writes only then,
// while ctx (the lease's) lives, and outside dry-run. The returned error is the tick's to
// log and count; the pass is then nil.
func (c *Controller) observe(ctx context.Context, p *policy.Policy, t *policyState, now time.Time, leading bool) (*pass, error) {
	timer := c.phaseTimer()
	obs, err := c.observeTarget(ctx, p, t)
	timer.done(phaseObserve)
	if err != nil {
		if apierrors.IsNotFound(err) {
			// Gone: its selector no longer stands for any pod.
			t.selector = nil
			return nil, &syncError{kind: "target_not_found", err: err, repeat: !t.setCondition(condTargetMissing, err.Error())}
		}
		return nil, failure("target", err)
	}
	t.forgetCondition(condTargetMissing)
	r := &pass{c: c, p: p, t: t, obs: obs, timer: timer, leading: leading}
	r.dryRun = c.dryRunFor(p)
	// A real HPA on the same workload: beside a dry-run it is the comparison; otherwise
	// prescale does not write (they would fight).
	r.hpa = c.hpaFor(p.Target)
	if !r.dryRun {
		r.conflict = conflictingAutoscaler(p, r.hpa)
	}
	r.writes = leading && !r.dryRun && r.conflict == ""
	if err := c.ensureEngine(p, t); err != nil {
		return nil, failure("engine", err)
	}
	if t.eng.Fresh() && r.obs.in.SpecReplicas == 0 {
		// A fresh engine (this instance's first sync of the target, a new leader's, a
		// reload's that renamed the policy) at zero: whether prescale set that zero is in
		// the record on the target, not in memory (docs/scale-to-zero.md).
		stored, unreadable, err := c.storedRecord(ctx, p, r.obs.gvr)
		if err != nil {
			return nil, failure("target", err)
		}
		r.stored, r.unreadable = &stored, unreadable
	}
	r.obs.in.Metrics, r.in.Load, r.in.Latency, r.in.Waiting, r.obs.in.Activation = c.query(ctx, p, now)
	if forecasting(p) != nil {
		c.observeHistory(ctx, r, now)
	}
	timer.done(phaseQuery)
	return r, nil
}

// markShared sets, on each observed pass whose target's pods another policy's target's
// selector also selects, the observation's AmbiguousSelector and why (sharedPods). A
// policy whose observation failed this tick takes part with the selector it last
// observed: one failed read does not let another policy count their shared pods as its own.
func markShared(passes []*pass, policies []policy.Policy, targets map[string]*policyState) {
	selectors := make([]targetSelector, 0, len(policies))
	pods := make(map[string][]*corev1.Pod, len(passes))
	for i := range policies {
		p := &policies[i]
		sel := targets[p.Name].selector
		if r := passes[i]; r != nil {
			sel = r.obs.selector
			pods[p.Name] = r.obs.pods
		}
		if sel != nil {
			selectors = append(selectors, targetSelector{policy: p.Name, target: p.Target, selector: sel})
		}
	}
	shared := sharedPods(selectors, pods)
	for _, r := range passes {
		if r == nil {
			continue
		}
		if others := shared[r.p.Name]; len(others) > 0 {
			r.obs.in.AmbiguousSelector = true
			r.shared = sharedMessage(r.p, r.obs.selector, others)
		}
	}
}

// decide runs the second phase of an observed pass: the engine, on what observe read. It
// does no I/O and sends nothing: what act reports of it (a recreated target, the history
// handed over, the forecast's gate) is in the pass. A recreated target's engine forgets its
// recommendations (they describe another object); a fresh engine at zero reads back what
// the record stored; a forecasting engine takes the pods' measured start-up and the history
// that arrived. The engine's statuses are copied out of it: the next Step rewrites its own,
// while /status reads these.
func (r *pass) decide(now time.Time) {
	r.timer.start = time.Now() // not the wait for the other targets' observations
	eng := r.t.eng
	if r.obs.recreated != "" {
		eng.Reset()
	}
	if r.stored != nil {
		eng.Restore(*r.stored)
	}
	if forecasting(r.p) != nil {
		eng.SetStartup(r.t.startup.p90())
		r.handHistory(now)
	}
	r.in.Observation, r.in.Writes = r.obs.in, r.writes
	res := eng.Step(r.in, now)
	res.Forecast, res.Objective, res.Wake = res.Forecast.Copy(), res.Objective.Copy(), res.Wake.Copy()
	r.res = res
	r.timer.done(phaseDecide)
}

// grantCapacity lowers the decision to the policy's grant: a last clamp, CapacityLimited
// from the wanted replicas to the granted ones. The engine's history keeps the wanted.
func (r *pass) grantCapacity(g alloc.Grant) {
	r.grant = &g
	dec := &r.res.Decision
	if g.Granted >= dec.DesiredReplicas {
		return
	}
	dec.Clamps = append(dec.Clamps, policy.Clamp{Reason: policy.ReasonCapacityLimited, From: dec.DesiredReplicas, To: g.Granted})
	dec.Reason = policy.ReasonCapacityLimited
	dec.DesiredReplicas = g.Granted
}

// act runs the last phase of a decided and allocated pass: every event, log line, metric
// and write. First what observe and decide found (another autoscaler, a recreated target,
// an unreadable record, the forecast's history and gate, the wake-ahead gate, pods shared
// with another policy's target), then the decision: the scale written (a zero stored on the
// target first), the CapacityBuffer sized (sizeBuffer), the decision record prepared for
// after the tick, the metrics and status.
func (r *pass) act(ctx context.Context, now time.Time) error {
	c, t := r.c, r.t
	res, dec := r.res, r.res.Decision
	logger := klog.FromContext(ctx)
	if r.leading && r.conflict != "" {
		// The leader says why it does not write, once per change of the message.
		if t.setCondition(condConflict, r.conflict) {
			c.writer.Event(r.obs.ref, corev1.EventTypeWarning, ReasonConflictingAutoscaler, r.conflict)
			logger.Info("Not writing: another autoscaler targets the workload", "reason", r.conflict)
		}
	} else if r.conflict == "" {
		t.forgetCondition(condConflict)
	}
	if r.obs.recreated != "" {
		r.event(corev1.EventTypeNormal, ReasonTargetRecreated, "",
			fmt.Sprintf("%s was recreated (uid %s, was %s): decision history reset", r.p.Target, r.obs.scale.UID, r.obs.recreated))
	}
	if r.unreadable != nil {
		logger.Info("Decision record unreadable", "workload", r.p.Target.String(), "err", r.unreadable)
		r.event(corev1.EventTypeWarning, ReasonDecisionRecordUnreadable, "",
			fmt.Sprintf("the %s annotation of %s at zero replicas is not a decision record (%v): reading the zero as set by hand (ScalingDisabled)",
				DecisionAnnotation, r.p.Target, r.unreadable))
	}
	if forecasting(r.p) != nil {
		r.reportHistory(ctx)
	}
	if res.Forecast != nil {
		r.forecastEvents(ctx)
	}
	if res.Wake != nil && res.WakeGateChanged {
		r.wakeEvent(ctx, res.Wake)
	}
	r.logDecision(ctx)

	if r.shared != "" {
		// Once per change of the message, as the HPA's AmbiguousSelector condition.
		if r.writes && t.setCondition(condSelector, r.shared) {
			c.writer.Event(r.obs.ref, corev1.EventTypeWarning, ReasonAmbiguousSelector, r.shared)
			logger.Info("Not scaling: another policy's target selects the same pods", "reason", r.shared)
		}
	} else {
		t.forgetCondition(condSelector)
	}
	var err error
	if r.writes && dec.DesiredReplicas != dec.CurrentReplicas {
		stored := true
		if t.eng.ScalesToZero(dec.CurrentReplicas, dec.DesiredReplicas) {
			// The zero is stored on the target before it is written, so that no instance
			// (this one restarted, a new leader) finds a zero of prescale's without its record.
			stored, err = r.storeZero(ctx, dec, res.Forecast, res.Objective, r.grant)
		}
		if stored {
			err = r.rescale(ctx, t.eng, dec)
		}
	}
	if berr := r.sizeBuffer(ctx, now); berr != nil {
		err = errors.Join(err, berr)
	}
	if r.writes && !t.recordBusy.Load() {
		// Written once the tick has acted (writeRecords), under its own deadline; none while
		// the last one is still being written.
		r.record, r.refresh = r.recordFor(dec, res.Forecast, res.Objective, r.grant)
	}
	r.report(now)
	r.timer.done(phaseAct)
	return err
}

// logDecision logs the decision at V(2), with what the allocation, the forecast, the
// objective and scaleToZero made of it.
func (r *pass) logDecision(ctx context.Context) {
	res, dec := r.res, r.res.Decision
	kv := []any{"current", dec.CurrentReplicas, "desired", dec.DesiredReplicas, "reason", dec.Reason, "metric", dec.Metric,
		"proposal", dec.Proposal, "hpaEquivalent", res.HPAEquivalent.DesiredReplicas, "dryRun", r.dryRun}
	if g := r.grant; g != nil {
		kv = append(kv, "wanted", g.Wanted, "granted", g.Granted)
		if g.Message != "" {
			kv = append(kv, "capacity", g.Message)
		}
	}
	if fst := res.Forecast; fst != nil {
		kv = append(kv, "forecast", dec.Forecast, "horizon", time.Duration(fst.HorizonSeconds*float64(time.Second)),
			"startupMeasured", fst.StartupMeasured, "loadError", fst.LoadError)
	}
	if ost := res.Objective; ost != nil {
		kv = append(kv, "quantile", ost.Quantile, "tightness", ost.Tightness, "bankMinutes", ost.BankMinutes,
			"violatedMinutes", ost.ViolatedMinutes, "minutes", ost.Minutes)
		if ost.Latency != nil {
			kv = append(kv, "latency", *ost.Latency)
		} else {
			kv = append(kv, "latencyError", ost.LatencyError)
		}
		if ost.Waiting != nil {
			kv = append(kv, "waiting", *ost.Waiting, "waitedWithoutLatency", ost.WaitedWithoutLatency)
		}
	}
	if z := dec.Zero; z != nil {
		kv = append(kv, "activation", z.Activation, "activationError", z.ActivationError, "idleSeconds", z.IdleSeconds,
			"expectsLoad", z.ExpectsLoad, "wakeGated", z.WakeGated)
	}
	klog.FromContext(ctx).V(2).Info("Decided", kv...)
}

// conflictingAutoscaler says which other autoscaler targets p's workload ("" for none): h,
// the HPA on it (nil for none), KEDA's ScaledObjects included (KEDA scales through an HPA it
// owns). Two autoscalers writing one scale fight; outside dry-run prescale then writes
// nothing.
func conflictingAutoscaler(p *policy.Policy, h *autoscalingv2.HorizontalPodAutoscaler) string {
	if h == nil {
		return ""
	}
	by := ""
	for _, o := range h.OwnerReferences {
		if o.Kind == "ScaledObject" {
			by = fmt.Sprintf(" (KEDA ScaledObject %s)", o.Name)
		}
	}
	return fmt.Sprintf("HorizontalPodAutoscaler %s/%s%s also scales %s: prescale writes nothing while another autoscaler does; delete it, or set dryRun to run beside it",
		h.Namespace, h.Name, by, p.Target)
}

// dryRunFor is the policy's dry-run setting, or the global one in force (SetDryRun).
func (c *Controller) dryRunFor(p *policy.Policy) bool {
	if p.DryRun != nil {
		return *p.DryRun
	}
	return c.dryRun.Load()
}

// ensureEngine builds the policy's engine at its first sync, and hands it the policy after
// a reload: the decision History carries over, the forecaster too unless its block changed.
func (c *Controller) ensureEngine(p *policy.Policy, t *policyState) error {
	if t.eng == nil {
		eng, err := engine.New(p, engine.Options{Tick: c.opts.Interval, DefaultStartup: DefaultStartup,
			HPAEquivalent: true, RefitDelay: engine.Stagger(p.Name)})
		if err != nil {
			return err
		}
		t.eng = eng
		t.eng.SetLoadLag(loadLag(p))
		return nil
	}
	if t.eng.Policy() != p {
		t.eng.SetPolicy(p)
		t.eng.SetLoadLag(loadLag(p))
	}
	return nil
}

// loadLag is how far p's forecast load query trails the demand it measures, which horizon:
// auto adds. A query that does not parse trails by nothing here: Prometheus refuses it, and
// the load is missing (FailedGetMetric) until it is fixed.
func loadLag(p *policy.Policy) time.Duration {
	if p.Forecast == nil {
		return 0
	}
	lag, err := prom.Lag(p.Forecast.Load.Query)
	if err != nil {
		return 0
	}
	return lag
}

// phaseTimer times consecutive phases into a histogram by phase: one pass's
// (prescale_sync_phase_duration_seconds) or one tick's (prescale_tick_phase_duration_seconds).
type phaseTimer struct {
	vec   *prometheus.HistogramVec
	start time.Time
	// log keeps the phases in kv (phase, duration, ...) for a log line: the tick's "Tick
	// done", not each pass's.
	log bool
	kv  []any
}

// phaseTimer times one pass's phases, from now.
func (c *Controller) phaseTimer() *phaseTimer {
	return &phaseTimer{vec: c.deps.Metrics.SyncPhaseDuration, start: time.Now()}
}

// done observes the time since the last phase ended (the first: since the timer began)
// under phase.
func (pt *phaseTimer) done(phase string) {
	end := time.Now()
	d := end.Sub(pt.start)
	pt.vec.WithLabelValues(phase).Observe(d.Seconds())
	if pt.log {
		pt.kv = append(pt.kv, phase, d)
	}
	pt.start = end
}
