package engine

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// RefitPeriod is how often a policy's forecaster is refitted on its last forecast.history
// of load: its smoothing parameters, and auto's choice of method, follow the traffic as it
// changes. Refits keep to this schedule from the first fit (plus Options.RefitDelay).
const RefitPeriod = 24 * time.Hour

// RefitRetry is how soon a refit whose history could not be loaded is tried again.
const RefitRetry = time.Hour

// maxLoad bounds a usable load; larger ones (and ±Inf) are missing.
const maxLoad = 1e15

// Stagger spreads the first refit of a controller's policies over an hour, by a hash of the
// policy's name (FNV-1a), so that policies built at the same start-up do not all load their
// history at the same tick. Use it as Options.RefitDelay.
func Stagger(name string) time.Duration {
	var h uint32 = 2166136261
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
	// that horizon: auto adds one tick to: the measured p90, or Options.DefaultStartup
	// while StartupMeasured is false.
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
	// LoadMissingSince is the first sample of the current run of load samples without a
	// usable value; zero while the last one was usable. Drivers say so once it lasts
	// (scaler: ForecastLoadMissing).
	LoadMissingSince time.Time `json:"loadMissingSince,omitzero"`
	// LoadWarnings are the load sample's warnings (policy.Sample.Warnings: a partial
	// answer), used as it was.
	LoadWarnings []string `json:"loadWarnings,omitempty"`
	// HistorySamples is how many load samples the forecaster was last fitted on.
	HistorySamples int `json:"historySamples"`
	// HistoryLoading is true while the forecaster waits for its first history, which the
	// driver loads in the background (SetHistoryLoading): it forecasts nothing until then.
	HistoryLoading bool `json:"historyLoading,omitempty"`
	// Fitted is false when the forecaster could not be built (the policy then scales
	// reactively); Gated whether the accuracy gate holds the forecast off.
	Fitted bool `json:"-"`
	Gated  bool `json:"-"`
}

// Copy returns a copy of st that shares no storage with the engine.
func (st *ForecastStatus) Copy() *ForecastStatus {
	if st == nil {
		return nil
	}
	c := *st
	if st.Error != nil {
		v := *st.Error
		c.Error = &v
	}
	if st.MAPE != nil {
		v := *st.MAPE
		c.MAPE = &v
	}
	return &c
}

// Forecasting returns the policy's forecast, nil without one or with method off.
func Forecasting(p *policy.Policy) *policy.Forecast {
	if p.Forecast == nil || p.Forecast.MethodOrDefault() == forecast.MethodOff {
		return nil
	}
	return p.Forecast
}

// forecaster is one policy's forecast between ticks.
type forecaster struct {
	spec policy.Forecast // the spec it was built for: another one rebuilds it
	// pred is nil until the first fit, and when that fit failed (built is then true).
	pred    *predictor
	built   bool
	samples int // load samples of the last fit
	// loading is true while the driver loads the first fit's history in the background:
	// the forecaster is not built without it.
	loading bool
	// missingSince is the first sample of the current run of missing load samples (zero
	// while the last one was usable).
	missingSince time.Time
	refitAt      time.Time // when the next refit is due
	// loads are the load samples of the last forecast.history (Options.KeepLoad).
	loads []forecast.Sample
	// input is the forecast of the current Step, nil without one.
	input *policy.ForecastInput
	// hold is forecast.hold for the policy in force; held[heldHead:] are the plans of the
	// last hold in time order, each smaller than the one before (a monotonic queue: its
	// head is the largest).
	hold     time.Duration
	held     []heldPlan
	heldHead int
	// decay shapes the hold (ObjectiveHoldDecay) with an objective; 0 or +Inf keeps a
	// held plan in full for the hold.
	decay float64
	// st, underRate and mape are the storage of the status each Step returns, reused so
	// that a Step allocates nothing for it.
	st              ForecastStatus
	underRate, mape float64
}

// heldPlan is a load planned at an instant.
type heldPlan struct {
	at    time.Time
	value float64
}

func newForecaster(f *policy.Forecast) *forecaster { return &forecaster{spec: *f} }

