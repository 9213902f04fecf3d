package forecast

import (
	"math"
	"testing"
	"time"
)

// t0 is the fixed epoch of every test.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// series of n per-minute samples of f(t), t the minute index.
func samples(n int, f func(t int) float64) []Sample {
	xs := make([]Sample, n)
	for t := range xs {
		xs[t] = Sample{At: t0.Add(time.Duration(t) * time.Minute), Value: f(t)}
	}
	return xs
}

func mustFit(t *testing.T, h []Sample, o Options) Forecaster {
	t.Helper()
	f, err := Fit(h, o)
	if err != nil {
		t.Fatalf("Fit: %v", err)
	}
	return f
}

func TestMethodsOnKnownSeries(t *testing.T) {
	const (
		n = 600 // ten hours of minutes
		P = 60  // a one-hour season
	)
	line := func(t int) float64 { return 100 + 2.5*float64(t) }
	sine := func(t int) float64 {
		return 50 + 0.5*float64(t) + 10*math.Sin(2*math.Pi*float64(t)/P)
	}
	periodic := func(t int) float64 { return float64((t%P)*(t%P)%17) + 3 }
	cases := []struct {
		name  string
		o     Options
		f     func(int) float64 // the series; history is t = 0..n-1
		truth func(int) float64 // what a perfect forecast gives at t >= n
		tol   float64
	}{
		{
			// After two values Holt's level is y1 and its trend b exactly; then
			// l' = αy + (1-α)(l+b) = α(a+bt) + (1-α)(a+b(t-1)+b) = a+bt and
			// b' = βb + (1-β)b = b for any fitted α, β. Only rounding is left: values
			// below 2e3, ~600 steps of a few ulps (2e-13 each): far below 1e-6.
			name: "holt on an exact line forecasts a+b(t+h)", f: line, truth: line, tol: 1e-6,
			o: Options{Method: MethodHolt, Step: time.Minute, Horizon: 4 * time.Minute},
		},
		{
			// The two-season initialisation is exact: a sine sampled at P equally spaced
			// points sums to zero, so each season's mean is the line at its middle, the
			// trend is (m2-m1)/P = 0.5 and each slot's deviation is the sine. The
			// updates then keep every component exact (y - s = line = l + b, y - l' = s),
			// for any α, β, γ. Rounding: values below 400, ~600 steps: < 1e-6.
			name: "holt-winters on trend + sine recovers both", f: sine, truth: sine, tol: 1e-6,
			o: Options{Method: MethodHoltWinters, Step: time.Minute, Horizon: 4 * time.Minute, Season: P * time.Minute},
		},
		{
			// The forecast of slot t is the value of slot t-P, equal by periodicity.
			name: "seasonal-naive on a periodic series is exact", f: periodic, truth: periodic, tol: 0,
			o: Options{Method: MethodSeasonalNaive, Step: time.Minute, Horizon: 4 * time.Minute, Season: P * time.Minute},
		},
		{
			// Any window: points on a line fit it exactly (MAD 0, all weights 1).
			name: "linear on an exact line", f: line, truth: line, tol: 1e-6,
			o: Options{Method: MethodLinear, Step: time.Minute, Horizon: 4 * time.Minute},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mustFit(t, samples(n, tc.f), tc.o)
			for _, k := range []int{1, 4, 30, 61} {
				p, ok := f.Predict(time.Duration(k)*time.Minute, 0.9)
				if !ok {
					t.Fatalf("Predict(%d min): not ok", k)
				}
				want := tc.truth(n - 1 + k)
				if d := math.Abs(p.Point - want); d > tc.tol {
					t.Errorf("Predict(%d min) = %v, want %v ± %v (off by %g)", k, p.Point, want, tc.tol, d)
				}
			}
		})
	}
}

// The default horizon, 195 s, is 3.25 steps of a minute: Predict interpolates linearly
// between the 3- and 4-step forecasts, which on a line is the line at t+3.25.
func TestPredictInterpolatesBetweenSteps(t *testing.T) {
	line := func(t int) float64 { return 100 + 2.5*float64(t) }
	f := mustFit(t, samples(100, line), Options{Method: MethodHolt, Step: time.Minute, Horizon: 195 * time.Second})
	p, ok := f.Predict(195*time.Second, 0.9)
	want := 100 + 2.5*(99+3.25) // 355.625
	if !ok || math.Abs(p.Point-want) > 1e-9 {
		t.Fatalf("Predict(195s) = %v, %v; want %v", p, ok, want)
	}
}

// Bisquare from the least-squares line: on y = 100 + 2x, x = 0..29, with +1000 at
// x = 5, 15, 25, least squares shifts the line by δ(x) = 100 + (1000·1.5/2247.5)(x-14.5),
// in [90.3, 109.7] (Σ spikes/30 = 100; Σ(x-14.5)·spike = 1500, Σ(x-14.5)² = 2247.5). So the
// 27 inliers' residuals are 90..110 and the MAD about 100: c = 4.685·1.4826·100 ≈ 695.
// The outliers' residuals, ≈ 900, exceed c: weight 0; the inliers, all collinear, keep
// positive weights, so the next fit is the true line exactly, and stays so. Least squares
// would be off by δ(29+4) ≈ 112.
func TestLinearIgnoresOutliers(t *testing.T) {
	var m linear
	m.window = 30
	for x := range 30 {
		y := 100 + 2*float64(x)
		if x%10 == 5 {
			y += 1000
		}
		m.observe(y)
	}
	got, want := m.forecast(4), 100+2*float64(29+4) // 166
	if math.Abs(got-want) > 1e-6 {
		t.Fatalf("forecast(4) = %v, want %v", got, want)
	}
	a, b, _ := wls(m.ring[:30], 14.5)
	if ols := a + b*(33-14.5); math.Abs(ols-want) < 100 {
		t.Fatalf("least squares forecast %v is within 100 of %v: the outliers are too weak to test anything", ols, want)
	}
}
