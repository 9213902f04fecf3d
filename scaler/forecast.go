package scaler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

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

// ReasonForecastUngated is the event reason of a forecast that the gate lets through
// again; the opposite transition's is policy.ReasonForecastGated.
const ReasonForecastUngated = "ForecastUngated"

// predictor is one policy's forecast between ticks.
type predictor struct {
	spec    policy.Forecast   // the spec it was built for: another one rebuilds it
	pred    *policy.Predictor // nil when it could not be built
	history int               // load samples it was last fitted on
	refitAt time.Time         // when to refit it on the latest history
}

// RefitPeriod is how often a policy's forecaster is refitted on the last forecast.history
// of load (one range query, as at start-up): its smoothing parameters, and auto's choice
// of method, follow the traffic as it changes. The backtest refits as often.
const RefitPeriod = 24 * time.Hour

// refitRetry is how soon a refit whose history could not be loaded is tried again.
const refitRetry = time.Hour

// refitSpread staggers the policies' refits over an hour (by a hash of the name), so that
// policies built at the same start-up do not all query their history at the same tick.
func refitSpread(name string) time.Duration {
	var h uint32 = 2166136261 // FNV-1a
	for i := 0; i < len(name); i++ {
		h = (h ^ uint32(name[i])) * 16777619
	}
	return time.Duration(h%3600) * time.Second
}

// ForecastStatus is the forecast's part of a policy's status and of its decision record:
// the decision's forecast (nil before the forecaster predicts) and what went into it.
type ForecastStatus struct {
	*policy.ForecastResult
	// HorizonSeconds is how far ahead it predicts; StartupSeconds the pods' start-up time
	// that horizon: auto adds one interval to: the measured p90, or DefaultStartup while
	// StartupMeasured is false.
	HorizonSeconds  float64 `json:"horizonSeconds"`
	StartupSeconds  float64 `json:"startupSeconds"`
	StartupMeasured bool    `json:"startupMeasured"`
	// Error is what the gate judges against gate.maxError: the fraction of the window's
	// comparisons in which the load exceeded the planned quantile made one horizon earlier;
	// nil while the window is empty.
	Error *float64 `json:"error,omitempty"`
	// MAPE is the point forecast's weighted MAPE over the gate's window (reported, not
	// gated on); nil while the window has no load.
	MAPE *float64 `json:"mape,omitempty"`
	// LoadError says why the load query had no usable sample at this tick.
	LoadError string `json:"loadError,omitempty"`
	// HistorySamples is how many load samples the forecaster was fitted on when built.
	HistorySamples int `json:"historySamples"`
}

// forecasting returns the policy's forecast, nil without one or with method off.
func forecasting(p *policy.Policy) *policy.Forecast {
	if p.Forecast == nil || p.Forecast.MethodOrDefault() == forecast.MethodOff {
		return nil
	}
	return p.Forecast
}

// ensurePredictor builds the policy's Predictor when it has none or its forecast block
// changed: fitted on the load history (one range query per policy, chunked) at the
// controller's interval, so that it predicts from its first tick. A history that cannot
// be loaded is reported, and the Predictor starts empty and learns as it goes.
func (c *Controller) ensurePredictor(ctx context.Context, p *policy.Policy, t *target, o *observed, now time.Time) {
	f := forecasting(p)
	if t.fc != nil && reflect.DeepEqual(t.fc.spec, *f) {
		return
	}
	logger := klog.FromContext(ctx).WithValues("policy", p.Name)
	if t.fc != nil {
		logger.Info("Forecast changed; rebuilding its forecaster")
	}
	step := c.opts.Interval
	horizon := f.HorizonFor(t.startup.orDefault(), step)
	history, err := c.backfill(ctx, p, now, step)
	if err != nil {
		logger.Error(err, "Loading the forecast's history failed; the forecast starts without it and learns as it goes")
		c.event(ctx, t, o.ref, corev1.EventTypeWarning, "ForecastHistoryFailed", "",
			fmt.Sprintf("loading %s of forecast history failed, the forecast starts without it: %v", f.HistoryOrDefault(), err))
		history = nil
	}
	pred, err := policy.NewPredictor(f, step, horizon, history)
	if err != nil { // not expected: the spec passed Validate
		logger.Error(err, "Building the forecaster failed; the policy scales reactively")
		c.event(ctx, t, o.ref, corev1.EventTypeWarning, "ForecastFailed", "", fmt.Sprintf("building the forecaster failed: %v", err))
	}
	t.fc = &predictor{spec: *f, pred: pred, history: len(history), refitAt: now.Add(RefitPeriod + refitSpread(p.Name))}
}