// holdPlan applies forecast.hold to the forecast of this Step: a plan made now (fresh)
// joins the queue, plans older than the hold leave it, and the largest left is the plan;
// with a decay, the largest of the plans left each counted as it has aged
// (ObjectiveHoldDecay).
func (fc *forecaster) holdPlan(fresh bool, now time.Time) {
	in := fc.input
	if fc.hold <= 0 || in == nil {
		fc.held, fc.heldHead = fc.held[:0], 0
		return
	}
	if fresh {
		for len(fc.held) > fc.heldHead && fc.held[len(fc.held)-1].value <= in.Value {
			fc.held = fc.held[:len(fc.held)-1]
		}
		fc.held = append(fc.held, heldPlan{at: now, value: in.Value})
	}
	cut := now.Add(-fc.hold)
	for fc.heldHead < len(fc.held) && !fc.held[fc.heldHead].at.After(cut) {
		fc.heldHead++
	}
	if fc.heldHead > 32 && fc.heldHead > len(fc.held)/2 {
		fc.held = fc.held[:copy(fc.held, fc.held[fc.heldHead:])]
		fc.heldHead = 0
	}
	if fc.decay > 0 && !math.IsInf(fc.decay, 1) {
		// Each held plan counts less as it ages. The queue's order still holds: a plan
		// popped by a larger, newer one would count less than it. A plan counts at most its
		// value, and the values fall along the queue, so the walk stops at the first plan
		// no larger than the best so far.
		fresh := in.Value
		for _, h := range fc.held[fc.heldHead:] {
			if h.value <= in.Value {
				break
			}
			a := float64(now.Sub(h.at)) / float64(fc.hold)
			var f float64
			if fc.decay == 2 {
				f = 1 - a*a
			} else {
				f = 1 - math.Pow(a, fc.decay)
			}
			if v := fresh + (h.value-fresh)*f; v > in.Value {
				in.Value = v
			}
		}
		return
	}
	if fc.heldHead < len(fc.held) && fc.held[fc.heldHead].value > in.Value {
		in.Value = fc.held[fc.heldHead].value
	}
}

func (fc *forecaster) sameSpec(f *policy.Forecast) bool { return reflect.DeepEqual(fc.spec, *f) }

// HistoryRequest is the load history a fit needs: forecast.load.query's samples every Step
// from Start to End (both included).
type HistoryRequest struct {
	Query      string
	Start, End time.Time
	Step       time.Duration
	// Refit is true for a refit of a fitted forecaster, false for its first fit.
	Refit bool
}

// HistoryWanted returns the history to load before the Step at now, and false when there is
// none to load: no forecast, the first fit with a forecast.history shorter than one
// LoadStep, Options.KeepLoad, or no fit due. The range ends one LoadStep before now: now's
// sample is the Step's.
func (e *Engine) HistoryWanted(now time.Time) (HistoryRequest, bool) {
	fc := e.fc
	if fc == nil || e.opts.KeepLoad {
		return HistoryRequest{}, false
	}
	h, step := fc.spec.HistoryOrDefault(), e.opts.loadStep()
	if h < step {
		return HistoryRequest{}, false
	}
	r := HistoryRequest{Query: fc.spec.Load.Query, Start: now.Add(-h), End: now.Add(-step), Step: step, Refit: fc.built}
	switch {
	case !fc.built:
		return r, true
	case fc.pred != nil && !now.Before(fc.refitAt):
		return r, true
	}
	return HistoryRequest{}, false
}

// SetHistoryLoading says that the driver is loading the history of the first fit, which
// HistoryWanted asked for, in the background: until Fit hands it over, Steps do not build
// the forecaster without it, and forecast nothing (ForecastStatus.HistoryLoading). It does
// nothing once the forecaster is built (a refit's history loads while the fit in force
// predicts), and a rebuilt forecaster (a reload that changed the forecast) does not wait.
func (e *Engine) SetHistoryLoading() {
	if fc := e.fc; fc != nil && !fc.built {
		fc.loading = true
	}
}

// Fitted says what Fit did.
type Fitted struct {
	Refit   bool
	Samples int
	Horizon time.Duration
	// Next is when the next refit is due.
	Next time.Time
}

