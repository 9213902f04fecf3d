package forecast

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGate(t *testing.T) {
	type obs struct {
		sec       int     // seconds after t0
		point, hi float64 // the prediction made one horizon before
		actual    float64
	}
	type want struct{ open, changed bool }
	cases := []struct {
		name     string
		maxError float64
		window   time.Duration
		obs      []obs
		want     []want
	}{
		{
			// misses (load above Hi): 0/1, 0/2, then 1/3 = 0.33 > 0.3: opens.
			name: "opens when the under-prediction rate rises above maxError", maxError: 0.3, window: time.Minute,
			obs:  []obs{{0, 100, 110, 100}, {15, 100, 110, 100}, {30, 100, 110, 120}},
			want: []want{{false, false}, {false, false}, {true, true}},
		},
		{
			// 0/1, then 1/2 = 0.5, not above 0.5.
			name: "a rate equal to maxError keeps it closed", maxError: 0.5, window: time.Minute,
			obs:  []obs{{0, 100, 110, 100}, {15, 100, 110, 111}},
			want: []want{{false, false}, {false, false}},
		},
		{
			// 1/1 opens; 1/2, 1/3, 1/4 stay above 0.1; at 60 s the miss at 0 s is exactly one
			// window old, so out: 0/4, closes.
			name: "closes when the miss leaves the window", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 100, 110, 150}, {15, 100, 110, 100}, {30, 100, 110, 100}, {45, 100, 110, 100}, {60, 100, 110, 100}},
			want: []want{{true, true}, {true, false}, {true, false}, {true, false}, {false, true}},
		},
		{
			// same, one second earlier: at 59 s the miss at 0 s is still inside: 1/5 = 0.2 > 0.1.
			name: "a miss less than a window old still counts", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 100, 110, 150}, {15, 100, 110, 100}, {30, 100, 110, 100}, {44, 100, 110, 100}, {59, 100, 110, 100}},
			want: []want{{true, true}, {true, false}, {true, false}, {true, false}, {true, false}},
		},
		{
			// as long as the load stays at or below Hi: 1/4 = 0.25 > 0.2 then 1/5 = 0.2 closes.
			name: "closes once enough covered observations dilute the miss", maxError: 0.2, window: time.Hour,
			obs:  []obs{{0, 100, 110, 150}, {15, 100, 110, 100}, {30, 100, 110, 100}, {45, 100, 110, 100}, {60, 100, 110, 110}},
			want: []want{{true, true}, {true, false}, {true, false}, {true, false}, {false, true}},
		},
		{
			// a window of zero load is judged like any other: 0/1; 1/1 opens; at 40 s the miss
			// at 20 s is out of the 10 s window: 0/1, closes.
			name: "zero load is judged by the rate too", maxError: 0.1, window: 10 * time.Second,
			obs:  []obs{{0, 5, 6, 0}, {20, 50, 60, 100}, {40, 5, 6, 0}},
			want: []want{{false, false}, {true, true}, {false, true}},
		},
		{
			// |100 − 50| / 100 = 0.5 is far above maxError, but the load stays below Hi 200:
			// rate 0, closed.
			name: "a point far off with the load inside the interval keeps it closed", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 50, 200, 100}, {15, 50, 200, 100}},
			want: []want{{false, false}, {false, false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGate(tc.maxError, tc.window, 0)
			var got []want
			for _, o := range tc.obs {
				open, changed := g.Observe(Prediction{Point: o.point, Lo: o.point, Hi: o.hi}, o.actual, t0.Add(time.Duration(o.sec)*time.Second))
				got = append(got, want{open, changed})
			}
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(want{})); d != "" {
				t.Errorf("(open, changed) per observation (-want +got):\n%s", d)
			}
		})
	}
}

// With slack 0.1, a miss is a load above Hi × 1.1 = 110 (up to the product's last bit,
// which the cases stay clear of): 109.9 is not a miss, 110.5 is.
func TestGateSlack(t *testing.T) {
	for _, tc := range []struct {
		actual float64
		under  float64 // the rate after one observation
	}{
		{109.9, 0},
		{110.5, 1},
		{100, 0},
	} {
		g := NewGate(0.5, time.Hour, 0.1)
		g.Observe(Prediction{Point: 95, Lo: 90, Hi: 100}, tc.actual, t0)
		if rate, ok := g.UnderRate(); !ok || rate != tc.under {
			t.Errorf("load %v against Hi 100, slack 0.1: UnderRate() = %v, %v; want %v", tc.actual, rate, ok, tc.under)
		}
	}
	// A negative slack is 0: 100.5 above Hi 100 is a miss.
	g := NewGate(0.5, time.Hour, -1)
	g.Observe(Prediction{Point: 95, Lo: 90, Hi: 100}, 100.5, t0)
	if rate, _ := g.UnderRate(); rate != 1 {
		t.Errorf("slack -1: UnderRate() = %v, want 1 (slack taken as 0)", rate)
	}
}

func TestGateError(t *testing.T) {
	g := NewGate(0.5, time.Hour, 0)
	// errors 10 and 30 over loads 100 and 130: 40/230; one of two above its Hi (130 > 125).
	g.Observe(Prediction{Point: 110, Lo: 100, Hi: 120}, 100, t0)
	g.Observe(Prediction{Point: 100, Lo: 90, Hi: 125}, 130, t0.Add(time.Minute))
	mape, under, ok := g.Error()
	if !ok || mape != 40.0/230 || under != 0.5 {
		t.Fatalf("Error() = %v, %v, %v; want %v, 0.5, true", mape, under, ok, 40.0/230)
	}
	if rate, ok := g.UnderRate(); !ok || rate != 0.5 {
		t.Fatalf("UnderRate() = %v, %v; want 0.5, true", rate, ok)
	}
	if _, ok := NewGate(0.5, time.Hour, 0).UnderRate(); ok {
		t.Fatal("UnderRate() of an empty gate: ok")
	}
}
