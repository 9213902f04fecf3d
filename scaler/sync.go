package scaler

import (
	"context"
	"fmt"
	"time"

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

// syncRun is one policy's sync in a tick, between its decision and its act phase: the
// tick allocates the GPUs across every policy's decision in between (docs/capacity.md).
type syncRun struct {
	p        *policy.Policy
	t        *target
	obs      observed
	act      actor
	res      engine.Result
	hpa      *autoscalingv2.HorizontalPodAutoscaler
	conflict string
	// shared says which other policies' targets select pods of this one's (the
	// AmbiguousSelector message), "" for none: the decision holds.
	shared string
	dryRun bool
	writes bool
	timer  *phaseTimer
	// grant is the policy's share of the GPUs this tick, nil when it was not allocated
	// (capacity.mode off, or its pods request no GPU kind and it has none to read).
	grant *alloc.Grant
	// record writes the decision record, after the tick; nil when the sync does not write
	// or the record has not changed. refresh: it may wait (recordsDue).
	record  func(context.Context) error
	refresh bool
}

// observeSync runs the first phase of one policy's sync for one tick: observe. The
// returned error is the tick's to log and count; the run is then nil.
func (c *Controller) observeSync(ctx context.Context, p *policy.Policy, t *target) (*syncRun, error) {
	timer := c.phaseTimer()
	obs, err := c.observe(ctx, p, t)
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
	return &syncRun{p: p, t: t, obs: obs, timer: timer}, nil
}

// markShared sets, on each observed run whose target's pods another policy's target's
// selector also selects, the observation's AmbiguousSelector and why (sharedPods). A
// policy whose observation failed this tick takes part with the selector it last
// observed: one failed read does not let another policy count their shared pods as its own.
func markShared(runs []*syncRun, policies []policy.Policy, targets map[string]*target) {
	selectors := make([]targetSelector, 0, len(policies))
	pods := make(map[string][]*corev1.Pod, len(runs))
	for i := range policies {
		p := &policies[i]
		sel := targets[p.Name].selector
		if r := runs[i]; r != nil {
			sel = r.obs.selector
			pods[p.Name] = r.obs.pods
		}
		if sel != nil {
			selectors = append(selectors, targetSelector{policy: p.Name, target: p.Target, selector: sel})
		}
	}
	shared := sharedPods(selectors, pods)
	for _, r := range runs {
		if r == nil {
			continue
		}
		if others := shared[r.p.Name]; len(others) > 0 {
			r.obs.in.AmbiguousSelector = true
			r.shared = sharedMessage(r.p, r.obs.selector, others)
		}
	}
}

// decideSync runs the next phases of an observed sync: query, decide. leading is whether
// this instance led when the tick began; the sync writes only then, while ctx (the
// lease's) lives, and outside dry-run. The returned error is the tick's to log and count.
func (c *Controller) decideSync(ctx context.Context, r *syncRun, now time.Time, leading bool) error {
	p, t, timer := r.p, r.t, r.timer
	timer.start = time.Now() // not the wait for the other targets' observations
	r.dryRun = c.dryRunFor(p)
	// A real HPA on the same workload: beside a dry-run it is the comparison; otherwise
	// prescale does not write (they would fight).
	r.hpa = c.hpaFor(p.Target)
	if !r.dryRun {
		r.conflict = conflictingAutoscaler(p, r.hpa)
	}
	r.writes = leading && !r.dryRun && r.conflict == ""
	r.act = actor{c: c, p: p, t: t, o: &r.obs, writes: r.writes}
	if leading && r.conflict != "" {
		// The leader says why it does not write, once per change of the message.
		if t.setCondition(condConflict, r.conflict) {
			c.writer.Event(r.obs.ref, corev1.EventTypeWarning, ReasonConflictingAutoscaler, r.conflict)
			klog.FromContext(ctx).Info("Not writing: another autoscaler targets the workload", "reason", r.conflict)
		}
	} else if r.conflict == "" {
		t.forgetCondition(condConflict)
	}
	in := engine.Input{Writes: r.writes}
	if err := c.ensureEngine(p, t); err != nil {
		return failure("engine", err)
	}
	if r.obs.recreated != "" {
		// Deleted and recreated: the old recommendations describe another object.
		t.eng.Reset()
		r.act.event(corev1.EventTypeNormal, ReasonTargetRecreated, "",
			fmt.Sprintf("%s was recreated (uid %s, was %s): decision history reset", p.Target, r.obs.scale.UID, r.obs.recreated))
	}

	if t.eng.Fresh() && r.obs.in.SpecReplicas == 0 {
		// A fresh engine (this instance's first sync of the target, a new leader's, a
		// reload's that renamed the policy) at zero: whether prescale set that zero is in
		// the record on the target, not in memory (docs/scale-to-zero.md).
		stored, err := c.storedRecord(ctx, p, r.act)
		if err != nil {
			return failure("target", err)
		}
		t.eng.Restore(stored)
	}

	r.obs.in.Metrics, in.Load, in.Latency, in.Waiting, r.obs.in.Activation = c.query(ctx, p, now)
	in.Observation = r.obs.in
	timer.done(phaseQuery)

	r.res = c.decide(ctx, p, t, r.act, in, now)
	timer.done(phaseDecide)
	return nil
}

// grantCapacity lowers the decision to the policy's grant: a last clamp, CapacityLimited
// from the wanted replicas to the granted ones. The engine's history keeps the wanted.
func (r *syncRun) grantCapacity(g alloc.Grant) {
	r.grant = &g
	dec := &r.res.Decision
	if g.Granted >= dec.DesiredReplicas {
		return
	}
	dec.Clamps = append(dec.Clamps, policy.Clamp{Reason: policy.ReasonCapacityLimited, From: dec.DesiredReplicas, To: g.Granted})
	dec.Reason = policy.ReasonCapacityLimited
	dec.DesiredReplicas = g.Granted
}

// finish runs the act phase of a prepared sync: the writes, events, metrics and status.
func (c *Controller) finish(ctx context.Context, r *syncRun, leading bool, now time.Time) error {
	res, dec := r.res, r.res.Decision
	logger := klog.FromContext(ctx)
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
		kv = append(kv, "quantile", ost.Quantile, "violatedMinutes", ost.ViolatedMinutes, "minutes", ost.Minutes)
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
	logger.V(2).Info("Decided", kv...)

	if r.shared != "" {
		// Once per change of the message, as the HPA's AmbiguousSelector condition.
		if r.writes && r.t.setCondition(condSelector, r.shared) {
			c.writer.Event(r.obs.ref, corev1.EventTypeWarning, ReasonAmbiguousSelector, r.shared)
			logger.Info("Not scaling: another policy's target selects the same pods", "reason", r.shared)
		}
	} else {
		r.t.forgetCondition(condSelector)
	}
	var err error
	if r.writes && dec.DesiredReplicas != dec.CurrentReplicas {
		stored := true
		if r.t.eng.ScalesToZero(dec.CurrentReplicas, dec.DesiredReplicas) {
			// The zero is stored on the target before it is written, so that no instance
			// (this one restarted, a new leader) finds a zero of prescale's without its record.
			stored, err = r.act.storeZero(ctx, dec, res.Forecast, res.Objective, r.grant)
		}
		if stored {
			err = r.act.rescale(ctx, r.t.eng, dec)
		}
	}
	if r.writes && !r.t.recordBusy.Load() {
		// Written once the tick has acted (writeRecords), under its own deadline; none while
		// the last one is still being written.
		r.record, r.refresh = r.act.record(dec, res.Forecast, res.Objective, r.grant)
	}
	c.report(r.act, res, leading, r.hpa, r.conflict, r.shared, r.grant, now)
	r.timer.done(phaseAct)
	return err
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
func (c *Controller) ensureEngine(p *policy.Policy, t *target) error {
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

// decide steps the policy's engine: it first loads the forecast's history when the engine
// asks for it (the first fit, the daily refit), then decides. The forecast's troubles are
// events, not errors of the sync: the policy then scales on its metrics.
func (c *Controller) decide(ctx context.Context, p *policy.Policy, t *target, act actor, in engine.Input, now time.Time) engine.Result {
	if forecasting(p) != nil {
		t.eng.SetStartup(t.startup.p90())
		c.fit(ctx, p, t, act, now)
	}
	res := t.eng.Step(in, now)
	// Kept in the status past the next Step, and read by /status while it runs: copies that
	// share nothing with the engine, which the next Step rewrites.
	res.Forecast, res.Objective, res.Wake = res.Forecast.Copy(), res.Objective.Copy(), res.Wake.Copy()
	if res.Forecast != nil {
		c.forecastEvents(ctx, p, act, res)
	}
	if res.Wake != nil && res.WakeGateChanged {
		c.wakeEvent(ctx, act, res.Wake)
	}
	return res
}

// phaseTimer times the phases of one sync into prescale_sync_phase_duration_seconds.
type phaseTimer struct {
	c     *Controller
	start time.Time
}

func (c *Controller) phaseTimer() *phaseTimer { return &phaseTimer{c: c, start: time.Now()} }

// done observes the time since the last phase ended under phase.
func (pt *phaseTimer) done(phase string) {
	end := time.Now()
	pt.c.deps.Metrics.SyncPhaseDuration.WithLabelValues(phase).Observe(end.Sub(pt.start).Seconds())
	pt.start = end
}
