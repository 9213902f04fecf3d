package forecast

import "time"

// SeasonalNaive forecasts the value one season before the target slot (the last
// season's value at the same phase). It predicts once it has one whole season. Build it
// with Fit.
type SeasonalNaive struct {
	s series
	m seasonalNaive
}

// Update implements Forecaster.
func (f *SeasonalNaive) Update(x Sample) { f.s.update(&f.m, x) }

// Predict implements Forecaster.
func (f *SeasonalNaive) Predict(h time.Duration, q float64) (Prediction, bool) {
	return f.s.predict(&f.m, h, q)
}

// Name implements Forecaster.
func (f *SeasonalNaive) Name() string { return string(MethodSeasonalNaive) }

type seasonalNaive struct {
	period int
	ring   []float64 // ring[t%period] is the value of slot t
	n      int
}

func (m *seasonalNaive) observe(y float64) {
	if m.ring == nil {
		m.ring = make([]float64, m.period)
	}
	m.ring[m.n%m.period] = y
	m.n++
}

// forecast of slot t = n-1+k is the value of slot t - p·ceil(k/p), the latest slot at the
// same phase that has been seen (k = 0: the last value itself).
func (m *seasonalNaive) forecast(k int) float64 {
	back := 0
	if k > 0 {
		back = (k + m.period - 1) / m.period * m.period
	}
	return m.ring[(m.n-1+k-back)%m.period]
}

func (m *seasonalNaive) ready() bool { return m.n >= m.period }
func (m *seasonalNaive) reset()      { m.n = 0 }
