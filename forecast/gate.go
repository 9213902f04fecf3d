package forecast

import (
	"math"
	"time"
)

// Gate decides whether a forecast is trusted. Every tick the caller passes the prediction
// made one horizon ago and the load now; the gate keeps, over the last window, the
// weighted MAPE Σ|actual − point| / Σ actual (MAPE per point is undefined at zero load
// and explodes near it, which bursty traces hit every minute) and the rate at which the
// load exceeded the prediction's Hi.
//
// The gate is a circuit breaker: it starts closed (the forecast is used); it opens (the
// forecast is gated off) when the window's error is above maxError, and closes again
// once it is at or below. A window whose load sums to zero leaves it as it is. The gate
// is pure; the caller turns changes into reasons, events and metrics.
type Gate struct {
	maxError float64
	window   time.Duration

	obs            []gateObs // in time order, from head
	head           int
	absSum, actSum float64
	under          int
	open           bool
}

// minLoadSum is the window load below which the error is not defined: zero, for any
// load measured in requests per second.
const minLoadSum = 1e-9

type gateObs struct {
	at          time.Time
	err, actual float64
	under       bool
}

// NewGate returns a closed gate. maxError is a fraction (0.3: 30 %); the caller
// validates maxError > 0 and window > 0.
func NewGate(maxError float64, window time.Duration) *Gate {
	return &Gate{maxError: maxError, window: window}
}

// Observe adds the comparison of predicted (made one horizon before at) with the actual
// load at at, drops what is no longer inside (at − window, at] (an observation exactly
// one window old is out), and returns whether the gate is open (forecast gated off) and
// whether this observation changed that. Non-finite or negative actual loads, non-finite
// predictions and observations older than the last one are ignored.
func (g *Gate) Observe(predicted Prediction, actual float64, at time.Time) (open, changed bool) {
	if !valid(actual) || !finite(predicted.Point) || !finite(predicted.Hi) {
		return g.open, false
	}
	if n := len(g.obs); n > g.head && at.Before(g.obs[n-1].at) {
		return g.open, false
	}
	o := gateObs{at: at, err: math.Abs(actual - predicted.Point), actual: actual, under: actual > predicted.Hi}
	g.obs = append(g.obs, o)
	g.absSum += o.err
	g.actSum += o.actual
	if o.under {
		g.under++
	}
	cut := at.Add(-g.window)
	for g.head < len(g.obs) && !g.obs[g.head].at.After(cut) && g.head < len(g.obs)-1 {
		d := g.obs[g.head]
		g.absSum -= d.err
		g.actSum -= d.actual
		if d.under {
			g.under--
		}
		g.head++
	}
	if g.head > 64 && g.head > len(g.obs)/2 {
		g.obs = append(g.obs[:0], g.obs[g.head:]...)
		g.head = 0
		g.resum() // amortised O(1); keeps the running sums free of drift
	} else if g.actSum < minLoadSum || g.absSum < 0 {
		g.resum() // a small sum after subtractions may be rounding residue
	}
	mape, _, ok := g.Error()
	if !ok {
		return g.open, false
	}
	was := g.open
	g.open = mape > g.maxError
	return g.open, g.open != was
}

func (g *Gate) resum() {
	g.absSum, g.actSum, g.under = 0, 0, 0
	for _, o := range g.obs[g.head:] {
		g.absSum += o.err
		g.actSum += o.actual
		if o.under {
			g.under++
		}
	}
}

// Error is the window's weighted MAPE (a fraction) and the fraction of observations
// whose load exceeded the prediction's Hi. ok is false when the window is empty or its
// load sums to (nearly: below 1e-9) zero; then both are 0.
func (g *Gate) Error() (mape, underRate float64, ok bool) {
	n := len(g.obs) - g.head
	if n == 0 || !(g.actSum >= minLoadSum) {
		return 0, 0, false
	}
	return max(g.absSum, 0) / g.actSum, float64(g.under) / float64(n), true
}

// Open reports whether the forecast is gated off.
func (g *Gate) Open() bool { return g.open }
