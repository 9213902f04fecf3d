package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// HistorySource loads a query's past values, for the forecast's history at start-up:
// samples every step from start to end (both included), in time order, steps without a
// usable value left out (never zero). lookback bounds how old a sample each step may take.
// prom.Source implements it.
type HistorySource interface {
	History(ctx context.Context, query string, start, end time.Time, step, lookback time.Duration) ([]forecast.Sample, error)
}

// The errors of ForecastReplicas, for "<policy>-forecast-replicas"; test them with
// errors.Is. None is ever answered as a zero.
var (
	// ErrForecastNotConfigured: the policy has no forecast, or its method is off.
	ErrForecastNotConfigured = errors.New("forecast not configured")
	// ErrForecastGated: the accuracy gate holds the forecast off.
	ErrForecastGated = errors.New("forecast gated")
	// ErrForecastLearning: the forecaster is warming up, or perReplica: auto is not
	// learned yet.
	ErrForecastLearning = errors.New("forecast learning")
	// ErrForecastMissing: no forecast this tick: no tick yet, the load is missing, or the
	// forecast is not a usable number.
	ErrForecastMissing = errors.New("forecast missing")
	// ErrForecastStale: the last forecast is older than max(2 intervals, staleness): this
	// instance does not tick (a follower), or its ticks fail.
	ErrForecastStale = errors.New("forecast stale")
)

// ForecastStatus is the forecast's part of a policy's status and of its decision record.
type ForecastStatus = engine.ForecastStatus

// forecasting returns the policy's forecast, nil without one or with method off.
func forecasting(p *policy.Policy) *policy.Forecast { return engine.Forecasting(p) }

// fit hands the forecast's history to the engine's forecaster when the engine asks for it
// (the first fit: one range query, chunked, at the controller's interval, so that the
// forecast predicts from its first minutes; then the daily refit). The range query runs in
// the background (loadHistory), never in the tick: a slow Prometheus delays this policy's
// forecast, never another policy's scale (docs/architecture.md). The first tick after it
// completes fits the forecaster on it; until then a first fit forecasts nothing
// (engine.SetHistoryLoading) and a refit keeps the fit in force. A history that cannot be
// loaded is an event: the first fit starts without it and learns as it goes, a refit keeps
// its fit and is retried in an hour.
func (c *Controller) fit(ctx context.Context, p *policy.Policy, t *target, act actor, now time.Time) {
	logger := klog.FromContext(ctx)
	r, wanted := t.eng.HistoryWanted(now)
	if h := t.history; h != nil {
		select {
		case <-h.done:
		default:
			if wanted && !r.Refit {
				t.eng.SetHistoryLoading() // a reload may have rebuilt the forecaster
			}
			return
		}
		t.history = nil
		if !wanted || r.Query != h.req.Query || r.Refit != h.req.Refit {
			// A reload changed the forecast while its history loaded: that history is
			// not the one wanted now; the one wanted (if any) loads next.
			logger.V(2).Info("Dropped a forecast history loaded for another forecast", "query", h.req.Query)
			return
		}
		c.fitOn(ctx, p, t, act, h, now)
		return
	}
	if !wanted || c.deps.History == nil {
		return
	}
	t.history = c.loadHistory(ctx, p, r)
	if !r.Refit {
		t.eng.SetHistoryLoading()
	}
}

// historyLoad is one forecast history loading in the background: its samples and error are
// set before done is closed, and read only after.
type historyLoad struct {
	req     engine.HistoryRequest
	done    chan struct{}
	samples []forecast.Sample
	err     error
	took    time.Duration
}

// loadHistory starts loading the history r of p's forecast, under its own deadline
// (historyTimeout: 14 days take longer than a tick) and outside the tick's context, and
// times it as the tick phase "history".
func (c *Controller) loadHistory(ctx context.Context, p *policy.Policy, r engine.HistoryRequest) *historyLoad {
	h := &historyLoad{req: r, done: make(chan struct{})}
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyTimeout)
	klog.FromContext(ctx).V(2).Info("Loading the forecast's history in the background", "from", r.Start, "to", r.End, "step", r.Step, "refit", r.Refit)
	go func() {
		defer close(h.done)
		defer cancel()
		start := time.Now()
		h.samples, h.err = c.deps.History.History(hctx, r.Query, r.Start, r.End, r.Step, c.opts.Staleness)
		if h.err != nil {
			h.err = fmt.Errorf("load %s of history of forecast.load.query %q: %w", p.Forecast.HistoryOrDefault(), r.Query, h.err)
		}
		h.took = time.Since(start)
		c.deps.Metrics.TickPhaseDuration.WithLabelValues(tickPhaseHistory).Observe(h.took.Seconds())
	}()
	return h
}

