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
			// 90 vs 100: 10/100 = 0.1, not above 0.1: closed; then 111 vs 100 with both in
			// the window: (10+11)/200 = 0.105 > 0.1: opens.
			name: "opens when the window's error rises above maxError", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 90, 95, 100}, {15, 111, 120, 100}},
			want: []want{{false, false}, {true, true}},
		},
		{
			// exactly at the threshold: 10/100 = 0.1 is not above 0.1.
			name: "an error equal to maxError keeps it closed", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 110, 120, 100}, {15, 90, 95, 100}},
			want: []want{{false, false}, {false, false}},
		},
		{
			// 50/100 = 0.5 opens; at 60 s the first is exactly one window old, so out;
			// the window (0, 60] holds 15 s..60 s: errors 0+0+0+0 over 400 → 0, closes.
			name: "closes when the bad observation leaves the window", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 150, 160, 100}, {15, 100, 110, 100}, {30, 100, 110, 100}, {45, 100, 110, 100}, {60, 100, 110, 100}},
			want: []want{{true, true}, {true, false}, {true, false}, {true, false}, {false, true}},
		},
		{
			// same, one second earlier: at 59 s the first (0 s) is still inside: 50/500 =
			// 0.1 is not above 0.1, so it closes already; at 44 s: 50/400 = 0.125 open.
			name: "an observation less than a window old still counts", maxError: 0.1, window: time.Minute,
			obs:  []obs{{0, 150, 160, 100}, {15, 100, 110, 100}, {30, 100, 110, 100}, {44, 100, 110, 100}, {59, 100, 110, 100}},
			want: []want{{true, true}, {true, false}, {true, false}, {true, false}, {false, true}},
		},
		{
			// zero load sums to zero: no verdict, the gate stays as it was (closed, then
			// open after the bad one).
			name: "zero load leaves the gate as it is", maxError: 0.1, window: 10 * time.Second,
			obs:  []obs{{0, 5, 6, 0}, {20, 50, 60, 100}, {40, 5, 6, 0}},
			want: []want{{false, false}, {true, true}, {true, false}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewGate(tc.maxError, tc.window)
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

func TestGateError(t *testing.T) {
	g := NewGate(0.5, time.Hour)
	// errors 10 and 30 over loads 100 and 130: 40/230; one of two above its Hi (130 > 125).
	g.Observe(Prediction{Point: 110, Lo: 100, Hi: 120}, 100, t0)
	g.Observe(Prediction{Point: 100, Lo: 90, Hi: 125}, 130, t0.Add(time.Minute))
	mape, under, ok := g.Error()
	if !ok || mape != 40.0/230 || under != 0.5 {
		t.Fatalf("Error() = %v, %v, %v; want %v, 0.5, true", mape, under, ok, 40.0/230)
	}
}
