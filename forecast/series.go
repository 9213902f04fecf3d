package forecast

import (
	"math"
	"math/bits"
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

// residualCap is how many recent h-step residuals a series keeps for its intervals, and
// how many pinball losses for auto's choice.
const residualCap = 1000

// minResiduals is how many residuals an interval needs; with fewer, Lo = Hi = Point.
const minResiduals = 20

// series places samples on a grid of slots Step apart, fills gaps, and records the
// residuals of the forecasts made horizon steps before each value.
type series struct {
	step    time.Duration
	horizon int     // steps
	maxGap  int     // slots
	q       float64 // the planning quantile auto compares at, in (0, 1); 0: the point's error

	started bool
	origin  time.Time
	slot    int64 // slot of the last value
	n       int64 // values consumed since the (re)start
	last    float64

	preds  []float64 // preds[t%horizon]: the forecast made for slot t, NaN if none
	qpreds []float64 // qpreds[t%horizon]: the q-quantile forecast made for slot t

	res     []float64 // ring of residuals (actual - predicted)
	sorted  []uint64  // the same residuals as keys (see key), sorted: the intervals' quantiles
	loss    []float64 // ring of pinball losses at q, beside res (the same slots)
	resNext int
	lossSum float64 // sum of loss
}

func newSeries(step time.Duration, horizon, season int) series {
	g := int(maxGap / step)
	g = max(g, 2*season, horizon)
	s := series{step: step, horizon: horizon, maxGap: g,
		preds: make([]float64, horizon), qpreds: make([]float64, horizon)}
	s.clearPreds()
	return s
}

func (s *series) clearPreds() {
	for i := range s.preds {
		s.preds[i], s.qpreds[i] = math.NaN(), math.NaN()
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
		s.addResidual(y-p, s.lossOf(y, p, s.qpreds[i]))
	}
	m.observe(y)
	s.n++
	s.last = y
	// The forecast made now is for slot n-1+horizon, which shares index i; its
	// q-quantile is what predict would return for it (with the residuals known now).
	if m.ready() {
		p := clamp(m.forecast(s.horizon))
		s.preds[i], s.qpreds[i] = p, p
		if s.q != 0 {
			s.qpreds[i] = s.quantileAt(p, s.q, 1)
		}
	} else {
		s.preds[i], s.qpreds[i] = math.NaN(), math.NaN()
	}
}

// lossOf is what auto compares for actual y of a slot forecast p, q-quantile forecast
// qp: the pinball loss of qp at q, or without a planning quantile the absolute error of
// p.
func (s *series) lossOf(y, p, qp float64) float64 {
	if s.q == 0 {
		return math.Abs(y - p)
	}
	return pinball(y-qp, s.q)
}

// pinball is the quantile (pinball) loss at q of a forecast that missed by r = actual −
// forecast: q·r when the actual was above it, (1 − q)·(−r) when below. At q = 0.9 an
// under-forecast costs 9 times an over-forecast of the same size; its expectation is
// least at the true q-quantile.
func pinball(r, q float64) float64 {
	if r >= 0 {
		return q * r
	}
	return (q - 1) * r
}

// addResidual records residual r and loss l in the rings, keeping sorted sorted: when the
// ring is full the oldest residual leaves it, and only the values between its place and
// the new one's shift (no sort per Predict, no allocation once full).
func (s *series) addResidual(r, l float64) {
	if len(s.res) < residualCap {
		s.res = append(s.res, r)
		s.loss = append(s.loss, l)
		s.lossSum += l
		k := key(r)
		s.sorted = slices.Insert(s.sorted, lowerBound(s.sorted, k), k)
		return
	}
	old := s.res[s.resNext]
	s.lossSum += l - s.loss[s.resNext]
	s.res[s.resNext], s.loss[s.resNext] = r, l
	s.resNext = (s.resNext + 1) % residualCap
	k := key(r)
	i := lowerBound(s.sorted, key(old)) // an index holding old
	j := lowerBound(s.sorted, k)
	if j > i {
		copy(s.sorted[i:j-1], s.sorted[i+1:j])
		s.sorted[j-1] = k
	} else {
		copy(s.sorted[j+1:i+1], s.sorted[j:i])
		s.sorted[j] = k
	}
}

// key maps a float64 to a uint64 in the same order (negatives flipped whole, the sign bit
// set on the rest), so that lowerBound compares integers without a branch, where a float
// comparison is a branch mispredicted half the time (most of an update's cost on 1,000
// residuals). No NaN reaches it.
func key(x float64) uint64 {
	b := math.Float64bits(x)
	return b ^ (uint64(int64(b)>>63) | 1<<63)
}

// unkey inverts key.
func unkey(k uint64) float64 {
	return math.Float64frombits(k ^ (uint64(int64(^k)>>63) | 1<<63))
}

// lowerBound is the first index of sorted ks whose value is >= k (len(ks) if none).
func lowerBound(ks []uint64, k uint64) int {
	lo, n := 0, len(ks)
	for n > 1 {
		half := n / 2
		_, less := bits.Sub64(ks[lo+half-1], k, 0) // 1 if ks[lo+half-1] < k: no branch
		lo += half & -int(less)
		n -= half
	}
	if n == 1 && ks[lo] < k {
		lo++
	}
	return lo
}

// meanLoss is the mean of the recent losses (lossOf: the pinball loss at q of the
// q-quantile forecasts made one horizon before, or the point's absolute error); ok is
// false with fewer than minResiduals.
func (s *series) meanLoss() (float64, bool) {
	if len(s.loss) < minResiduals {
		return 0, false
	}
	return max(s.lossSum, 0) / float64(len(s.loss)), true
}

// quantileAt is the q-quantile forecast around point: point plus the residuals'
// q-quantile scaled by scale, on point's side of q (at or above it for q >= 0.5, at or
// below for q < 0.5); the point itself with fewer than minResiduals residuals.
func (s *series) quantileAt(point, q, scale float64) float64 {
	if len(s.sorted) < minResiduals {
		return point
	}
	v := point + scale*quantileKeys(s.sorted, q)
	switch {
	case !finite(v):
		return point
	case q >= 0.5:
		return max(clamp(v), point)
	default:
		return min(clamp(v), point)
	}
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
	if len(s.sorted) >= minResiduals {
		if math.IsNaN(q) {
			q = 0.5
		}
		q = min(max(q, 0), 1)
		scale := math.Sqrt(max(k, 1) / float64(s.horizon))
		lo := point + scale*quantileKeys(s.sorted, min(q, 1-q))
		hi := point + scale*quantileKeys(s.sorted, max(q, 1-q))
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

// quantileKeys is quantile on sorted keys (see key).
func quantileKeys(ks []uint64, q float64) float64 {
	pos := q * float64(len(ks)-1)
	i := int(pos)
	if i >= len(ks)-1 {
		return unkey(ks[len(ks)-1])
	}
	f := pos - float64(i)
	a, b := unkey(ks[i]), unkey(ks[i+1])
	return a + f*(b-a)
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
