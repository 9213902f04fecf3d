package scaler

import (
	"context"
	"errors"
	"fmt"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// The phases of a sync, as prescale_sync_phase_duration_seconds labels them.
const (
	phaseObserve = "observe" // the scale, pods and GPUs left, from the apiserver and caches
	phaseQuery   = "query"   // the metrics, the forecast's load and the objective's latency, from Prometheus
	phaseDecide  = "decide"  // the engine: forecast (and its history when due), Decide
	phaseAct     = "act"     // the writes, events, metrics and status
)

// sync runs one policy for one tick: observe, query, decide, act. leading is whether this
// instance led when the tick began; it writes only then, while ctx (the lease's) lives, and
// outside dry-run. The returned error is the tick's to log and count.
func (c *Controller) sync(ctx context.Context, p *policy.Policy, t *target, now time.Time, leading bool) error {
	timer := c.phaseTimer()
	obs, err := c.observe(ctx, p, t)
	timer.done(phaseObserve)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return &syncError{kind: "target_not_found", err: err, repeat: !t.setCondition(condTargetMissing, err.Error())}
		}
		return failure("target", err)
	}
	t.forgetCondition(condTargetMissing)
	dryRun := c.dryRunFor(p)
	// A real HPA on the same workload: beside a dry-run it is the comparison; otherwise
	// prescale does not write (they would fight).
	hpa := c.hpaFor(p.Target)
	conflict := ""
	if !dryRun {
		conflict = conflictingAutoscaler(p, hpa)
	}
	writes := leading && !dryRun && conflict == ""
	act := actor{c: c, p: p, t: t, o: &obs, writes: writes}
	if leading && conflict != "" {
		// The leader says why it does not write, once per change of the message.
		if t.setCondition(condConflict, conflict) {
			c.writer.Event(obs.ref, corev1.EventTypeWarning, ReasonConflictingAutoscaler, conflict)
			klog.FromContext(ctx).Info("Not writing: another autoscaler targets the workload", "reason", conflict)
		}
	} else if conflict == "" {
		t.forgetCondition(condConflict)
	}
	in := engine.Input{Writes: writes}
	if err := c.ensureEngine(p, t); err != nil {
		return failure("engine", err)
	}
	if obs.recreated != "" {
		// Deleted and recreated: the old recommendations describe another object.
		t.eng.Reset()
		act.event(corev1.EventTypeNormal, ReasonTargetRecreated, "",
			fmt.Sprintf("%s was recreated (uid %s, was %s): decision history reset", p.Target, obs.scale.UID, obs.recreated))
	}

	obs.in.Metrics, in.Load, in.Latency, obs.in.Activation = c.query(ctx, p, now)
	in.Observation = obs.in
	timer.done(phaseQuery)

	res := c.decide(ctx, p, t, act, in, now)
	timer.done(phaseDecide)
	dec := res.Decision
	logger := klog.FromContext(ctx)
	kv := []any{"current", dec.CurrentReplicas, "desired", dec.DesiredReplicas, "reason", dec.Reason, "metric", dec.Metric,
		"proposal", dec.Proposal, "hpaEquivalent", res.HPAEquivalent.DesiredReplicas, "dryRun", dryRun}
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
	}
	if z := dec.Zero; z != nil {
		kv = append(kv, "activation", z.Activation, "activationError", z.ActivationError, "idleSeconds", z.IdleSeconds,
			"expectsLoad", z.ExpectsLoad, "wakeGated", z.WakeGated)
	}
	logger.V(2).Info("Decided", kv...)

	var errs []error
	if writes && dec.DesiredReplicas != dec.CurrentReplicas {
		errs = append(errs, act.rescale(ctx, t.eng, dec))
	}
	if writes {
		errs = append(errs, act.annotate(ctx, dec, res.Forecast, res.Objective))
	}
	c.report(act, res, leading, hpa, conflict, now)
	timer.done(phaseAct)
	return errors.Join(errs...)
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
		return nil
	}
	if t.eng.Policy() != p {
		t.eng.SetPolicy(p)
	}
	return nil
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
	// Kept in the status past the next Step.
	res.Forecast, res.Objective = res.Forecast.Copy(), res.Objective.Copy()
	if res.Forecast != nil {
		c.forecastEvents(ctx, p, act, res)
	}
	if res.Wake != nil {
		w := *res.Wake // kept in the status past the next Step
		res.Wake = &w
		if res.WakeGateChanged {
			c.wakeEvent(ctx, act, &w)
		}
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
