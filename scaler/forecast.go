package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

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

// The forecast's history is handed to the engine's forecaster when the engine asks for it
// (the first fit: one range query, chunked, at the controller's interval, so that the
// forecast predicts from its first minutes; then the daily refit). The range query runs in
// the background (loadHistory), never in the tick: a slow Prometheus delays this policy's
// forecast, never another policy's scale (docs/architecture.md). observe starts it
// (observeHistory) and takes it once it has arrived; that tick's decide fits the
// forecaster on it (handHistory), and act reports how (reportHistory). Until then a first
// fit forecasts nothing (engine.SetHistoryLoading) and a refit keeps the fit in force. A
// history that cannot be loaded is an event: the first fit starts without it and learns as
// it goes, a refit keeps its fit and is retried in an hour.

// observeHistory is observe's part of the forecast's history: it takes the load in flight
// into the pass (and out of the state once it has arrived), or starts the one the engine
// wants.
func (c *Controller) observeHistory(ctx context.Context, r *pass, now time.Time) {
	t := r.t
	if h := t.history; h != nil {
		r.history = h
		select {
		case <-h.done:
			t.history, r.historyDone = nil, true
		default:
		}
		return
	}
	req, wanted := t.eng.HistoryWanted(now)
	if !wanted || c.deps.History == nil {
		return
	}
	t.history = c.loadHistory(ctx, r.p, req)
	r.history, r.historyStarted = t.history, true
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

// fitOutcome is what handing an arrived history to the engine did, for act to report.
type fitOutcome struct {
	// dropped: a reload changed the forecast while the history loaded; it was not the one
	// wanted now (that one, if any, loads next).
	dropped bool
	fitted  engine.Fitted
	err     error // Fit's
}

// handHistory is decide's part of the forecast's history: an arrived history that is still
// the one the engine wants is fitted on; while one loads for a first fit, the engine waits
// for it (a reload may have rebuilt the forecaster since it started).
func (r *pass) handHistory(now time.Time) {
	h, eng := r.history, r.t.eng
	if h == nil {
		return
	}
	req, wanted := eng.HistoryWanted(now)
	switch {
	case !r.historyDone:
		if wanted && !req.Refit {
			eng.SetHistoryLoading()
		}
	case !wanted || req.Query != h.req.Query || req.Refit != h.req.Refit:
		r.fit = &fitOutcome{dropped: true}
	default:
		f, err := eng.Fit(h.samples, h.err, now)
		r.fit = &fitOutcome{fitted: f, err: err}
	}
}

// reportHistory is act's part of the forecast's history: the load started, and what
// fitting on an arrived one did.
func (r *pass) reportHistory(ctx context.Context) {
	logger := klog.FromContext(ctx)
	h, p := r.history, r.p
	if r.historyStarted {
		logger.V(2).Info("Loading the forecast's history in the background", "from", h.req.Start, "to", h.req.End,
			"step", h.req.Step, "refit", h.req.Refit)
	}
	fo := r.fit
	if fo == nil {
		return
	}
	if fo.dropped {
		logger.V(2).Info("Dropped a forecast history loaded for another forecast", "query", h.req.Query)
		return
	}
	req := h.req
	if h.err != nil {
		if !req.Refit {
			logger.Error(h.err, "Loading the forecast's history failed; the forecast starts without it and learns as it goes")
			r.event(corev1.EventTypeWarning, ReasonForecastHistoryFailed, "",
				fmt.Sprintf("loading %s of forecast history failed, the forecast starts without it: %v", p.Forecast.HistoryOrDefault(), h.err))
		}
	} else {
		logger.Info("Loaded the forecast's history", "samples", len(h.samples), "from", req.Start, "to", req.End, "step", req.Step,
			"took", h.took)
	}
	f := fo.fitted
	switch {
	case fo.err != nil && req.Refit:
		logger.Error(fo.err, "Refitting the forecast failed; it keeps its fit and retries", "retryAt", f.Next)
		r.event(corev1.EventTypeWarning, ReasonForecastRefitFailed, "",
			fmt.Sprintf("%v; it keeps its fit and retries at %s", fo.err, f.Next.Format(time.RFC3339)))
	case fo.err != nil:
		logger.Error(fo.err, "Building the forecaster failed; the policy scales reactively")
		r.event(corev1.EventTypeWarning, ReasonForecastFailed, "", fmt.Sprintf("building the forecaster failed: %v", fo.err))
	case req.Refit:
		logger.Info("Refitted the forecast", "samples", f.Samples, "horizon", f.Horizon, "next", f.Next)
	}
}

// historyTimeout bounds the loading of one forecast history.
const historyTimeout = 2 * time.Minute

// forecastEvents reports a missing load and the gate's transitions.
func (r *pass) forecastEvents(ctx context.Context) {
	c, p, res := r.c, r.p, r.res
	if res.LoadErr != nil {
		reason := ReasonFailedGetMetric
		if c.deps.ErrorKind(res.LoadErr) == "stale" {
			reason = ReasonMetricsStale
		}
		r.event(corev1.EventTypeWarning, reason, condLoad,
			fmt.Sprintf("the forecast's load is missing (%v); no scale-down while it is, and the forecast stops one horizon after its last sample", res.LoadErr))
	} else {
		r.t.forgetCondition(condLoad)
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
		r.event(corev1.EventTypeWarning, ReasonForecastGated, "",
			fmt.Sprintf("the load exceeded the forecast's planned quantile in %.0f%% of the last %s, above gate.maxError %g: the forecast is gated off, the policy scales reactively", 100*under, window, maxErr))
		return
	}
	klog.FromContext(ctx).Info("Forecast ungated", kv...)
	r.event(corev1.EventTypeNormal, ReasonForecastUngated, "",
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
func setOrDelete(g *SeriesVec, name string, v float64, ok bool) {
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