// Fit fits the forecaster on history, the samples HistoryWanted asked for, in time order;
// loadErr is why they could not be loaded. A first fit whose history failed starts without
// it (it learns as it goes); a refit whose history failed or was empty keeps its fit and
// is due again after RefitRetry. The error says what failed (the driver reports it); a
// first fit that fails leaves the policy without a forecast until its spec changes.
func (e *Engine) Fit(history []forecast.Sample, loadErr error, now time.Time) (Fitted, error) {
	fc := e.fc
	if fc == nil {
		return Fitted{}, nil
	}
	if !fc.built {
		if loadErr != nil {
			history = nil
		}
		err := fc.build(e, history, now)
		return Fitted{Samples: fc.samples, Horizon: e.horizon(&fc.spec), Next: fc.refitAt}, err
	}
	err := loadErr
	if err == nil && len(history) == 0 {
		err = errors.New("no samples")
	}
	return fc.refit(e, history, err, now)
}

// build fits the first forecaster.
func (fc *forecaster) build(e *Engine, history []forecast.Sample, now time.Time) error {
	fc.built, fc.loading, fc.samples = true, false, len(history)
	fc.refitAt = now.Add(RefitPeriod + e.opts.RefitDelay)
	pred, err := newPredictor(&fc.spec, e.opts.loadStep(), e.horizon(&fc.spec), history)
	if err != nil { // not expected: the spec passed Validate
		return fmt.Errorf("build the forecaster: %w", err)
	}
	fc.pred = pred
	pred.SetWake(e.wk != nil)
	return nil
}

// refit fits the forecaster again on history, for the horizon of now (horizon: auto follows
// the pods' measured start-up), unless err says the history is unusable.
func (fc *forecaster) refit(e *Engine, history []forecast.Sample, err error, now time.Time) (Fitted, error) {
	horizon := e.horizon(&fc.spec)
	if err == nil {
		err = fc.pred.RefitHorizon(history, horizon)
	}
	if err != nil {
		fc.refitAt = now.Add(RefitRetry)
		return Fitted{Refit: true, Horizon: fc.pred.Horizon(), Next: fc.refitAt},
			fmt.Errorf("refit the forecast on its last %s: %w", fc.spec.HistoryOrDefault(), err)
	}
	fc.samples = len(history)
	for !fc.refitAt.After(now) {
		fc.refitAt = fc.refitAt.Add(RefitPeriod)
	}
	return Fitted{Refit: true, Samples: fc.samples, Horizon: horizon, Next: fc.refitAt}, nil
}

// keep adds a load sample to the kept history, refitting first when a refit is due (on
// the samples of the last forecast.history before now).
func (fc *forecaster) keep(e *Engine, load float64, now time.Time) {
	h := fc.spec.HistoryOrDefault()
	if h <= 0 {
		return
	}
	if fc.pred != nil && !now.Before(fc.refitAt) {
		cut := now.Add(-h)
		i := 0
		for i < len(fc.loads) && fc.loads[i].At.Before(cut) {
			i++
		}
		fc.loads = fc.loads[:copy(fc.loads, fc.loads[i:])]
		var err error
		if len(fc.loads) == 0 {
			err = errors.New("no samples")
		}
		// A failed refit keeps the fit and is retried: the status reports the samples of the
		// fit in force.
		_, _ = fc.refit(e, fc.loads, err, now)
	}
	fc.loads = append(fc.loads, forecast.Sample{At: now, Value: load})
}

// observe feeds the Step's load sample (nil: not sampled this tick) to the predictor and
// returns the forecast's status, the load for Learn, why it was missing, and whether the
// gate changed. The forecast for Decide is left in fc.input.
func (fc *forecaster) observe(e *Engine, sample *policy.Sample, now time.Time) (st *ForecastStatus, load float64, ok bool, loadErr error, gateChanged bool) {
	fc.input = nil
	if !fc.built && !fc.loading {
		// No history was loaded (the driver has no source, or keeps the load itself).
		_ = fc.build(e, nil, now)
	}
	horizon := e.horizon(&fc.spec)
	fc.st = ForecastStatus{HorizonSeconds: horizon.Seconds(), StartupSeconds: e.startup.Seconds(), StartupMeasured: e.measured,
		HistorySamples: fc.samples, Fitted: fc.pred != nil, HistoryLoading: !fc.built}
	st = &fc.st
	if fc.pred == nil {
		return st, 0, false, nil, false
	}
	if e.obj != nil {
		fc.pred.SetQuantile(e.obj.st.Quantile)
		fc.pred.SetReach(ObjectiveMaxQuantile)
		fc.hold, fc.decay = e.obj.holdFor(), e.obj.pacing.holdDecay()
	}
	if sample != nil {
		st.LoadWarnings = sample.Warnings
		load, loadErr = loadValue(*sample)
		ok = loadErr == nil
		switch {
		case ok:
			fc.missingSince = time.Time{}
		case fc.missingSince.IsZero():
			fc.missingSince = now
		}
		if loadErr != nil {
			st.LoadError = loadErr.Error()
		}
	}
	st.LoadMissingSince = fc.missingSince
	if ok && e.opts.KeepLoad {
		fc.keep(e, load, now)
		st.HistorySamples = fc.samples
	}
	fc.input = fc.pred.Observe(load, ok, now, horizon)
	fc.holdPlan(ok, now)
	if e.obj != nil {
		e.obj.reach(fc.pred.Reach())
	}
	gated, changed, mape, known := fc.pred.Gate()
	st.Gated = gated
	if known {
		fc.mape = mape
		st.MAPE = &fc.mape
	}
	if under, judged := fc.pred.GateUnderRate(); judged {
		fc.underRate = under
		st.Error = &fc.underRate
	}
	return st, load, ok, loadErr, changed
}

