package forecast

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/optimize"
)

// Fit fits a method's parameters on history and returns the forecaster warmed up on it
// (history replayed through Update, so its residuals and intervals are ready).
//
// Smoothing weights (Holt: α, β; Holt-Winters: α, β, γ) minimise the error of the
// forecast ceil(Horizon/Step) steps ahead over the history, by Nelder–Mead
// (gonum/optimize) on their logits, so every weight stays in (0, 1). Linear's window is
// the best of 5, 10, 15 and 20 steps on the same error, measured at up to
// 2,000 forecast origins. With too little history to measure the error, the defaults
// are kept: α 0.5, β 0.1 (Holt); α 0.3, β 0.05, γ 0.2 (Holt-Winters); window 15.
//
// The error is the loss of what the caller plans with, as for Auto's choice: with
// Options.Quantile q set, the mean pinball loss at q of the q-quantile forecast, the
// point plus the q-quantile of the point's errors over the history (see fitLoss);
// without, the point's mean squared error.
//
// history must be in time order (out-of-order samples are ignored, as by Update) and
// may be empty. The error wraps ErrOptions for invalid Options.
func Fit(history []Sample, o Options) (Forecaster, error) {
	horizon, season, err := o.steps()
	if err != nil {
		return nil, err
	}
	ys := resample(history, o.Step, horizon, season)
	l := fitLoss{q: o.Quantile}
	var f Forecaster
	switch o.Method {
	case MethodOff:
		return Off{}, nil
	case MethodHolt:
		f = fitHolt(&l, ys, o.Step, horizon, season)
	case MethodHoltWinters:
		f = fitHoltWinters(&l, ys, o.Step, horizon, season)
	case MethodSeasonalNaive:
		f = newSeasonalNaive(o.Step, horizon, season)
	case MethodLinear:
		f = fitLinear(&l, ys, o.Step, horizon, season)
	case MethodAuto, "":
		a := &Auto{chosen: -1, q: o.Quantile}
		if season > 0 {
			a.cands = append(a.cands, fitHoltWinters(&l, ys, o.Step, horizon, season))
		}
		a.cands = append(a.cands, fitHolt(&l, ys, o.Step, horizon, season), fitLinear(&l, ys, o.Step, horizon, season))
		if season > 0 {
			a.cands = append(a.cands, newSeasonalNaive(o.Step, horizon, season))
		}
		for _, c := range a.cands {
			seriesOf(c).q = o.Quantile
		}
		f = a
	default:
		return nil, fmt.Errorf("%w: method: unknown %q", ErrOptions, o.Method)
	}
	for _, x := range history {
		f.Update(x)
	}
	return f, nil
}

func newHolt(step time.Duration, horizon, season int, alpha, beta float64) *Holt {
	return &Holt{s: newSeries(step, horizon, season), m: holt{alpha: alpha, beta: beta}}
}

func newHoltWinters(step time.Duration, horizon, season int, alpha, beta, gamma float64) *HoltWinters {
	return &HoltWinters{s: newSeries(step, horizon, season),
		m: holtWinters{alpha: alpha, beta: beta, gamma: gamma, period: season}}
}

func newSeasonalNaive(step time.Duration, horizon, season int) *SeasonalNaive {
	return &SeasonalNaive{s: newSeries(step, horizon, season), m: seasonalNaive{period: season}}
}

func newLinear(step time.Duration, horizon, season, window int) *Linear {
	return &Linear{s: newSeries(step, horizon, season), m: linear{window: window}}
}

// resample places history on the grid as Update does, NaN marking a missing slot. Only
// the part after the last gap longer than the series restarts on is returned.
func resample(history []Sample, step time.Duration, horizon, season int) []float64 {
	gapMax := newSeries(step, horizon, season).maxGap
	var ys []float64
	var origin time.Time
	var slot int64
	for _, x := range history {
		if !valid(x.Value) {
			continue
		}
		if ys == nil {
			ys, origin, slot = append(ys, x.Value), x.At, 0
			continue
		}
		d := x.At.Sub(origin)
		if d <= 0 {
			continue
		}
		k := int64((d + step/2) / step)
		if k <= slot {
			continue
		}
		if gap := k - slot - 1; gap > int64(gapMax) {
			ys, origin, slot = append(ys[:0], x.Value), x.At, 0
			continue
		}
		for range k - slot - 1 {
			ys = append(ys, math.NaN())
		}
		ys = append(ys, x.Value)
		slot = k
	}
	return ys
}

// fitLoss is the error Fit minimises: the point's mean squared error, or, with q set,
// the mean pinball loss at q of the q-quantile forecast. errs is scratch reused across
// the many evaluations of one fit.
//
// Why the pinball loss: a caller planning for the q-quantile provisions for the point
// plus the q-quantile of its errors, so the parameters that serve it best are those
// whose q-quantile forecast loses least, not those whose point is closest in the mean
// square. The two differ on bursty load: the squared error weighs a burst's large
// errors most, and so favours weights that follow a burst quickly (it lasts a few
// minutes); the point then carries every burst into the next forecasts, which widens
// the errors' upper quantile everywhere. On the NASA trace (4-step horizon) Holt's α
// over the daily refits on 14 days is 0.08 to 0.24 by the squared error and 0.05 to 0.12
// by the pinball loss at 0.9 (docs/benchmarks-notes.md, step 12).
type fitLoss struct {
	q    float64
	errs []float64
}

