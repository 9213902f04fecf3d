package preflight

import (
	"strings"
	"testing"
	"time"
)

func TestScaleMismatch(t *testing.T) {
	tests := []struct {
		name   string
		values []float64
		target float64
		// want is a substring of the message; "" means no mismatch.
		want string
	}{
		// Rule (a): a ratio against a larger scale.
		{name: "a 0..1 ratio against a target of 70", values: []float64{0.35, 0.4}, target: 70,
			// 70 / 0.4 = 175
			want: "all 2 values (largest 0.4) are within 0..1 against averageValue 70, 175 times the largest"},
		{name: "the same service as a percentage against 70", values: []float64{35, 40}, target: 70},
		// 10 × 0.5 = 5: at the bound, and just below it.
		{name: "a target exactly ten times the largest value", values: []float64{0.1, 0.5}, target: 5, want: "10 times the largest"},
		{name: "a target just under ten times the largest value", values: []float64{0.1, 0.5}, target: 4.99},
		{name: "a largest value of exactly 1 is still a ratio", values: []float64{1, 0.5}, target: 10, want: "(largest 1) are"},
		{name: "a largest value just above 1 is not a ratio", values: []float64{1.01, 0.5}, target: 20},
		{name: "counts of 0 and 1 are not a ratio", values: []float64{0, 1, 1}, target: 70},
		{name: "all zero says nothing", values: []float64{0, 0}, target: 70},
		// target > 1: at 1, and just above.
		{name: "a target of 1 is a ratio too", values: []float64{0.05}, target: 1},
		{name: "a target just above 1", values: []float64{0.05, 0.1}, target: 1.01, want: "within 0..1"},
		{name: "a negative value is another problem", values: []float64{-0.5, 0.5}, target: 70},

		// Rule (b): a percentage against a ratio.
		{name: "a percentage against a target of 0.7", values: []float64{70}, target: 0.7,
			want: "the value 70 is within 0..100 against averageValue 0.7, below 1"},
		{name: "the same service as a ratio against 0.7", values: []float64{0.7}, target: 0.7},
		// 10 × 0.7 = 7: at the bound, and just below it.
		{name: "a largest value exactly ten times the target", values: []float64{7}, target: 0.7, want: "the value 7 is"},
		{name: "a largest value just under ten times the target", values: []float64{6.99}, target: 0.7},
		// At most 100: at it, and just above.
		{name: "a largest value of 100", values: []float64{3, 100}, target: 0.7, want: "(largest 100) are"},
		{name: "a largest value above 100 is not a percentage", values: []float64{3, 100.5}, target: 0.7},
		// target < 1: at 1.
		{name: "a target of 1 is not a ratio target", values: []float64{70}, target: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := scaleMismatch(tc.values, tc.target, "averageValue")
			if (got != "") != (tc.want != "") || !strings.Contains(got, tc.want) {
				t.Errorf("scaleMismatch(%v, %g) = %q, want one containing %q", tc.values, tc.target, got, tc.want)
			}
		})
	}
}

func TestLatencyScale(t *testing.T) {
	tests := []struct {
		name    string
		seconds float64
		slo     time.Duration
		want    string
	}{
		// 1000 × 2 s = 2000 s: at the bound, and just below it.
		{name: "milliseconds read as seconds", seconds: 2000, slo: 2 * time.Second, want: "latency 2000 s against the slo 2s, 1000 times over"},
		{name: "just under a thousand times the SLO", seconds: 1999, slo: 2 * time.Second},
		{name: "an overload of ten times the SLO is a latency", seconds: 20, slo: 2 * time.Second},
		// 1000 × 0.25 s = 250 s.
		{name: "a sub-second SLO", seconds: 250, slo: 250 * time.Millisecond, want: "slo 250ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := latencyScale(tc.seconds, tc.slo)
			if (got != "") != (tc.want != "") || !strings.Contains(got, tc.want) {
				t.Errorf("latencyScale(%g, %s) = %q, want one containing %q", tc.seconds, tc.slo, got, tc.want)
			}
		})
	}
}
