package forecast

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// scripted is a model whose forecast for slot t is 100 − e(t): against a load that is
// always 100, the residual at slot t is exactly e(t).
type scripted struct {
	n int
	e func(t int) float64
}

func (m *scripted) observe(float64)        { m.n++ }
func (m *scripted) forecast(k int) float64 { return 100 - m.e(m.n-1+k) }
func (m *scripted) ready() bool            { return m.n > 0 }
func (m *scripted) reset()                 { m.n = 0 }

// sharpResiduals is 0 at 8 slots of 10 and +50 at 2 (rare large under-forecasts);
// wideResiduals is −20 at 5 slots of 10 and +20 at 5. Their losses are derived where
// they are used.
func sharpResiduals(t int) float64 {
	if t%10 >= 8 {
		return 50
	}
	return 0
}

func wideResiduals(t int) float64 {
	if t%10 >= 5 {
		return 20
	}
	return -20
}

// scriptedMethod is a candidate for Auto built on scripted.
type scriptedMethod struct {
	name string
	s    series
	m    scripted
}

func (f *scriptedMethod) Update(x Sample) { f.s.update(&f.m, x) }
func (f *scriptedMethod) Predict(h time.Duration, q float64) (Prediction, bool) {
	return f.s.predict(&f.m, h, q)
}
func (f *scriptedMethod) Name() string            { return f.name }
func (f *scriptedMethod) parts() (*series, model) { return &f.s, &f.m }

// Auto chooses by the loss of what the plan uses. Two methods against a load of 100,
// residuals at the 4-step horizon cycling with period 10 (the 1,000-residual window is 100
// whole cycles, so from the second thousand on it holds the same multiset at every step):
//
//   - "sharp": e = 0 at 8 slots of 10, +50 at 2 (rare large under-forecasts).
//     MAE = 2·50/10 = 10. Sorted window: 800 zeros (positions 0..799), 200 fifties
//     (800..999); the 0.9 quantile (position 899.1) is 50, so its planned quantile is
//     point + 50: the load is 50 below it at 8 slots, on it at 2. Pinball loss at 0.9:
//     8·(1 − 0.9)·50 / 10 = 4.
//   - "wide": e = −20 at 5 slots of 10, +20 at 5. MAE = 20. Sorted: 500 at −20, 500 at
//     +20; the 0.9 quantile is 20, the planned quantile point + 20: the load is 40 below
//     it at 5 slots, on it at 5. Pinball loss: 5·0.1·40 / 10 = 2.
//
// The point's MAE picks "sharp" (10 < 20); the pinball loss at 0.9 picks "wide" (2 < 4):
// "sharp"'s planned quantile is 50 over the load 80 % of the time, "wide"'s 40 over half
// the time, and neither is ever under it. At q = 0.5 both planned quantiles are their
// medians (sharp: point + 0, load 50 above it at 2 of 10: 0.5·50·2/10 = 5; wide: the
// median at position 499.5 is 0, between −20 and +20, so point + 0: 0.5·20 = 10), and
// "sharp" wins as by MAE.
func TestAutoChoosesByPinballLoss(t *testing.T) {
	sharp, wide := sharpResiduals, wideResiduals
	cases := []struct {
		name      string
		q         float64
		want      string
		wantLoss  float64
		wantWhy   string
		otherLoss float64
	}{
		{name: "no planning quantile: the point's MAE picks the sharp method", q: 0, want: "sharp", wantLoss: 10, otherLoss: 20, wantWhy: "mean absolute error (10)"},
		{name: "quantile 0.9: the pinball loss picks the method without a heavy upper tail", q: 0.9, want: "wide", wantLoss: 2, otherLoss: 4, wantWhy: "pinball loss at quantile 0.9 (2)"},
		{name: "quantile 0.5: the pinball loss at the median agrees with MAE here", q: 0.5, want: "sharp", wantLoss: 5, otherLoss: 10, wantWhy: "pinball loss at quantile 0.5 (5)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mk := func(name string, e func(int) float64) *scriptedMethod {
				f := &scriptedMethod{name: name, s: newSeries(time.Minute, 4, 0), m: scripted{e: e}}
				f.s.q = tc.q
				return f
			}
			a := &Auto{chosen: -1, q: tc.q, cands: []Forecaster{mk("sharp", sharp), mk("wide", wide)}}
			for i := range 2500 {
				a.Update(Sample{At: t0.Add(time.Duration(i) * time.Minute), Value: 100})
			}
			m, why := a.Chosen()
			if string(m) != tc.want || !strings.Contains(why, tc.wantWhy) {
				t.Fatalf("Chosen() = %q, %q; want %q with %q", m, why, tc.want, tc.wantWhy)
			}
			if got := a.Method(); got != m {
				t.Errorf("Method() = %q, Chosen() %q", got, m)
			}
			for _, c := range a.cands {
				want := tc.otherLoss
				if c.Name() == tc.want {
					want = tc.wantLoss
				}
				if got, ok := errorOf(c); !ok || math.Abs(got-want) > 1e-9 {
					t.Errorf("%s: loss = %v, %v; want %v", c.Name(), got, ok, want)
				}
			}
		})
	}
}

