package engine

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// predictor is one policy's forecast state: the fitted forecaster, the accuracy gate, the
// predictions awaiting their comparison one horizon later, and, for perReplica: auto, the
// learner. Like policy.Decide it is pure: every call takes now. It is not safe for
// concurrent use.
//
// Engine.Step drives it each tick, for every driver: in.Forecast = pr.Observe(load, ok, now,
// horizon); dec, hist = policy.Decide(...); pr.Learn(dec, load, ok).
type predictor struct {
	opts     forecast.Options // newPredictor's, for Refit
	f        forecast.Forecaster
	gate     *forecast.Gate
	quantile float64

	// pending are this predictor's predictions, oldest first, each with the instant it is
	// for; Observe compares the latest one due with the load.
	pending     []pendingPrediction
	gateChanged bool
	// last is the instant of the last load sample and made the forecast made at it (nil
	// before warm-up or when the forecaster could not predict).
	last time.Time
	made *policy.ForecastInput
	out  policy.ForecastInput // what Observe returns
	// samples counts the load samples seen, history included; warm is how many make the
	// forecaster trustworthy.
	samples, warm int
	// reachQ is the highest quantile the caller could plan for (0: not tracked); compared
	// and beyond say whether the last Observe's load was compared with a prediction, and
	// whether it exceeded that prediction's plan at reachQ.
	reachQ           float64
	compared, beyond bool

	wake bool // SetWake

	perReplica float64 // fixed, or the learned estimate
	auto       bool
	learned    []float64 // ring of the last learnWindow samples of load / replicas
	next       int
	count      int
	scratch    []float64
}

type pendingPrediction struct {
	at time.Time
	p  forecast.Prediction
	// reach is the load planned at the highest quantile the caller could plan for
	// (SetReach), +Inf when not tracked.
	reach float64
}

// learnWindow is how many samples of load per replica perReplica: auto keeps, and
// learnMin how many it needs before it proposes: a median over the last few hundred
// samples (one a minute: a few hours).
const (
	learnWindow = 256
	learnMin    = 8
)

// learnMinRatio is the smallest ratio of the binding metric that perReplica: auto learns
// from: below 5 % of its target a metric says little about the load (see Learn).
const learnMinRatio = 0.05

// warmupResiduals is how many residuals at the horizon a forecaster must have before its
// predictions are used or judged: the forecast package's own threshold for comparing
// methods and for intervals. Before, a forecaster started without history is still
// settling (Holt's trend fitted on a start-up surge overshoots it several times), and
// the gate would keep that error for a whole window.
const warmupResiduals = 20

// newPredictor fits spec's method on history (in time order, possibly empty) with the
// sampling step (the sync interval) and the fitting horizon (start-up time plus one step
// for horizon: auto). spec must have passed policy's Validate. The error wraps forecast.ErrOptions.
func newPredictor(spec *policy.Forecast, step, horizon time.Duration, history []forecast.Sample) (*predictor, error) {
	opts := forecast.Options{
		Method:  spec.MethodOrDefault(),
		Season:  spec.SeasonOrDefault(),
		Step:    step,
		Horizon: horizon,
		// auto chooses by the loss of what the plan uses, the forecast's quantile
		Quantile: spec.QuantileOrDefault(),
	}
	f, err := forecast.Fit(history, opts)
	if err != nil {
		return nil, fmt.Errorf("fit forecast: %w", err)
	}
	maxErr, window := spec.GateOrDefault()
	p := &predictor{opts: opts, f: f, gate: forecast.NewGate(maxErr, window, policy.DefaultTolerance), quantile: spec.QuantileOrDefault(),
		samples: len(history), warm: max(warmupResiduals+int((horizon+step-1)/step), int(window/step))}
	if spec.Load.PerReplica.Auto {
		p.auto = true
		p.learned = make([]float64, learnWindow)
		p.scratch = make([]float64, 0, learnWindow)
	} else {
		p.perReplica = spec.Load.PerReplica.Value
	}
	return p, nil
}

