package forecast

import "time"

// HoltWinters is additive triple exponential smoothing with one season: level, trend and
// one seasonal term per slot of the season. It needs two whole seasons before it
// predicts. Build it with Fit.
type HoltWinters struct {
	s series
	m holtWinters
}

// Update implements Forecaster.
func (f *HoltWinters) Update(x Sample) { f.s.update(&f.m, x) }

// Predict implements Forecaster.
func (f *HoltWinters) Predict(h time.Duration, q float64) (Prediction, bool) {
	return f.s.predict(&f.m, h, q)
}

// Name implements Forecaster.
func (f *HoltWinters) Name() string { return string(MethodHoltWinters) }

// Params are the fitted smoothing weights of the level, trend and season, in (0, 1).
func (f *HoltWinters) Params() (alpha, beta, gamma float64) {
	return f.m.alpha, f.m.beta, f.m.gamma
}

// Warm reports how many values it has of the two seasons it needs before predicting.
func (f *HoltWinters) Warm() (have, need int) {
	return min(f.m.n, 2*f.m.period), 2 * f.m.period
}

type holtWinters struct {
	alpha, beta, gamma float64
	period             int
	level, trend       float64
	season             []float64 // season[t%period] for slot t
	first              []float64 // the first two seasons, until initialised
	n                  int
}

func (m *holtWinters) observe(y float64) {
	if m.n < 2*m.period {
		m.first = append(m.first, y)
		m.n++
		if m.n == 2*m.period {
			m.init()
		}
		return
	}
	i := m.n % m.period
	s := m.season[i]
	l := m.alpha*(y-s) + (1-m.alpha)*(m.level+m.trend)
	m.trend = m.beta*(l-m.level) + (1-m.beta)*m.trend
	m.season[i] = m.gamma*(y-l) + (1-m.gamma)*s
	m.level = l
	m.n++
}

// init decomposes the first two seasons: the trend is the difference of their means over
// one period, the line through the means (at the middle of each season) is the level,
// and each slot's seasonal term is its mean deviation from that line. A season sampled
// whole sums to zero against its mean, so trend + any periodic shape is recovered
// exactly.
func (m *holtWinters) init() {
	p := m.period
	var m1, m2 float64
	for i := range p {
		m1 += m.first[i]
		m2 += m.first[p+i]
	}
	m1 /= float64(p)
	m2 /= float64(p)
	b := (m2 - m1) / float64(p)
	line := func(t int) float64 { return m1 + b*(float64(t)-float64(p-1)/2) }
	if m.season == nil {
		m.season = make([]float64, p)
	}
	for i := range p {
		m.season[i] = (m.first[i] - line(i) + m.first[p+i] - line(p+i)) / 2
	}
	m.level, m.trend = line(2*p-1), b
	m.first = m.first[:0]
}

func (m *holtWinters) forecast(k int) float64 {
	return m.level + float64(k)*m.trend + m.season[(m.n-1+k)%m.period]
}

func (m *holtWinters) ready() bool { return m.n >= 2*m.period }

func (m *holtWinters) reset() {
	m.level, m.trend, m.n = 0, 0, 0
	m.first = m.first[:0]
}
