package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/prescale/prescale/policy"
)

// Options say how a driver ticks. The same policy decides the same way in every driver;
// only how often it is observed differs.
type Options struct {
	// Tick is the time between two Steps: the controller's interval, the backtest's tick.
	Tick time.Duration
	// LoadStep is how often the driver samples the forecast's load, a multiple of Tick (0:
	// every tick). The forecaster steps at LoadStep, and a forecast made at a sample serves
	// the ticks until the next one, so its horizon reaches LoadStep - Tick further.
	LoadStep time.Duration
	// Pacing are the objective's pacing constants (zero: the defaults); only the choice of
	// those constants on traces sets them.
	Pacing Pacing
	// DefaultStartup is the pods' start-up time that horizon: auto assumes until SetStartup
	// reports a measured one.
	DefaultStartup time.Duration
	// HPAEquivalent also decides, at each Step, what the HPA would on the same metrics: the
	// policy without its forecast, with its own History (the GPU allocation, after Step,
	// caps only Decision).
	HPAEquivalent bool
	// KeepLoad keeps the load samples of the last forecast.history in memory and refits the
	// forecaster on them when a refit is due: for drivers without a history source (the
	// backtest, replay). Without it the driver loads the history HistoryWanted asks for.
	KeepLoad bool
	// RefitDelay postpones the first refit past RefitPeriod (Stagger spreads a controller's
	// policies over an hour).
	RefitDelay time.Duration
}

func (o Options) validate() error {
	var errs []error
	if o.Tick <= 0 {
		errs = append(errs, fmt.Errorf("tick: must be > 0, got %s", o.Tick))
	}
	if o.LoadStep < 0 || (o.LoadStep > 0 && o.Tick > 0 && o.LoadStep%o.Tick != 0) {
		errs = append(errs, fmt.Errorf("loadStep: must be 0 or a multiple of the tick %s, got %s", o.Tick, o.LoadStep))
	}
	if o.DefaultStartup < 0 {
		errs = append(errs, fmt.Errorf("defaultStartup: must be >= 0, got %s", o.DefaultStartup))
	}
	if o.RefitDelay < 0 {
		errs = append(errs, fmt.Errorf("refitDelay: must be >= 0, got %s", o.RefitDelay))
	}
	return errors.Join(errs...)
}

func (o Options) loadStep() time.Duration {
	if o.LoadStep == 0 {
		return o.Tick
	}
	return o.LoadStep
}

// Engine is one policy's autoscaler between ticks. Create it with New.
type Engine struct {
	p    *policy.Policy
	opts Options
	hist policy.History // the policy's
	hpa  policy.History // the HPA-equivalent decision's
	fc   *forecaster    // nil while the policy has no forecast (or method off)
	obj  *objective     // nil without an objective
	wk   *waker         // nil while wake-ahead is off
	// hpaP is the policy the HPA-equivalent decides: without scaleToZero, which the HPA
	// does not have.
	hpaP *policy.Policy
	// seen, lastSpec and lastWrites are the last Step's spec.replicas and whether its
	// driver could write: a change of spec.replicas that the engine did not write is
	// another writer's.
	seen       bool
	lastSpec   int32
	lastWrites bool
	startup    time.Duration
	measured   bool
	// loadLag is how far the load query trails demand (SetLoadLag).
	loadLag time.Duration
}

// New returns the engine of policy p, which must have passed Validate. Its forecaster is
// fitted at the first Fit, or, without one, at the first Step with no history.
func New(p *policy.Policy, opts Options) (*Engine, error) {
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("engine options for policy %s: %w", p.Name, err)
	}
	e := &Engine{opts: opts, startup: opts.DefaultStartup}
	e.SetPolicy(p)
	return e, nil
}

// Policy returns the policy in force.
func (e *Engine) Policy() *policy.Policy { return e.p }

// SetPolicy replaces the policy (a reload). The decision History carries over; the
// forecaster too, unless the forecast block changed: then it is fitted again (HistoryWanted
// asks for its history).
func (e *Engine) SetPolicy(p *policy.Policy) {
	e.p, e.hpaP = p, p
	if p.ScaleToZero != nil {
		hp := *p
		hp.ScaleToZero = nil
		e.hpaP = &hp
	}
	switch {
	case !p.WakeAheadOn():
		e.wk = nil
	case e.wk == nil:
		e.wk = newWaker(p)
	default:
		e.wk.setPolicy(p)
	}
	switch {
	case p.Objective == nil:
		e.obj = nil
	case e.obj == nil:
		e.obj = newObjective(p, e.opts.Pacing)
	default:
		e.obj.setPolicy(p)
	}
	f := Forecasting(p)
	switch {
	case f == nil:
		e.fc = nil
	case e.fc == nil || !e.fc.sameSpec(f):
		e.fc = newForecaster(f)
	}
	if e.fc != nil {
		// Without an objective the hold is plain; with one, Step sets both from it.
		e.fc.hold, e.fc.decay = f.HoldFor(p.Objective != nil), 0
		if e.fc.pred != nil {
			e.fc.pred.SetWake(e.wk != nil)
		}
	}
}

