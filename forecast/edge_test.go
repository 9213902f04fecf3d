package forecast

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var allMethods = []Method{MethodAuto, MethodHolt, MethodHoltWinters, MethodSeasonalNaive, MethodLinear}

// checkPrediction fails on anything a caller must never see.
func checkPrediction(t testing.TB, what string, p Prediction) {
	t.Helper()
	for _, v := range []float64{p.Point, p.Lo, p.Hi} {
		if !finite(v) || v < 0 {
			t.Fatalf("%s: %+v has a value that is not finite and >= 0", what, p)
		}
	}
	if !(p.Lo <= p.Point && p.Point <= p.Hi) {
		t.Fatalf("%s: %+v: want Lo <= Point <= Hi", what, p)
	}
}

func TestDegenerateSeries(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name   string
		values []float64 // per minute; NaN: no sample that minute
		// readyWithout is whether methods without a season predict afterwards.
		readyWithout bool
	}{
		{name: "no samples", values: nil},
		{name: "one sample", values: []float64{7}},
		{name: "two samples", values: []float64{7, 9}, readyWithout: true},
		{name: "constant", values: repeat(42, 300), readyWithout: true},
		{name: "zeros", values: repeat(0, 300), readyWithout: true},
		{name: "gaps and invalid values", values: []float64{5, nan, nan, 6, -1, math.Inf(1), 1e300, 7, nan, 0, 0, 8}, readyWithout: true},
	}
	for _, tc := range cases {
		for _, m := range allMethods {
			t.Run(tc.name+"/"+string(m), func(t *testing.T) {
				var xs []Sample
				for i, v := range tc.values {
					if !math.IsNaN(v) {
						xs = append(xs, Sample{At: t0.Add(time.Duration(i) * time.Minute), Value: v})
					}
				}
				o := Options{Method: m, Step: time.Minute, Horizon: 4 * time.Minute, Season: 5 * time.Minute}
				f := mustFit(t, xs, o)
				for _, h := range []time.Duration{0, 195 * time.Second, time.Hour} {
					p, ok := f.Predict(h, 0.9)
					if ok {
						checkPrediction(t, "Predict", p)
					}
					if m == MethodHolt || m == MethodLinear {
						if ok != tc.readyWithout {
							t.Errorf("Predict(%v) ok = %v, want %v", h, ok, tc.readyWithout)
						}
					}
				}
			})
		}
	}
}

func repeat(v float64, n int) []float64 {
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = v
	}
	return xs
}

// A constant series has constant forecasts and, its residuals all 0, a zero-width
// interval, whatever the method.
func TestConstantSeriesForecastsItself(t *testing.T) {
	for _, m := range allMethods {
		f := mustFit(t, samples(300, func(int) float64 { return 42 }),
			Options{Method: m, Step: time.Minute, Horizon: 4 * time.Minute, Season: 5 * time.Minute})
		p, ok := f.Predict(4*time.Minute, 0.9)
		if want := (Prediction{42, 42, 42}); !ok || math.Abs(p.Point-42) > 1e-9 || math.Abs(p.Hi-42) > 1e-9 || math.Abs(p.Lo-42) > 1e-9 {
			t.Errorf("%s: Predict = %+v, %v; want %+v", m, p, ok, want)
		}
	}
}

// A gap is filled with the model's own one-step forecasts: on a line (Holt) and on a
// periodic series (seasonal-naive) those are the true values, so the forecasts after the
// gap stay exact.
func TestGapsAreFilledWithForecasts(t *testing.T) {
	line := func(t int) float64 { return 10 + 3*float64(t) }
	periodic := func(t int) float64 { return float64(t%7) * 4 }
	cases := []struct {
		name string
		o    Options
		f    func(int) float64
	}{
		{"holt on a line", Options{Method: MethodHolt, Step: time.Minute, Horizon: 4 * time.Minute}, line},
		{"seasonal-naive on a periodic series", Options{Method: MethodSeasonalNaive, Step: time.Minute, Horizon: 4 * time.Minute, Season: 7 * time.Minute}, periodic},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var xs []Sample
			for i, x := range samples(100, tc.f) {
				if i < 40 || i > 55 { // minutes 40..55 missing
					xs = append(xs, x)
				}
			}
			// samples 20 s late land on their own minute's slot (rounded).
			xs[len(xs)-1].At = xs[len(xs)-1].At.Add(20 * time.Second)
			f := mustFit(t, xs, tc.o)
			p, ok := f.Predict(4*time.Minute, 0.9)
			if want := tc.f(99 + 4); !ok || math.Abs(p.Point-want) > 1e-6 {
				t.Fatalf("Predict(4m) = %+v, %v; want %v", p, ok, want)
			}
		})
	}
}

// Samples in an already filled slot, or going back in time, are ignored.
func TestLateAndDuplicateSamplesAreIgnored(t *testing.T) {
	line := func(t int) float64 { return 10 + 3*float64(t) }
	f := mustFit(t, samples(50, line), Options{Method: MethodHolt, Step: time.Minute, Horizon: 4 * time.Minute})
	last := t0.Add(49 * time.Minute)
	f.Update(Sample{At: last.Add(20 * time.Second), Value: 1e6}) // same slot (rounds to 49)
	f.Update(Sample{At: last.Add(-time.Hour), Value: 1e6})       // back in time
	p, ok := f.Predict(4*time.Minute, 0.9)
	if want := line(53); !ok || math.Abs(p.Point-want) > 1e-6 {
		t.Fatalf("Predict = %+v, %v; want %v", p, ok, want)
	}
}

