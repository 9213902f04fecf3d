package forecast

import "time"

// Holt is double exponential smoothing: a level and a trend, forecast level + k·trend.
// Build it with Fit.
type Holt struct {
	s series
	m holt
}

// Update implements Forecaster.
func (f *Holt) Update(x Sample) { f.s.update(&f.m, x) }

// Predict implements Forecaster.
func (f *Holt) Predict(h time.Duration, q float64) (Prediction, bool) {
	return f.s.predict(&f.m, h, q)
}

// Name implements Forecaster.
func (f *Holt) Name() string { return string(MethodHolt) }

// Params are the fitted smoothing weights of the level and the trend, in (0, 1).
func (f *Holt) Params() (alpha, beta float64) { return f.m.alpha, f.m.beta }

type holt struct {
	alpha, beta  float64
	level, trend float64
	n            int
}

// observe: the first value sets the level, the second the trend (so a line is followed
// exactly from then on), the rest smooth both.
func (m *holt) observe(y float64) {
	switch m.n {
	case 0:
		m.level = y
	case 1:
		m.level, m.trend = y, y-m.level
	default:
		l := m.alpha*y + (1-m.alpha)*(m.level+m.trend)
		m.trend = m.beta*(l-m.level) + (1-m.beta)*m.trend
		m.level = l
	}
	m.n++
}

func (m *holt) forecast(k int) float64 { return m.level + float64(k)*m.trend }
func (m *holt) ready() bool            { return m.n >= 2 }
func (m *holt) reset()                 { *m = holt{alpha: m.alpha, beta: m.beta} }