// Reset forgets the decision History, as for a target deleted and recreated: the old
// recommendations and scale events describe another object. The forecaster is kept: the
// load it learned is the service's, not the object's.
func (e *Engine) Reset() {
	e.hist, e.hpa, e.seen = policy.History{}, policy.History{}, false
}

// Stored is what a driver kept outside the engine of the state a fresh engine cannot
// observe: what the decision record on the target says (scaler's prescale.io/decision
// annotation, replay's "record"). Without it a restarted controller, a new leader or a
// reload that renames a policy would read a target at zero that prescale scaled there as
// one turned off by hand, and never wake it.
type Stored struct {
	// ScaledToZero is the HPA's ScaledToZero condition: the last write of the autoscaler
	// (this instance or one before it) scaled the target from above zero to zero.
	ScaledToZero bool `json:"scaledToZero,omitempty"`
}

// Fresh reports whether the engine has not decided since New or Reset: only then does
// Restore apply, and a driver need read the stored record only then.
func (e *Engine) Fresh() bool { return !e.seen }

// Restore hands a fresh engine (Fresh) what was stored of the last instance's state, before
// its first Step. On an engine that has decided it changes nothing: its own memory is
// newer than any record.
func (e *Engine) Restore(s Stored) {
	if !e.Fresh() {
		return
	}
	e.hist.ScaledToZero, e.hpa.ScaledToZero = s.ScaledToZero, s.ScaledToZero
}

// ScaledToZero reports the ScaledToZero condition as of the last Step and Scaled: what a
// driver stores (Stored) for the next instance.
func (e *Engine) ScaledToZero() bool { return e.hist.ScaledToZero }

// ScalesToZero reports whether a write of the scale from `from` to `to` would set the
// ScaledToZero condition: a driver stores it before that write, so that no instance ever
// finds the target at a zero of its own that it did not record.
func (e *Engine) ScalesToZero(from, to int32) bool { return e.hist.ScaledToZeroAfter(e.p, from, to) }

// SetStartup reports the pods' measured start-up time (the controller's p90), which
// horizon: auto follows; measured false returns to Options.DefaultStartup.
func (e *Engine) SetStartup(d time.Duration, measured bool) {
	if !measured {
		d = e.opts.DefaultStartup
	}
	e.startup, e.measured = d, measured
}

// SetLoadLag reports how far the forecast's load query trails the demand it measures (the
// driver reads it from the query, prom.Lag, and again after a reload changes the query).
// horizon: auto adds it: a forecast made from a sample that trails by d must reach d further
// to see the pods it plans Ready in time. A negative d counts as 0.
func (e *Engine) SetLoadLag(d time.Duration) { e.loadLag = max(d, 0) }

// Input is one tick's observation of the target.
type Input struct {
	// Observation is what the driver read; its Forecast and LoadErr are the engine's to set.
	policy.Observation
	// Load is the sample of forecast.load.query, nil when the driver did not sample the load
	// this tick (it samples every LoadStep). A sample with Err, an empty per-pod result, a
	// negative or non-finite value is missing: it holds any scale-down, never reads as 0.
	Load *policy.Sample
	// Latency is the sample of objective.query, nil when the policy has no objective or
	// the driver did not take it. A missing sample counts for nothing, unless Waiting says
	// that requests wait: the sync is then over the SLO (Waited).
	Latency *policy.Sample
	// Waiting is the sample of objective.waiting, nil when the policy has none or the
	// driver did not take it: the requests waiting to be served (a per-pod result is
	// summed).
	Waiting *policy.Sample
	// Writes says whether the driver may write the decision this tick (it leads and is not
	// in dry-run). A change of spec.replicas seen while either this tick or the last could
	// not write is another writer's, and the rate policies count it as the writer's own
	// history would.
	Writes bool
}

// Result is what one Step decided.
type Result struct {
	Decision policy.Decision
	// HPAEquivalent is what the HPA would decide on the same metrics (no forecast; the GPU
	// allocation never caps it); zero unless Options.HPAEquivalent.
	HPAEquivalent policy.Decision
	// Forecast is the forecast's status, nil for a policy without a forecast. It is valid
	// until the next Step (its storage is reused): Copy it to keep it.
	Forecast *ForecastStatus
	// Objective is the objective's status, nil for a policy without one; valid until the
	// next Step (Copy it to keep it).
	Objective *ObjectiveStatus
	// LoadErr says why the load sample was missing, nil when it was usable or not taken.
	LoadErr error
	// GateChanged: the accuracy gate opened or closed at this Step (Forecast.Gated says
	// which way).
	GateChanged bool
	// Wake is the predictive wake-up's status, nil while it is off; valid until the next
	// Step (Copy it to keep it). WakeGateChanged: its gate closed or opened at this Step (Wake.Gated says which).
	Wake            *WakeStatus
	WakeGateChanged bool
}

