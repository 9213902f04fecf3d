package forecast

import (
	"math"
	"slices"
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
const robustIterations = 8

type linear struct {
	window int
	ring   []float64
	n      int

	// The line fitted at n values: forecast(k) = a + b·(m-1+k) over the last m values.
	fitN int
	a, b float64
	m    int

	ys, abs []float64 // scratch
}

func (m *linear) observe(y float64) {
	if m.ring == nil {
		m.ring = make([]float64, m.window)
		m.ys = make([]float64, m.window)
		m.abs = make([]float64, m.window)
	}
	m.ring[m.n%m.window] = y
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
	ys := m.ys[:n]
	for i := range n {
		ys[i] = m.ring[(m.n-n+i)%m.window]
	}
	a, b := wls(ys, nil)
	// Scale: 1.4826·MAD of the least-squares residuals; floored so that an exact line
	// (MAD 0) keeps weight 1 on its points instead of dividing by zero.
	var mean float64
	abs := m.abs[:n]
	for i, y := range ys {
		abs[i] = math.Abs(y - a - b*float64(i))
		mean += math.Abs(y)
	}
	slices.Sort(abs)
	scale := 1.4826 * abs[n/2]
	if n%2 == 0 {
		scale = 1.4826 * (abs[n/2-1] + abs[n/2]) / 2
	}
	scale = max(scale, 1e-9*(1+mean/float64(n)))
	c := bisquareK * scale
	w := abs // reuse as weights
	for range robustIterations {
		for i, y := range ys {
			u := (y - a - b*float64(i)) / c
			w[i] = 0
			if u > -1 && u < 1 {
				w[i] = (1 - u*u) * (1 - u*u)
			}
		}
		var sw float64
		for _, wi := range w {
			sw += wi
		}
		if !(sw > 1e-12) {
			break // every value rejected: keep the last line
		}
		a2, b2 := wls(ys, w)
		done := math.Abs(a2-a)+math.Abs(b2-b)*float64(n) <= 1e-9*(1+math.Abs(a))
		a, b = a2, b2
		if done {
			break
		}
	}
	m.a, m.b = a, b
}

// wls is weighted least squares of ys on x = 0, 1, ...; nil weights are all 1. With one
// value (or all weight on one abscissa) the line is flat.
func wls(ys, w []float64) (a, b float64) {
	var sw, sx, sy float64
	for i, y := range ys {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		sw += wi
		sx += wi * float64(i)
		sy += wi * y
	}
	if !(sw > 1e-12) {
		return ys[len(ys)-1], 0 // every value rejected: flat at the last one
	}
	mx, my := sx/sw, sy/sw
	var sxx, sxy float64
	for i, y := range ys {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		dx := float64(i) - mx
		sxx += wi * dx * dx
		sxy += wi * dx * (y - my)
	}
	if sxx <= 0 {
		return my, 0
	}
	b = sxy / sxx
	return my - b*mx, b
}