// of runs m over ys (NaN: a gap, filled as Update fills it) and returns the loss of the
// forecasts made horizon steps ahead from every stride-th origin, false when there are
// none or the loss is not finite.
//
// With q set, the loss of each error e = actual − point against the plan point + c is
// pinball(e − c, q); the c that minimises their mean is the errors' q-quantile (taken by
// selection, nth: O(n)), so the loss is that of the best constant margin over the point: of
// the interval the forecaster's empirical residuals would give.
func (l *fitLoss) of(m model, ys []float64, horizon, stride int) (float64, bool) {
	preds := make([]float64, horizon)
	for i := range preds {
		preds[i] = math.NaN()
	}
	var sum float64
	var count int
	l.errs = l.errs[:0]
	last := 0.0
	for t, y := range ys {
		i := t % horizon
		filled := math.IsNaN(y)
		if filled {
			y = last
			if m.ready() {
				y = clamp(m.forecast(1))
			}
		} else if p := preds[i]; !math.IsNaN(p) {
			e := y - p
			sum += e * e
			count++
			if l.q > 0 {
				l.errs = append(l.errs, e)
			}
		}
		m.observe(y)
		last = y
		if m.ready() && t%stride == 0 {
			preds[i] = clamp(m.forecast(horizon))
		} else {
			preds[i] = math.NaN()
		}
	}
	if count == 0 || !finite(sum) {
		return 0, false
	}
	if l.q <= 0 {
		return sum / float64(count), true
	}
	c := nth(l.errs, int(l.q*float64(len(l.errs)-1)))
	var loss float64
	for _, e := range l.errs {
		loss += pinball(e-c, l.q)
	}
	return loss / float64(count), true
}

func logistic(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
func logit(p float64) float64    { return math.Log(p / (1 - p)) }

// minimise runs Nelder–Mead on f over the logits of weights in (0, 1), starting at start.
func minimise(f func(w []float64) (float64, bool), start []float64) []float64 {
	x0 := make([]float64, len(start))
	for i, p := range start {
		x0[i] = logit(p)
	}
	w := make([]float64, len(start))
	obj := func(x []float64) float64 {
		for i := range x {
			w[i] = logistic(x[i])
		}
		v, ok := f(w)
		if !ok {
			return math.Inf(1)
		}
		return v
	}
	if v := obj(x0); math.IsInf(v, 1) {
		return start // too little history to measure the error: keep the defaults
	}
	res, err := optimize.Minimize(optimize.Problem{Func: obj}, x0,
		&optimize.Settings{
			FuncEvaluations: 60 * len(start) * len(start),
			Converger:       &optimize.FunctionConverge{Relative: 1e-6, Iterations: 25},
		},
		&optimize.NelderMead{SimplexSize: 1})
	if err != nil || res == nil || math.IsInf(res.F, 0) || math.IsNaN(res.F) {
		return start
	}
	out := make([]float64, len(start))
	for i := range out {
		out[i] = logistic(res.X[i])
	}
	return out
}

func fitHolt(l *fitLoss, ys []float64, step time.Duration, horizon, season int) *Holt {
	w := minimise(func(w []float64) (float64, bool) {
		return l.of(&holt{alpha: w[0], beta: w[1]}, ys, horizon, 1)
	}, []float64{0.5, 0.1})
	return newHolt(step, horizon, season, w[0], w[1])
}

func fitHoltWinters(l *fitLoss, ys []float64, step time.Duration, horizon, season int) *HoltWinters {
	var m holtWinters
	w := minimise(func(w []float64) (float64, bool) {
		m = holtWinters{alpha: w[0], beta: w[1], gamma: w[2], period: season,
			season: m.season, first: m.first[:0]}
		return l.of(&m, ys, horizon, 1)
	}, []float64{0.3, 0.05, 0.2})
	return newHoltWinters(step, horizon, season, w[0], w[1], w[2])
}

// linearWindows are the windows Fit tries. The robust fit is O(window) per update, about
// 1 µs at 30 values on our 2-core VM: longer windows would break the 1 µs budget per
// update, and a trend over longer spans is what Holt is for.
var linearWindows = []int{5, 10, 15, 20}

func fitLinear(l *fitLoss, ys []float64, step time.Duration, horizon, season int) *Linear {
	best, bestErr := 15, math.Inf(1)
	stride := max(1, len(ys)/2000)
	for _, w := range linearWindows {
		if w > len(ys)/2 && w != linearWindows[0] {
			break
		}
		if e, ok := l.of(&linear{window: w}, ys, horizon, stride); ok && e < bestErr {
			best, bestErr = w, e
		}
	}
	return newLinear(step, horizon, season, best)
}