// fitOn fits the engine's forecaster on the loaded history h.
func (c *Controller) fitOn(ctx context.Context, p *policy.Policy, t *target, act actor, h *historyLoad, now time.Time) {
	logger := klog.FromContext(ctx)
	r, history, err := h.req, h.samples, h.err
	if err != nil {
		if !r.Refit {
			logger.Error(err, "Loading the forecast's history failed; the forecast starts without it and learns as it goes")
			act.event(corev1.EventTypeWarning, ReasonForecastHistoryFailed, "",
				fmt.Sprintf("loading %s of forecast history failed, the forecast starts without it: %v", p.Forecast.HistoryOrDefault(), err))
		}
	} else {
		logger.Info("Loaded the forecast's history", "samples", len(history), "from", r.Start, "to", r.End, "step", r.Step,
			"took", h.took)
	}
	f, ferr := t.eng.Fit(history, err, now)
	switch {
	case ferr != nil && r.Refit:
		logger.Error(ferr, "Refitting the forecast failed; it keeps its fit and retries", "retryAt", f.Next)
		act.event(corev1.EventTypeWarning, ReasonForecastRefitFailed, "",
			fmt.Sprintf("%v; it keeps its fit and retries at %s", ferr, f.Next.Format(time.RFC3339)))
	case ferr != nil:
		logger.Error(ferr, "Building the forecaster failed; the policy scales reactively")
		act.event(corev1.EventTypeWarning, ReasonForecastFailed, "", fmt.Sprintf("building the forecaster failed: %v", ferr))
	case r.Refit:
		logger.Info("Refitted the forecast", "samples", f.Samples, "horizon", f.Horizon, "next", f.Next)
	}
}

// historyTimeout bounds the loading of one forecast history.
const historyTimeout = 2 * time.Minute

// forecastEvents reports a missing load and the gate's transitions.
func (c *Controller) forecastEvents(ctx context.Context, p *policy.Policy, act actor, res engine.Result) {
	if res.LoadErr != nil {
		reason := ReasonFailedGetMetric
		if c.deps.ErrorKind(res.LoadErr) == "stale" {
			reason = ReasonMetricsStale
		}
		act.event(corev1.EventTypeWarning, reason, condLoad,
			fmt.Sprintf("the forecast's load is missing (%v); no scale-down while it is, and the forecast stops one horizon after its last sample", res.LoadErr))
	} else {
		act.t.forgetCondition(condLoad)
	}
	if !res.GateChanged {
		return
	}
	st := res.Forecast
	maxErr, window := p.Forecast.GateOrDefault()
	under := deref(st.Error)
	kv := []any{"underRate", under, "maxError", maxErr, "window", window, "mape", deref(st.MAPE)}
	if st.Gated {
		klog.FromContext(ctx).Info("Forecast gated off", kv...)
		act.event(corev1.EventTypeWarning, ReasonForecastGated, "",
			fmt.Sprintf("the load exceeded the forecast's planned quantile in %.0f%% of the last %s, above gate.maxError %g: the forecast is gated off, the policy scales reactively", 100*under, window, maxErr))
		return
	}
	klog.FromContext(ctx).Info("Forecast ungated", kv...)
	act.event(corev1.EventTypeNormal, ReasonForecastUngated, "",
		fmt.Sprintf("the load exceeded the forecast's planned quantile in %.0f%% of the last %s, at or below gate.maxError %g: the forecast applies again", 100*under, window, maxErr))
}