// Step decides one tick at now. The forecaster observes the load, its forecast joins the
// metrics in policy.Decide, and perReplica: auto learns from the decision. The caller
// writes the decision and reports the write with Scaled.
func (e *Engine) Step(in Input, now time.Time) Result {
	obs := in.Observation
	obs.Forecast, obs.LoadErr = nil, nil
	cur := obs.SpecReplicas
	if e.seen && e.lastSpec != cur && (!in.Writes || !e.lastWrites) {
		e.record(e.lastSpec, cur, now)
	}
	var res Result
	var load float64
	var loadOK bool
	if e.obj != nil {
		res.Objective = e.obj.observe(in.Latency, in.Waiting, idleLoad(in.Load), e.cold(&obs), now)
	}
	if e.fc != nil {
		res.Forecast, load, loadOK, res.LoadErr, res.GateChanged = e.fc.observe(e, in.Load, now)
		if e.fc.pred != nil {
			if p := e.fc.input; p != nil {
				obs.Forecast = p
			}
			if res.LoadErr != nil {
				obs.LoadErr = fmt.Errorf("forecast.load.query %q: %w", e.fc.spec.Load.Query, res.LoadErr)
			}
		}
	}
	if e.wk != nil {
		res.WakeGateChanged = e.wk.judge(e.p.ScaleToZero, obs.Activation, now)
		obs.WakeGated = e.wk.gated
	}
	dp := e.p
	if e.obj != nil {
		dp = e.obj.policy() // the scale-down window and targets the objective sets
	}
	res.Decision, e.hist = policy.Decide(dp, obs, e.hist, now)
	if e.fc != nil && e.fc.pred != nil {
		e.fc.pred.Learn(res.Decision, load, loadOK)
		res.Forecast.ForecastResult = res.Decision.Forecast
	}
	if e.wk != nil {
		if z := res.Decision.Zero; z != nil && z.ExpectsLoad && e.fc != nil {
			e.wk.claim(now.Add(e.horizon(&e.fc.spec) + e.opts.loadStep()))
		}
		res.Wake = e.wk.status()
	}
	if e.opts.HPAEquivalent {
		hin := obs
		hin.Forecast, hin.LoadErr, hin.Activation, hin.WakeGated = nil, nil, nil, false
		res.HPAEquivalent, e.hpa = policy.Decide(e.hpaP, hin, e.hpa, now)
	}
	e.seen, e.lastSpec, e.lastWrites = true, cur, in.Writes
	return res
}

// idleLoad reports whether the load sample says that nothing arrives (a usable 0): a
// latency is then missing because nothing was served, not because its query is wrong.
func idleLoad(s *policy.Sample) bool {
	if s == nil {
		return false
	}
	v, err := loadValue(*s)
	return err == nil && v == 0
}

// cold reports, for a scaleToZero policy, whether the Step is a cold start: no pod is
// Ready. The objective counts the violated minutes from it until one within the SLO apart.
func (e *Engine) cold(obs *policy.Observation) bool {
	if e.p.ScaleToZero == nil {
		return false
	}
	ready := false
	for i := range obs.Pods {
		if obs.Pods[i].Ready && !obs.Pods[i].Deleting {
			ready = true
			break
		}
	}
	return !ready
}

// Scaled records a change of scale that the driver wrote at now (from the Step's current
// replicas to its desired ones), for the rate policies. Call it only once the write took
// effect: a failed write leaves no trace, and the next Step decides again.
func (e *Engine) Scaled(from, to int32, now time.Time) {
	e.record(from, to, now)
	e.lastSpec = to
}

func (e *Engine) record(from, to int32, now time.Time) {
	e.hist = e.hist.RecordScale(e.p, from, to, now)
	e.hpa = e.hpa.RecordScale(e.hpaP, from, to, now)
}

// horizon is how far ahead the forecast predicts at the current start-up: horizon: auto is
// the start-up plus one tick plus the load query's lag, plus the LoadStep - Tick that a
// forecast serves after its sample.
func (e *Engine) horizon(f *policy.Forecast) time.Duration {
	return f.HorizonFor(e.startup, e.opts.Tick, e.loadLag) + e.opts.loadStep() - e.opts.Tick
}

// Horizon returns how far ahead the forecast predicts at the current start-up, and false
// for a policy without a forecast.
func (e *Engine) Horizon() (time.Duration, bool) {
	if e.fc == nil {
		return 0, false
	}
	return e.horizon(&e.fc.spec), true
}

// DefaultStartup is the pods' start-up time that horizon: auto assumes until one of the
// target's pods has been measured: a few minutes, as a large model takes to load.
const DefaultStartup = 180 * time.Second