// A gap longer than a day restarts the forecaster: Holt needs two new values again.
func TestLongGapRestarts(t *testing.T) {
	f := mustFit(t, samples(50, func(t int) float64 { return 5 }), Options{Method: MethodHolt, Step: time.Minute, Horizon: 4 * time.Minute})
	f.Update(Sample{At: t0.Add(49*time.Minute + 24*time.Hour + 2*time.Minute), Value: 9})
	if _, ok := f.Predict(time.Minute, 0.9); ok {
		t.Fatalf("Predict after a 24h gap and one value: ok, want not ready")
	}
}

func TestAutoFallsBackUntilTwoSeasons(t *testing.T) {
	const P = 60
	sine := func(t int) float64 { return 50 + 0.5*float64(t) + 10*math.Sin(2*math.Pi*float64(t)/P) }
	o := Options{Method: MethodAuto, Step: time.Minute, Horizon: 4 * time.Minute, Season: P * time.Minute}
	all := samples(6*P, sine)
	f := mustFit(t, all[:90], o).(*Auto)
	m, why := f.Chosen()
	if m == MethodHoltWinters || m == "" || !strings.Contains(why, "holt-winters needs two seasons, has 90 of 120") {
		t.Fatalf("after 90 of 120 values: Chosen() = %q, %q; want a fallback that says why", m, why)
	}
	// Holt-Winters is exact on trend + sine (see TestMethodsOnKnownSeries); once it has
	// 20 residuals its error (~0) is the lowest: the others miss the season or the trend.
	for _, x := range all[90:] {
		f.Update(x)
	}
	if m, why := f.Chosen(); m != MethodHoltWinters {
		t.Fatalf("after 6 seasons: Chosen() = %q, %q; want holt-winters", m, why)
	}
}

func TestFitRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		msg  string
	}{
		{"no step", Options{Horizon: time.Minute}, "step: must be > 0"},
		{"no horizon", Options{Step: time.Minute}, "horizon: must be > 0"},
		{"unknown method", Options{Method: "prophet", Step: time.Minute, Horizon: time.Minute}, `method: unknown "prophet"`},
		{"season shorter than two steps", Options{Step: time.Minute, Horizon: time.Minute, Season: 80 * time.Second}, "season: must be at least 2 steps"},
		{"holt-winters without a season", Options{Method: MethodHoltWinters, Step: time.Minute, Horizon: time.Minute}, "needs a season"},
		{"quantile of 1", Options{Step: time.Minute, Horizon: time.Minute, Quantile: 1}, "quantile: must be in (0, 1)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fit(nil, tc.o)
			if !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Fit error = %v; want ErrOptions containing %q", err, tc.msg)
			}
		})
	}
}

// Intervals are the point plus residual quantiles, interpolated between order statistics.
func TestQuantile(t *testing.T) {
	xs := []float64{-10, -5, 0, 5, 10} // sorted; positions 0..4
	cases := []struct{ q, want float64 }{
		{0, -10}, {1, 10}, {0.5, 0}, // ends and middle
		{0.9, 8}, // position 3.6: 5 + 0.6·5
		{0.1, -8},
	}
	for _, c := range cases {
		if got := quantile(xs, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// flat is a model whose every forecast is 100.
type flat struct{ n int }

func (m *flat) observe(float64)      { m.n++ }
func (m *flat) forecast(int) float64 { return 100 }
func (m *flat) ready() bool          { return m.n > 0 }
func (m *flat) reset()               { m.n = 0 }

// The interval comes from the residuals at the fitted horizon. With forecasts of 100
// and values cycling 90, 100, 110, 120, 130 the 4-step residuals are -10, 0, 10, 20, 30
// equally often: 1,000 of them (the cap), 200 each, sorted positions 0..999. At q = 0.9
// the upper one is at position 899.1, inside the 30s (800..999): Hi = 100 + 30 = 130;
// the lower one at 99.9 (0.1 → position 99.9), inside the -10s (0..199): Lo = 90. At the
// half horizon (2 steps) both scale by sqrt(2/4): Lo = 100 - 7.07.., Hi = 100 + 21.21...
func TestIntervalFromResiduals(t *testing.T) {
	var m flat
	s := newSeries(time.Minute, 4, 0)
	for i := range 1200 {
		s.update(&m, Sample{At: t0.Add(time.Duration(i) * time.Minute), Value: 90 + 10*float64(i%5)})
	}
	cases := []struct {
		h      time.Duration
		lo, hi float64
	}{
		{4 * time.Minute, 90, 130},
		{2 * time.Minute, 100 - 10*math.Sqrt(0.5), 100 + 30*math.Sqrt(0.5)},
	}
	for _, c := range cases {
		p, ok := s.predict(&m, c.h, 0.9)
		if !ok || p.Point != 100 || math.Abs(p.Lo-c.lo) > 1e-9 || math.Abs(p.Hi-c.hi) > 1e-9 {
			t.Errorf("predict(%v) = %+v, %v; want {100 %v %v}", c.h, p, ok, c.lo, c.hi)
		}
	}
}

// median by quickselect agrees with the middle of the sorted values (the mean of the two
// middle ones for an even count), on ties and on every order of a small set.
func TestMedian(t *testing.T) {
	cases := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{2, 1}, 1.5},
		{[]float64{5, 1, 4, 2, 3}, 3},
		{[]float64{1, 1, 1, 9, 9, 9}, 5},
		{[]float64{7, 7, 7, 7}, 7},
		{[]float64{9, 8, 7, 6, 5, 4, 3, 2}, 5.5},
	}
	for _, c := range cases {
		xs := append([]float64(nil), c.xs...)
		if got := median(xs); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.xs, got, c.want)
		}
	}
}