// maybeRefit refits the policy's Predictor on the latest history once RefitPeriod has
// passed since it was built or last refitted. The gate and perReplica: auto keep what they
// learned. A history that cannot be loaded keeps the current fit, and is tried again in an
// hour.
func (c *Controller) maybeRefit(ctx context.Context, p *policy.Policy, t *target, o *observed, now time.Time) {
	if t.fc == nil || t.fc.pred == nil || now.Before(t.fc.refitAt) {
		return
	}
	logger := klog.FromContext(ctx).WithValues("policy", p.Name)
	history, err := c.backfill(ctx, p, now, c.opts.Interval)
	if err == nil && len(history) == 0 {
		err = errors.New("no samples")
	}
	if err == nil {
		// for the horizon of now: horizon: auto follows the pods' measured start-up
		err = t.fc.pred.RefitHorizon(history, p.Forecast.HorizonFor(t.startup.orDefault(), c.opts.Interval))
	}
	if err != nil {
		t.fc.refitAt = now.Add(refitRetry)
		logger.Error(err, "Refitting the forecast failed; it keeps its fit and retries", "retryIn", refitRetry)
		c.event(ctx, t, o.ref, corev1.EventTypeWarning, "ForecastRefitFailed", "",
			fmt.Sprintf("refitting the forecast on its last %s failed, it keeps its fit and retries in %s: %v", p.Forecast.HistoryOrDefault(), refitRetry, err))
		return
	}
	t.fc.history, t.fc.refitAt = len(history), now.Add(RefitPeriod)
	logger.Info("Refitted the forecast", "samples", len(history), "horizon", t.fc.pred.Horizon(), "next", t.fc.refitAt)
}

// backfill loads the load's history: forecast.history up to one step before now (now's
// sample is the first tick's), every step.
func (c *Controller) backfill(ctx context.Context, p *policy.Policy, now time.Time, step time.Duration) ([]forecast.Sample, error) {
	f := p.Forecast
	h := f.HistoryOrDefault()
	if c.deps.History == nil || h < step {
		return nil, nil
	}
	start := c.deps.Clock.Now()
	samples, err := c.deps.History.History(ctx, f.Load.Query, now.Add(-h), now.Add(-step), step, c.opts.Staleness)
	if err != nil {
		return nil, fmt.Errorf("load %s of history of forecast.load.query %q: %w", h, f.Load.Query, err)
	}
	klog.FromContext(ctx).Info("Loaded the forecast's history", "policy", p.Name, "samples", len(samples),
		"history", h, "step", step, "took", c.deps.Clock.Since(start))
	return samples, nil
}