// Observe takes this sync's load sample (ok false when the load query had none, or when the
// caller samples the load less often than it syncs), compares the prediction made one
// horizon ago with it in the gate, and returns the forecast of the load at now + horizon
// for Decide. Without a sample, it returns the forecast made at the last sample, for that
// sample + horizon (no new Predict: the forecaster has not changed), while that is less
// than one horizon old: a caller that samples the load every n syncs passes a horizon
// that covers until the next sample. It returns nil while the forecaster cannot predict
// yet, or is warming up: until it has seen 20 samples plus the horizon's steps (history
// included), so that 20 of its predictions could be checked, and at least one gate window
// of samples: a forecast is trusted only once it could have been judged over a whole
// window, so a service without history scales as the HPA would for that long. The result is valid until the
// next Observe (its storage is reused).
func (pr *predictor) Observe(load float64, ok bool, now time.Time, horizon time.Duration) *policy.ForecastInput {
	pr.gateChanged, pr.compared, pr.beyond = false, false, false
	if !ok {
		if pr.made == nil || !now.Before(pr.last.Add(horizon)) {
			return nil
		}
		return pr.output()
	}
	pr.f.Update(forecast.Sample{At: now, Value: load})
	pr.last = now
	pr.samples++
	pr.made = nil
	// The latest prediction due by now is the one made about one horizon ago.
	due := -1
	for i := range pr.pending {
		if pr.pending[i].at.After(now) {
			break
		}
		due = i
	}
	if due >= 0 {
		_, pr.gateChanged = pr.gate.Observe(pr.pending[due].p, load, now)
		pr.compared, pr.beyond = true, load > pr.pending[due].reach
	}
	pr.pending = pr.pending[:copy(pr.pending, pr.pending[due+1:])]
	if pr.samples < pr.warm {
		return nil
	}
	p, have := pr.f.Predict(horizon, pr.quantile)
	if !have {
		return nil
	}
	reach := math.Inf(1)
	if pr.reachQ > 0 {
		if r, ok := pr.f.Predict(horizon, pr.reachQ); ok {
			reach = r.Hi
		}
	}
	pr.pending = append(pr.pending, pendingPrediction{at: now.Add(horizon), p: p, reach: reach})
	pr.made = &policy.ForecastInput{Value: p.Hi, Point: p.Point, Lo: p.Lo, Hi: p.Hi, Method: pr.method()}
	if pr.wake {
		if sn := pr.seasonalNaive(); sn != nil {
			if sp, ok := sn.Predict(horizon, pr.quantile); ok {
				pr.made.Seasonal, pr.made.SeasonalKnown = sp.Point, true
			}
		}
	}
	return pr.output()
}

// Refit fits the forecaster again, with newPredictor's options, on history (in time
// order, ending before the next sample Observe will take), keeping the gate, the
// predictions awaiting comparison and the perReplica learner: the parameters then follow
// the load. A controller calls it, say, daily with the history it loads at start-up. The
// error (only for options newPredictor accepted, so not expected) leaves the forecaster as
// it was.
func (pr *predictor) Refit(history []forecast.Sample) error {
	return pr.RefitHorizon(history, pr.opts.Horizon)
}

// RefitHorizon is Refit for another fitting horizon (horizon: auto follows the pods'
// measured start-up, which a forecaster built before any pod started did not know).
// A horizon ≤ 0 keeps the current one.
func (pr *predictor) RefitHorizon(history []forecast.Sample, horizon time.Duration) error {
	opts := pr.opts
	if horizon > 0 {
		opts.Horizon = horizon
	}
	f, err := forecast.Fit(history, opts)
	if err != nil {
		return fmt.Errorf("refit forecast: %w", err)
	}
	pr.f, pr.opts = f, opts
	return nil
}

// SetQuantile sets the quantile of the load the forecast plans for, from the next Observe
// on (an objective adapts it); q must be within [MinForecastQuantile, MaxForecastQuantile].
func (pr *predictor) SetQuantile(q float64) { pr.quantile = q }

// SetReach sets the highest quantile the caller could plan for (an objective's bound): each
// prediction also records its plan at that quantile, and Reach says whether the load
// exceeded it. 0 stops tracking it.
func (pr *predictor) SetReach(q float64) { pr.reachQ = q }

// Reach says whether the last Observe compared its load with the prediction made one
// horizon before (compared), and whether the load exceeded what that prediction planned
// at the SetReach quantile (beyond): no quantile the caller could plan for would have
// covered it.
func (pr *predictor) Reach() (compared, beyond bool) { return pr.compared, pr.beyond }

// Horizon is the horizon the forecaster was last fitted for.
func (pr *predictor) Horizon() time.Duration { return pr.opts.Horizon }

// output returns the forecast made at the last sample with the gate's and the learner's
// current state, in storage reused by every Observe.
func (pr *predictor) output() *policy.ForecastInput {
	pr.out = *pr.made
	pr.out.Gated = pr.gate.Gated()
	pr.out.PerReplica, pr.out.PerReplicaKnown = pr.PerReplica()
	return &pr.out
}