// loadValue is the load of a sample: a single value, or the sum of a per-pod result.
// A missing, negative, non-finite or empty sample is an error, never zero.
func loadValue(s policy.Sample) (float64, error) {
	v, err := sampleTotal(s)
	if err != nil {
		return 0, err
	}
	if !(v >= 0) || v > maxLoad {
		return 0, fmt.Errorf("load %v: want a finite number >= 0", v)
	}
	return v, nil
}

// sampleTotal is a sample's value: its single value, or the sum of its per-pod result. The
// sample's error, and an empty per-pod result, are errors, never zero.
func sampleTotal(s policy.Sample) (float64, error) {
	if s.Err != nil {
		return 0, s.Err
	}
	if s.PerPod == nil {
		return s.Value, nil
	}
	if len(s.PerPod) == 0 {
		return 0, errors.New("no series")
	}
	var v float64
	for _, x := range s.PerPod {
		v += x
	}
	return v, nil
}

// aheadPoints is how many instants between the horizon and the horizon plus a lead Ahead
// asks the forecaster about: a peak within the lead that has passed by its end still
// counts.
const aheadPoints = 4

// AheadState says what Ahead knows of the load ahead.
type AheadState int

const (
	// AheadKnown: the forecast is in use; the replicas are its plan.
	AheadKnown AheadState = iota
	// AheadOff: the policy has no forecast (none configured, method off, or its fit
	// failed), or the accuracy gate holds it off: nothing is planned ahead.
	AheadOff
	// AheadUnknown: the forecast is not known yet, or not now: its history is loading, it
	// is warming up, perReplica: auto has not learned the load a replica carries, or the
	// load has been missing for longer than a horizon. Missing data plans nothing away: a
	// caller keeps what it planned last.
	AheadUnknown
)

// Ahead returns the replicas that the forecast of the last Step plans for over the lead
// beyond its horizon: the largest load at the planned quantile at aheadPoints instants
// evenly spaced from horizon + lead/aheadPoints to horizon + lead after the last load
// sample, over the load one replica carries, rounded up and at most the policy's
// maxReplicas. A node autoscaler's buffer is sized on it: a pod that will need a node
// booted in lead must have its node asked for now. The replicas are valid when the state
// is AheadKnown; a lead ≤ 0 is AheadOff.
func (e *Engine) Ahead(lead time.Duration) (replicas int32, state AheadState) {
	fc := e.fc
	switch {
	case fc == nil || lead <= 0 || fc.built && fc.pred == nil:
		return 0, AheadOff
	case fc.pred == nil || fc.input == nil:
		return 0, AheadUnknown
	case fc.input.Gated:
		return 0, AheadOff
	case !fc.input.PerReplicaKnown || !(fc.input.PerReplica > 0):
		return 0, AheadUnknown
	}
	h := e.horizon(&fc.spec)
	var load float64
	for k := 1; k <= aheadPoints; k++ {
		p, have := fc.pred.f.Predict(h+lead*time.Duration(k)/aheadPoints, fc.pred.quantile)
		if !have || math.IsNaN(p.Hi) || math.IsInf(p.Hi, 0) {
			return 0, AheadUnknown
		}
		load = max(load, p.Hi)
	}
	n := math.Ceil(load / fc.input.PerReplica)
	if n >= float64(e.p.MaxReplicas) {
		return e.p.MaxReplicas, AheadKnown
	}
	return int32(n), AheadKnown
}