// observeForecast feeds this tick's load sample to the Predictor and sets the forecast of
// the observation: its ForecastInput, or LoadErr when the load is missing (it then holds a
// scale-down, and never reaches the forecaster as 0). It reports the gate's transitions and
// returns the forecast's status and the load for Learn.
func (c *Controller) observeForecast(ctx context.Context, p *policy.Policy, t *target, o *observed, now time.Time) (*ForecastStatus, float64, bool) {
	f := forecasting(p)
	startup, measured := t.startup.p90()
	if !measured {
		startup = DefaultStartup
	}
	horizon := f.HorizonFor(startup, c.opts.Interval)
	st := &ForecastStatus{HorizonSeconds: horizon.Seconds(), StartupSeconds: startup.Seconds(), StartupMeasured: measured,
		HistorySamples: t.fc.history}
	if t.fc.pred == nil {
		return st, 0, false
	}
	load, err := loadValue(o.load)
	if err != nil {
		o.in.LoadErr = fmt.Errorf("forecast.load.query %q: %w", f.Load.Query, err)
		st.LoadError = err.Error()
		reason := "FailedGetMetric"
		if c.deps.ErrorKind(err) == "stale" {
			reason = "MetricsStale"
		}
		c.event(ctx, t, o.ref, corev1.EventTypeWarning, reason, "forecast/load",
			fmt.Sprintf("the forecast's load is missing (%v); no scale-down while it is, and the forecast stops one horizon after its last sample", err))
	} else {
		t.forgetCondition("forecast/load")
	}
	o.in.Forecast = t.fc.pred.Observe(load, err == nil, now, horizon)

	gated, changed, mape, known := t.fc.pred.Gate()
	if known {
		st.MAPE = &mape
	}
	under, judged := t.fc.pred.GateUnderRate()
	if judged {
		st.Error = &under
	}
	if changed {
		maxErr, window := f.GateOrDefault()
		logger := klog.FromContext(ctx)
		if gated {
			logger.Info("Forecast gated off", "policy", p.Name, "underRate", under, "maxError", maxErr, "window", window, "mape", mape)
			c.event(ctx, t, o.ref, corev1.EventTypeWarning, string(policy.ReasonForecastGated), "",
				fmt.Sprintf("the load exceeded the forecast's planned quantile in %.0f%% of the last %s, above gate.maxError %g: the forecast is gated off, the policy scales reactively", 100*under, window, maxErr))
		} else {
			logger.Info("Forecast ungated", "policy", p.Name, "underRate", under, "maxError", maxErr, "window", window, "mape", mape)
			c.event(ctx, t, o.ref, corev1.EventTypeNormal, ReasonForecastUngated, "",
				fmt.Sprintf("the load exceeded the forecast's planned quantile in %.0f%% of the last %s, at or below gate.maxError %g: the forecast applies again", 100*under, window, maxErr))
		}
	}
	return st, load, err == nil
}

// loadValue is the load of a sample: a single value, or the sum of a per-pod result.
// A missing, negative or empty sample is an error, never zero.
func loadValue(s policy.Sample) (float64, error) {
	if s.Err != nil {
		return 0, s.Err
	}
	v := s.Value
	if s.PerPod != nil {
		if len(s.PerPod) == 0 {
			return 0, errors.New("no series")
		}
		v = 0
		for _, x := range s.PerPod {
			v += x
		}
	}
	if !(v >= 0) || v > maxLoad {
		return 0, fmt.Errorf("load %v: want a finite number >= 0", v)
	}
	return v, nil
}

// maxLoad bounds a usable load; larger ones (and ±Inf) are errors.
const maxLoad = 1e15

// reportForecast sets the forecast's metrics from the decision and the status: a value
// that is missing removes its series (the gate's, when the forecaster could not be built).
func (c *Controller) reportForecast(p *policy.Policy, fc *predictor, dec policy.Decision, st *ForecastStatus) {
	m, name := c.deps.Metrics, p.Name
	m.ForecastHorizon.WithLabelValues(name).Set(st.HorizonSeconds)
	m.ForecastHistorySamples.WithLabelValues(name).Set(float64(st.HistorySamples))
	setOrDelete(m.PodStartup, name, st.StartupSeconds, st.StartupMeasured)
	var gated float64
	if fc.pred != nil {
		if g, _, _, _ := fc.pred.Gate(); g {
			gated = 1
		}
	}
	setOrDelete(m.ForecastGated, name, gated, fc.pred != nil)
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
	dec, st := t.last, t.forecast
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