// SetWake asks Observe for the seasonal-naive point at the horizon too
// (policy.ForecastInput.Seasonal): scaleToZero's wake-ahead asks whether the load came back at
// this time one season ago, which the chosen method, fitted on the idle period's zeros,
// does not remember.
func (pr *predictor) SetWake(on bool) { pr.wake = on }

// seasonalNaive returns the forecaster's seasonal-naive method (auto's candidate, or the
// method itself), nil when it has none.
func (pr *predictor) seasonalNaive() forecast.Forecaster {
	switch f := pr.f.(type) {
	case *forecast.SeasonalNaive:
		return f
	case *forecast.Auto:
		for _, c := range f.Methods() {
			if c.Name() == string(forecast.MethodSeasonalNaive) {
				return c
			}
		}
	}
	return nil
}

func (pr *predictor) method() string {
	if a, ok := pr.f.(*forecast.Auto); ok {
		return string(a.Method())
	}
	return pr.f.Name()
}

// Gate returns whether the forecast is gated off, whether the last Observe changed that
// (for an event on the transition), and the point's weighted MAPE over the gate's window
// (ok false when the window has no load). The gate judges the under-prediction rate
// (GateUnderRate), not the MAPE: see forecast.Gate.
func (pr *predictor) Gate() (gated, changed bool, mape float64, ok bool) {
	mape, _, ok = pr.gate.Error()
	return pr.gate.Gated(), pr.gateChanged, mape, ok
}

// GateUnderRate is the error the gate judges against maxError: the fraction of the
// window's comparisons in which the load exceeded the Hi of the prediction made one
// horizon before (ok false while the window is empty).
func (pr *predictor) GateUnderRate() (rate float64, ok bool) {
	return pr.gate.UnderRate()
}

// PerReplica returns the load one replica carries: the configured value, or the learned
// estimate, false while perReplica: auto has fewer than learnMin samples.
func (pr *predictor) PerReplica() (float64, bool) {
	if !pr.auto {
		return pr.perReplica, true
	}
	return pr.perReplica, pr.count >= learnMin
}

// Learn feeds perReplica: auto with dec, the decision of this sync, and the load that
// Observe saw. It learns wherever the metrics are linear in the load: when every metric
// was valid, no pod was Pending, and the binding metric (the largest value/target ratio)
// sat at or below its target, up to the HPA's default tolerance (ratio in [0.05, 1.1]).
// There a utilization-like metric is proportional to the load per serving pod, so the load
// one replica carries at exactly the target is load / (pods × ratio), pods being those the
// metric averaged over (the pods with a sample for a Pods metric: pods still starting serve
// nothing and report nothing; the current replicas for the other semantics, which then
// must have no pod missing). Above the target the pods saturate and queue, and the ratio
// no longer says what the load needs; below 5 % of it the metric's idle floor and rounding
// dominate. Learning only within the tolerance band would never learn on a service whose
// load swings from zero to its peak within a minute.
//
// The estimate is the median of the last 256 samples: a median ignores the odd sample
// taken while the load or the Ready pods changed within the metric's averaging window (a
// mean would follow every one). Learn does nothing for a fixed perReplica.
func (pr *predictor) Learn(dec policy.Decision, load float64, ok bool) {
	if !pr.auto || !ok || !(load > 0) || policy.CheckSample(load) != nil || dec.CurrentReplicas < 1 || len(dec.Metrics) == 0 {
		return
	}
	var ratio float64
	var pods int32
	for _, m := range dec.Metrics {
		if m.Error != "" || m.PodsPending > 0 {
			return
		}
		r := float64(m.Ratio)
		if policy.CheckSample(r) != nil || r <= ratio {
			continue
		}
		ratio, pods = r, dec.CurrentReplicas
		if m.Semantics == policy.SemanticsPods {
			pods = int32(min(m.PodsWithSample, math.MaxInt32))
		} else if m.PodsMissing > 0 {
			return
		}
	}
	if ratio < learnMinRatio || ratio > 1+policy.DefaultTolerance || pods < 1 {
		return
	}
	pr.learned[pr.next] = load / (float64(pods) * ratio)
	pr.next = (pr.next + 1) % learnWindow
	pr.count = min(pr.count+1, learnWindow)
	pr.scratch = append(pr.scratch[:0], pr.learned[:pr.count]...)
	slices.Sort(pr.scratch)
	n := len(pr.scratch)
	pr.perReplica = pr.scratch[n/2]
	if n%2 == 0 {
		pr.perReplica = (pr.scratch[n/2-1] + pr.scratch[n/2]) / 2
	}
}