// reportForecast sets the forecast's metrics from the decision and the status: a value
// that is missing removes its series (the gate's, when the forecaster could not be built).
func (c *Controller) reportForecast(p *policy.Policy, dec policy.Decision, st *ForecastStatus) {
	m, name := c.deps.Metrics, p.Name
	m.ForecastHorizon.WithLabelValues(name).Set(st.HorizonSeconds)
	m.ForecastHistorySamples.WithLabelValues(name).Set(float64(st.HistorySamples))
	setOrDelete(m.PodStartup, name, st.StartupSeconds, st.StartupMeasured)
	var gated float64
	if st.Gated {
		gated = 1
	}
	setOrDelete(m.ForecastGated, name, gated, st.Fitted)
	setOrDelete(m.ForecastError, name, deref(st.Error), st.Error != nil)
	setOrDelete(m.ForecastMAPE, name, deref(st.MAPE), st.MAPE != nil)
	f := dec.Forecast
	has := f != nil
	var point, upper, lower float64
	var proposal int32
	if has {
		point, upper, lower = float64(f.Point), float64(f.Value), float64(f.Lo)
		if f.Reason == "" {
			proposal = f.Proposal
		}
	}
	setOrDelete(m.ForecastLoad, name, point, has)
	setOrDelete(m.ForecastUpper, name, upper, has)
	setOrDelete(m.ForecastLower, name, lower, has)
	setOrDelete(m.ForecastReplicas, name, float64(proposal), proposal > 0)
}

// setOrDelete sets the policy's series of g to v when ok, and removes it otherwise.
func setOrDelete(g *prometheus.GaugeVec, name string, v float64, ok bool) {
	if ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
		g.WithLabelValues(name).Set(v)
		return
	}
	g.DeleteLabelValues(name)
}

// ForecastReplicas returns the latest forecast proposal of the policy named name, as of
// now: its proposal at the last tick, while that tick is at most max(2 intervals,
// staleness) old. It is an error, never zero, when the policy has no forecast
// (ErrForecastNotConfigured), before the first tick or without a usable forecast
// (ErrForecastMissing), while the forecast warms up or learns perReplica
// (ErrForecastLearning), while it is gated (ErrForecastGated), and when the last tick is
// too old (ErrForecastStale: the instance does not lead, or its ticks fail).
func (c *Controller) ForecastReplicas(name string, now time.Time) (int32, error) {
	policies, targets := c.snapshot()
	var p *policy.Policy
	for i := range policies {
		if policies[i].Name == name {
			p = &policies[i]
		}
	}
	if p == nil || forecasting(p) == nil {
		return 0, ErrForecastNotConfigured
	}
	t := targets[name]
	t.mu.Lock()
	dec, st := t.status.last, t.status.forecast
	t.mu.Unlock()
	maxAge := max(2*c.opts.Interval, c.opts.Staleness)
	switch {
	case st == nil || dec.Time.IsZero():
		return 0, fmt.Errorf("no tick has forecast yet: %w", ErrForecastMissing)
	case now.Sub(dec.Time) > maxAge:
		return 0, fmt.Errorf("the last forecast is %s old, older than %s: %w", now.Sub(dec.Time).Round(time.Millisecond), maxAge, ErrForecastStale)
	}
	f := dec.Forecast
	switch {
	case f == nil && st.LoadError != "":
		return 0, fmt.Errorf("the load is missing (%s): %w", st.LoadError, ErrForecastMissing)
	case f == nil:
		return 0, fmt.Errorf("warming up, too few load samples to predict: %w", ErrForecastLearning)
	case f.Gated:
		msg := "its error is above gate.maxError"
		if st.Error != nil {
			maxErr, _ := p.Forecast.GateOrDefault()
			msg = fmt.Sprintf("its error %.3f is above gate.maxError %g", *st.Error, maxErr)
		}
		return 0, fmt.Errorf("%s: %w", msg, ErrForecastGated)
	case f.Reason == policy.ReasonForecastLearning:
		return 0, fmt.Errorf("perReplica: auto is not learned yet: %w", ErrForecastLearning)
	}
	if _, err := policy.ValueMilli(policy.Sample{Value: float64(f.Value)}); err != nil {
		return 0, fmt.Errorf("the forecast is not a usable number (%v): %w", err, ErrForecastMissing)
	}
	// A forecast of no load proposes 0: data, not a missing value. An HPA on this metric
	// alone may then scale down to its minReplicas, as on any metric at 0.
	return f.Proposal, nil
}

// deref is *f, or 0 for nil.
func deref(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}
