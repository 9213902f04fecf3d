package forecast

import (
	"math"
	"time"
)

// Linear fits a straight line to the last Window values by Tukey-bisquare regression
// (iteratively reweighted least squares from the least-squares line, scale 1.4826 × the
// median absolute deviation of its residuals, tuning constant 4.685: R's and MATLAB's
// robustfit defaults) and extends it.
//
// Why an M-estimator, and bisquare: the abscissae are an even grid, so there are no
// leverage points and an M-estimator on the values is robust to outliers; it costs
// O(Window) per iteration where Theil–Sen's pairwise slopes cost O(Window²), which keeps
// fitting the window on 14 days of samples fast. Bisquare redescends: a gross outlier
// gets weight exactly 0, where Huber's would still pull the line by its cap. Build it
// with Fit.
type Linear struct {
	s series
	m linear
}

// Update implements Forecaster. The regression itself runs once per new value, when
// the forecast is asked for (O(Window)).
func (f *Linear) Update(x Sample) { f.s.update(&f.m, x) }

// Predict implements Forecaster.
func (f *Linear) Predict(h time.Duration, q float64) (Prediction, bool) {
	return f.s.predict(&f.m, h, q)
}

// Name implements Forecaster.
func (f *Linear) Name() string { return string(MethodLinear) }

// Window is the fitted number of values the line is fitted on.
func (f *Linear) Window() int { return f.m.window }

// bisquareK is the bisquare tuning constant: 95 % efficiency on Gaussian noise.
const bisquareK = 4.685

// robustIterations bounds the reweighting; it converges in a handful on our data.
const robustIterations = 3

type linear struct {
	window int
	// ring holds each value twice, at t%window and t%window+window, so the last window
	// values are always the contiguous ring[n%window : n%window+window].
	ring []float64
	n    int

	// The line fitted at n values: forecast(k) = a + b·(m-1+k) over the last m values.
	fitN int
	a, b float64
	m    int

	abs []float64 // scratch
}

func (m *linear) observe(y float64) {
	if m.ring == nil {
		m.ring = make([]float64, 2*m.window)
		m.abs = make([]float64, m.window)
	}
	i := m.n % m.window
	m.ring[i], m.ring[i+m.window] = y, y
	m.n++
}

func (m *linear) ready() bool { return m.n >= 2 }
func (m *linear) reset()      { m.n, m.fitN = 0, 0 }

func (m *linear) forecast(k int) float64 {
	if m.fitN != m.n {
		m.fit()
	}
	return m.a + m.b*float64(m.m-1+k)
}

// fit regresses the last m = min(n, window) values, oldest at x = 0, on x.
func (m *linear) fit() {
	m.fitN = m.n
	n := min(m.n, m.window)
	m.m = n
	ys := m.ring[:n]
	if m.n > m.window {
		j := m.n % m.window
		ys = m.ring[j : j+n]
	}
	// The line is a + b·(x - c), centred so the sums do not cancel.
	c := float64(n-1) / 2
	a, b, _ := wls(ys, c)
	// Scale: 1.4826·MAD of the least-squares residuals; floored so that an exact line
	// (MAD 0) keeps weight 1 on its points instead of dividing by zero.
	var mean float64
	abs := m.abs[:n]
	for i, y := range ys {
		abs[i] = math.Abs(y - a - b*(float64(i)-c))
		mean += math.Abs(y)
	}
	scale := 1.4826 * median(abs)
	scale = max(scale, 1e-9*(1+mean/float64(n)))
	for range robustIterations {
		a2, b2, ok := wlsFrom(ys, c, bisquareK*scale, a, b)
		if !ok {
			break // every value rejected: keep the last line
		}
		done := math.Abs(a2-a)+math.Abs(b2-b)*c <= 1e-9*(1+math.Abs(a))
		a, b = a2, b2
		if done {
			break
		}
	}
	m.a, m.b = a-b*c, b
}

// wls is ordinary least squares of ys on u = x - c, x = 0, 1, ...: y = a + b·u. With
// c the middle abscissa, Σu = 0 and Σu² = n(n²-1)/12.
func wls(ys []float64, c float64) (a, b float64, ok bool) {
	n := float64(len(ys))
	if c != (n-1)/2 || len(ys) < 2 {
		return wlsFrom(ys, c, 0, 0, 0)
	}
	var sy, suy float64
	for i, y := range ys {
		sy += y
		suy += (float64(i) - c) * y
	}
	return sy / n, suy / (n * (n*n - 1) / 12), true
}

// wlsFrom is weighted least squares of ys on u = x - c in one pass, each value weighted
// by Tukey's bisquare (1-(r/cut)²)² of its residual r from the line a0 + b0·u (0 at
// |r| >= cut); cut = 0: all weights 1. ok is false when the weights sum to (nearly)
// zero. One value, or all the weight on one abscissa, gives a flat line.
func wlsFrom(ys []float64, c, cut, a0, b0 float64) (a, b float64, ok bool) {
	var sw, su, sy, suu, suy float64
	inv := 0.0
	if cut > 0 {
		inv = 1 / cut
	}
	for i, y := range ys {
		u := float64(i) - c
		w := 1.0
		if cut > 0 {
			r := (y - a0 - b0*u) * inv
			if !(r > -1 && r < 1) {
				continue
			}
			w = (1 - r*r) * (1 - r*r)
		}
		sw += w
		su += w * u
		sy += w * y
		suu += w * u * u
		suy += w * u * y
	}
	if !(sw > 1e-12) {
		return 0, 0, false
	}
	d := sw*suu - su*su
	if !(d > 1e-12*sw*sw) {
		return sy / sw, 0, true
	}
	b = (sw*suy - su*sy) / d
	return (sy - b*su) / sw, b, true
}

// median of xs, reordering them: quickselect, O(len) on average.
func median(xs []float64) float64 {
	n := len(xs)
	k := n / 2
	hi := nth(xs, k)
	if n%2 == 1 {
		return hi
	}
	lo := xs[0] // the largest of xs[:k], all <= hi after nth
	for _, x := range xs[1:k] {
		lo = max(lo, x)
	}
	return (lo + hi) / 2
}

// nth reorders xs so that xs[k] is the k-th smallest, the ones before it no larger and
// the ones after no smaller, and returns it (Hoare's selection, middle pivot).
func nth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		p := xs[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for xs[i] < p {
				i++
			}
			for xs[j] > p {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}