func TestPinball(t *testing.T) {
	cases := []struct{ r, q, want float64 }{
		{10, 0.9, 9},  // load 10 above the planned quantile: q·10
		{-10, 0.9, 1}, // load 10 below it: (1 − q)·10
		{0, 0.9, 0},   // on it
		{10, 0.5, 5},  // at the median both sides cost half the absolute error
		{-10, 0.5, 5},
		{-10, 0.1, 9}, // a low quantile: over-forecasts cost most
	}
	for _, c := range cases {
		if got := pinball(c.r, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("pinball(%v, %v) = %v, want %v", c.r, c.q, got, c.want)
		}
	}
}

// key orders floats as integers: every pair of the list, in both orders, compares as
// the floats do, and unkey inverts it bit for bit.
func TestKeyOrder(t *testing.T) {
	xs := []float64{math.Inf(-1), -1e300, -2.5, -1, -1e-300, 0, 1e-300, 1, 2.5, 1e300, math.Inf(1)}
	for i, a := range xs {
		if got := unkey(key(a)); math.Float64bits(got) != math.Float64bits(a) {
			t.Errorf("unkey(key(%v)) = %v", a, got)
		}
		for j, b := range xs {
			if (key(a) < key(b)) != (i < j) {
				t.Errorf("key(%v) < key(%v) = %v, want %v", a, b, key(a) < key(b), i < j)
			}
		}
	}
	if key(math.Copysign(0, -1)) > key(0) {
		t.Errorf("key(-0) > key(0)")
	}
}

// The sorted window follows the ring through the first fill and 2,000 replacements, on
// values with many ties (integers −5..5) and on continuous ones of both signs.
func TestSortedResidualsFollowTheRing(t *testing.T) {
	gens := map[string]func(r *rand.Rand) float64{
		"ties":       func(r *rand.Rand) float64 { return float64(r.IntN(11) - 5) },
		"continuous": func(r *rand.Rand) float64 { return r.NormFloat64() * 1e3 },
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			s := newSeries(time.Minute, 4, 0)
			for i := range residualCap + 2000 {
				s.addResidual(gen(r), 0)
				if i%97 != 0 && i < residualCap+1990 {
					continue
				}
				want := slices.Clone(s.res)
				slices.Sort(want)
				got := make([]float64, len(s.sorted))
				for j, k := range s.sorted {
					got[j] = unkey(k)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("after %d residuals the sorted window differs from the sorted ring", i+1)
				}
			}
		})
	}
}

func TestLowerBound(t *testing.T) {
	xs := []float64{-3, -1, -1, 0, 2, 2, 2, 7}
	ks := make([]uint64, len(xs))
	for i, x := range xs {
		ks[i] = key(x)
	}
	cases := []struct {
		v    float64
		want int
	}{
		{-4, 0}, {-3, 0}, {-2, 1}, {-1, 1}, {0, 3}, {1, 4}, {2, 4}, {5, 7}, {7, 7}, {8, 8},
	}
	for _, c := range cases {
		if got := lowerBound(ks, key(c.v)); got != c.want {
			t.Errorf("lowerBound(%v) = %d, want %d", c.v, got, c.want)
		}
	}
	if got := lowerBound(nil, key(1)); got != 0 {
		t.Errorf("lowerBound on empty = %d, want 0", got)
	}
}
