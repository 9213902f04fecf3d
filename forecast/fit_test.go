package forecast

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// scriptedSeries returns n values of a load that is always 100, for the scripted model
// (whose residual at slot t is then exactly e(t)).
func scriptedSeries(n int) []float64 {
	ys := make([]float64, n)
	for i := range ys {
		ys[i] = 100
	}
	return ys
}

// The fit's loss, on residuals whose value is derived by hand. The scripted model's
// residual at slot t is e(t); fitLoss.of scores the forecasts made horizon (4) steps
// before each slot from slot 4 on, so 1,004 values give the residuals of slots 4..1003:
// 100 whole cycles of e's period 10.
//
//   - e = 0 at 8 slots of 10, +50 at 2 (TestAutoChoosesByPinballLoss's "sharp"). MSE =
//     2·50²/10 = 500. At q = 0.9 the margin is the errors' 0.9 quantile (sorted
//     position int(0.9·999) = 899, among the fifties at 800..999): 50; the load is 50
//     below point + 50 at 8 slots of 10, on it at 2: loss 8·0.1·50/10 = 4.
//   - at q = 0.5 the margin is position 499: 0; the load is 50 above it at 2 slots of
//     10: loss 2·0.5·50/10 = 5.
//   - e = −20 at 5 slots, +20 at 5 ("wide"): MSE 400; at q = 0.9 the margin is 20
//     (position 899 of 500 at −20, 500 at +20), the load 40 below it half the time:
//     5·0.1·40/10 = 2.
func TestFitLoss(t *testing.T) {
	sharp, wide := sharpResiduals, wideResiduals
	for _, tc := range []struct {
		name string
		e    func(int) float64
		q    float64
		want float64
	}{
		{"rare large misses, mean squared error", sharp, 0, 500},
		{"rare large misses, pinball at 0.9 over the 0.9-quantile margin", sharp, 0.9, 4},
		{"rare large misses, pinball at 0.5 over the median margin", sharp, 0.5, 5},
		{"symmetric misses, mean squared error", wide, 0, 400},
		{"symmetric misses, pinball at 0.9", wide, 0.9, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := fitLoss{q: tc.q}
			got, ok := l.of(&scripted{e: tc.e}, scriptedSeries(1004), 4, 1)
			if !ok || math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("loss = %v, %v; want %v", got, ok, tc.want)
			}
		})
	}
}

// With a quantile, the fit's loss is the least mean pinball loss of point + c over every
// constant margin c. The mean pinball loss is convex and piecewise linear in c with
// breaks at the errors, so its minimum is at one of them: checked against all of them,
// on random errors with ties.
func TestFitLossIsTheBestMargin(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	errs := make([]float64, 1000)
	for i := range errs {
		errs[i] = math.Round(40*r.NormFloat64()) / 4 // quarter steps: many ties
	}
	e := func(t int) float64 { // slots 4..1003 are scored; later ones are forecast, never scored
		if t-4 < len(errs) {
			return errs[t-4]
		}
		return 0
	}
	for _, q := range []float64{0.1, 0.5, 0.9, 0.99} {
		l := fitLoss{q: q}
		got, ok := l.of(&scripted{e: e}, scriptedSeries(len(errs)+4), 4, 1)
		best := math.Inf(1)
		for _, c := range errs {
			var sum float64
			for _, x := range errs {
				sum += pinball(x-c, q)
			}
			best = min(best, sum/float64(len(errs)))
		}
		if !ok || math.Abs(got-best) > 1e-9*best {
			t.Errorf("q %v: loss = %v, %v; want the best margin's %v", q, got, ok, best)
		}
	}
}

// nth (shared with Linear's median) on sizes, ties and ranks at both ends.
func TestNth(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	for _, n := range []int{1, 2, 3, 7, 100, 1001} {
		for _, distinct := range []int{1, 3, 1000} { // all equal, heavy ties, few ties
			xs := make([]float64, n)
			for i := range xs {
				xs[i] = float64(r.IntN(distinct))
			}
			sorted := slices.Sorted(slices.Values(xs))
			for _, k := range []int{0, n / 3, n / 2, n * 9 / 10, n - 1} {
				work := slices.Clone(xs)
				if got := nth(work, k); got != sorted[k] {
					t.Fatalf("n %d, %d distinct, k %d: got %v, want %v", n, distinct, k, got, sorted[k])
				}
				if !slices.Equal(slices.Sorted(slices.Values(work)), sorted) {
					t.Fatalf("n %d, k %d: nth lost or changed values", n, k)
				}
			}
		}
	}
}

// Fit minimises the loss of what the caller plans with: on a level with noise and
// 3-step bursts of +100 (2 % of the steps start one), Holt fitted for the 0.9 quantile
// has a lower in-sample pinball loss at 0.9 than Holt fitted on the mean squared error,
// and the other way round for the squared error. (The two fits' weights differ here:
// α about 0.07 against 0.28; the losses compared are those Fit measures.)
func TestFitMinimisesThePlannedLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 2))
	var hist []Sample
	burst := 0
	for i := range 4000 {
		v := 100 + 10*r.NormFloat64()
		if burst > 0 {
			v += 100
			burst--
		} else if r.Float64() < 0.02 {
			burst = 3
		}
		hist = append(hist, Sample{At: time.Unix(0, 0).Add(time.Duration(i) * time.Minute), Value: v})
	}
	opts := Options{Method: MethodHolt, Step: time.Minute, Horizon: 4 * time.Minute}
	ys := resample(hist, time.Minute, 4, 0)
	losses := func(f Forecaster) (sq, pin float64) {
		a, b := f.(*Holt).Params()
		mse := fitLoss{}
		pl := fitLoss{q: 0.9}
		sq, _ = mse.of(&holt{alpha: a, beta: b}, ys, 4, 1)
		pin, _ = pl.of(&holt{alpha: a, beta: b}, ys, 4, 1)
		return sq, pin
	}
	bySquare, err := Fit(hist, opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.Quantile = 0.9
	byPinball, err := Fit(hist, opts)
	if err != nil {
		t.Fatal(err)
	}
	sqS, pinS := losses(bySquare)
	sqP, pinP := losses(byPinball)
	if !(pinP < pinS) {
		t.Errorf("pinball loss at 0.9: fitted for it %v, fitted on the squared error %v; want the first lower", pinP, pinS)
	}
	if !(sqS < sqP) {
		t.Errorf("squared error: fitted on it %v, fitted for the 0.9 quantile %v; want the first lower", sqS, sqP)
	}
}
