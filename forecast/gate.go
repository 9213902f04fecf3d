package forecast

import (
	"math"
	"time"
)

// Gate decides whether a forecast is trusted. Every tick the caller passes the prediction
// made one horizon ago and the load now; the gate keeps, over the last window, the rate at
// which the load exceeded the prediction's Hi (the under-prediction rate beyond the
// interval) and the weighted MAPE Σ|actual − point| / Σ actual of the point.
//
// It judges the forecast by the rate: Hi is the quantile the controller provisions for, so
// the question is how often the load went beyond the capacity the forecast asked for. A
// calibrated Hi at quantile q is exceeded 1 − q of the time (0.1 at q = 0.9), and maxError
// 0.3 allows three times that before the forecast is deemed wrong. The point's MAPE is
// reported, not judged: on bursty load (requests switching between zero and a peak from
// one minute to the next, or per-minute noise at a low rate) the point is far off every
// minute while the quantile is right, and the floor at the quantile is what prevents the
// violations; a MAPE gate switched exactly those forecasts off. An over-predicting forecast
// is not gated: it costs GPUs, not SLO, and the empirical-residual interval corrects a
// lasting bias by itself (the residuals carry it).
//
// The gate is a circuit breaker: it starts closed (the forecast is used); it opens (the
// forecast is gated off) when the window's under-prediction rate is above maxError, and
// closes again once it is at or below. The gate is pure; the caller turns changes into
// reasons, events and metrics.
type Gate struct {
	maxError float64
	window   time.Duration
	slack    float64

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
// validates maxError > 0 and window > 0. slack (≥ 0) is the relative margin a miss must
// exceed: the load counts as above the prediction when it is above Hi × (1 + slack). The
// predictor passes the HPA's default tolerance (0.1): an under-forecast within it would
// not have changed the replicas proposed (a ratio within tolerance holds them), and it
// keeps a nearly exact forecast, whose interval is as narrow as its tiny residuals, from
// being gated for missing by a hair half of the time.
func NewGate(maxError float64, window time.Duration, slack float64) *Gate {
	return &Gate{maxError: maxError, window: window, slack: max(slack, 0)}
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
	o := gateObs{at: at, err: math.Abs(actual - predicted.Point), actual: actual, under: actual > predicted.Hi*(1+g.slack)}
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
	rate, ok := g.UnderRate()
	if !ok {
		return g.open, false
	}
	was := g.open
	g.open = rate > g.maxError
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

// UnderRate is the fraction of the window's observations whose load exceeded the
// prediction's Hi, the error the gate judges; ok is false when the window is empty.
func (g *Gate) UnderRate() (rate float64, ok bool) {
	n := len(g.obs) - g.head
	if n == 0 {
		return 0, false
	}
	return float64(g.under) / float64(n), true
}

// Gated reports whether the forecast is gated off (the breaker is open).
func (g *Gate) Gated() bool { return g.open }
