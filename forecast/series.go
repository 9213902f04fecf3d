package forecast

import (
	"math"
	"slices"
	"time"
)

// model is a method's arithmetic on an evenly spaced series: the grid, gaps, residuals
// and intervals are the series' job.
type model interface {
	// observe consumes the next value on the grid.
	observe(y float64)
	// forecast is the value k >= 0 steps after the last observed one (k = 0: the
	// model's fit of the last value). Only called when ready.
	forecast(k int) float64
	ready() bool
	reset()
}

// residualCap is how many recent h-step residuals a series keeps for its intervals and
// for auto's error.
const residualCap = 1000

// minResiduals is how many residuals an interval needs; with fewer, Lo = Hi = Point.
const minResiduals = 20

// series places samples on a grid of slots Step apart, fills gaps, and records the
// residuals of the forecasts made horizon steps before each value.
type series struct {
	step    time.Duration
	horizon int // steps
	maxGap  int // slots

	started bool
	origin  time.Time
	slot    int64 // slot of the last value
	n       int64 // values consumed since the (re)start
	last    float64

	preds []float64 // preds[t%horizon]: the forecast made for slot t, NaN if none

	res     []float64 // ring of residuals (actual - predicted)
	resNext int
	absSum  float64 // sum of |res|
	scratch []float64
}

func newSeries(step time.Duration, horizon, season int) series {
	g := int(maxGap / step)
	g = max(g, 2*season, horizon)
	s := series{step: step, horizon: horizon, maxGap: g, preds: make([]float64, horizon)}
	s.clearPreds()
	return s
}

func (s *series) clearPreds() {
	for i := range s.preds {
		s.preds[i] = math.NaN()
	}
}

// update places x on the grid. Out-of-order samples, samples in an already filled slot
// and invalid values are ignored; missing slots are filled with the model's one-step
// forecast (the last value until the model is ready); a gap longer than maxGap restarts.
func (s *series) update(m model, x Sample) {
	if !valid(x.Value) {
		return
	}
	if !s.started {
		s.started, s.origin, s.slot = true, x.At, 0
		s.push(m, x.Value, false)
		return
	}
	d := x.At.Sub(s.origin)
	if d <= 0 {
		return
	}
	k := int64((d + s.step/2) / s.step)
	if k <= s.slot {
		return
	}
	gap := k - s.slot - 1
	if gap > int64(s.maxGap) {
		s.restart(m)
		s.started, s.origin, s.slot = true, x.At, 0
		s.push(m, x.Value, false)
		return
	}
	for range gap {
		fill := s.last
		if m.ready() {
			fill = clamp(m.forecast(1))
		}
		s.push(m, fill, true)
	}
	s.slot = k
	s.push(m, x.Value, false)
}

func (s *series) restart(m model) {
	m.reset()
	s.started, s.n, s.last = false, 0, 0
	s.clearPreds()
}

// push consumes one grid value; a filled value records no residual.
func (s *series) push(m model, y float64, filled bool) {
	i := int(s.n % int64(s.horizon))
	if p := s.preds[i]; !filled && !math.IsNaN(p) {
		s.addResidual(y - p)
	}
	m.observe(y)
	s.n++
	s.last = y
	// The forecast made now is for slot n-1+horizon, which shares index i.
	if m.ready() {
		s.preds[i] = clamp(m.forecast(s.horizon))
	} else {
		s.preds[i] = math.NaN()
	}
}

func (s *series) addResidual(r float64) {
	if len(s.res) < residualCap {
		s.res = append(s.res, r)
		s.absSum += math.Abs(r)
		return
	}
	s.absSum += math.Abs(r) - math.Abs(s.res[s.resNext])
	s.res[s.resNext] = r
	s.resNext = (s.resNext + 1) % residualCap
}

// mae is the mean absolute h-step error over the recent residuals; ok is false with
// fewer than minResiduals.
func (s *series) mae() (float64, bool) {
	if len(s.res) < minResiduals {
		return 0, false
	}
	return max(s.absSum, 0) / float64(len(s.res)), true
}

// predict: the point forecast h after the last slot, interpolated linearly between
// whole steps, and an interval from the residual quantiles scaled by sqrt(k/horizon).
func (s *series) predict(m model, h time.Duration, q float64) (Prediction, bool) {
	if !s.started || !m.ready() || h < 0 {
		return Prediction{}, false
	}
	k := float64(h) / float64(s.step)
	if k > 1e9 {
		return Prediction{}, false
	}
	k0 := math.Floor(k)
	w := k - k0
	point := m.forecast(int(k0))
	if w > 0 {
		point = (1-w)*point + w*m.forecast(int(k0)+1)
	}
	if !finite(point) {
		return Prediction{}, false
	}
	point = clamp(point)
	p := Prediction{Point: point, Lo: point, Hi: point}
	if len(s.res) >= minResiduals {
		if math.IsNaN(q) {
			q = 0.5
		}
		q = min(max(q, 0), 1)
		s.scratch = append(s.scratch[:0], s.res...)
		slices.Sort(s.scratch)
		scale := math.Sqrt(max(k, 1) / float64(s.horizon))
		lo := point + scale*quantile(s.scratch, min(q, 1-q))
		hi := point + scale*quantile(s.scratch, max(q, 1-q))
		if finite(lo) && finite(hi) {
			p.Lo = min(clamp(lo), point)
			p.Hi = max(clamp(hi), point)
		}
	}
	return p, true
}

// quantile of sorted xs at q in [0, 1], interpolated linearly between order statistics.
func quantile(xs []float64, q float64) float64 {
	pos := q * float64(len(xs)-1)
	i := int(pos)
	if i >= len(xs)-1 {
		return xs[len(xs)-1]
	}
	f := pos - float64(i)
	return xs[i] + f*(xs[i+1]-xs[i])
}

// clamp keeps a forecast in [0, maxValue·1e3]: a load is never negative, and the bound
// keeps a runaway trend finite.
func clamp(v float64) float64 {
	switch {
	case v > 0 && v <= maxValue*1e3:
		return v
	case v > maxValue*1e3:
		return maxValue * 1e3
	default: // negative, zero or NaN
		return 0
	}
}
