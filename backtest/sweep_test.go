package backtest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseAxis(t *testing.T) {
	tests := []struct {
		in   string
		want Axis
		err  string
	}{
		{in: "scaleDownWindow=0,60,300", want: Axis{Key: "scaleDownWindow", Values: []string{"0", "60", "300"}}},
		{in: "startup= 60s, 3m", want: Axis{Key: "startup", Values: []string{"60s", "3m"}}},
		{in: "scaleDownWindow", err: `sweep "scaleDownWindow": want key=v1,v2 (one or more values)`},
		{in: "window=1", err: `sweep "window=1": unknown key "window" (known: gpuTarget, kvTarget, peakReplicas, quantile, queueTarget, scaleDownWindow, scaleUpWindow, slo, startup, targetUtilization)`},
		{in: "slo=1,,2", err: `sweep "slo=1,,2": empty value`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseAxis(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("error = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("axis (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGrid(t *testing.T) {
	p := examplePolicy(t)
	axes := []Axis{{Key: "scaleDownWindow", Values: []string{"60", "600"}}, {Key: "queueTarget", Values: []string{"2", "10"}},
		{Key: "startup", Values: []string{"60"}}}
	points, err := Grid(axes, DefaultParams(), p)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Settings    string
		Window      int32
		QueueTarget string
		Startup     time.Duration
	}
	var got []summary
	for _, pt := range points {
		got = append(got, summary{strings.Join(pt.Settings, " "), *pt.Policy.Behavior.ScaleDown.StabilizationWindowSeconds,
			pt.Policy.Metrics[1].Target.AverageValue.String(), pt.Params.Startup})
	}
	// 2 x 2 x 1 points, the last axis fastest.
	want := []summary{
		{"scaleDownWindow=60 queueTarget=2 startup=60", 60, "2", time.Minute},
		{"scaleDownWindow=60 queueTarget=10 startup=60", 60, "10", time.Minute},
		{"scaleDownWindow=600 queueTarget=2 startup=60", 600, "2", time.Minute},
		{"scaleDownWindow=600 queueTarget=10 startup=60", 600, "10", time.Minute},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("grid (-want +got):\n%s", diff)
	}
	// The policy read from the file is left as it was.
	if w := *p.Behavior.ScaleDown.StabilizationWindowSeconds; w != 60 || p.Metrics[1].Target.AverageValue.String() != "5" {
		t.Errorf("the configured policy changed: window %d, queue target %s", w, p.Metrics[1].Target.AverageValue)
	}
}

func TestGridQuantile(t *testing.T) {
	p := examplePolicy(t)
	points, err := Grid([]Axis{{Key: "quantile", Values: []string{"0.8", "0.95"}}}, DefaultParams(), p)
	if err != nil {
		t.Fatal(err)
	}
	var got []float64
	for _, pt := range points {
		got = append(got, pt.Policy.Forecast.QuantileOrDefault())
	}
	if diff := cmp.Diff([]float64{0.8, 0.95}, got); diff != "" {
		t.Errorf("quantiles (-want +got):\n%s", diff)
	}
	if p.Forecast.Quantile != nil {
		t.Errorf("the configured policy changed: quantile %v", *p.Forecast.Quantile)
	}

	// Out of range: the policy's own validation names the field; no forecast: the key
	// has nothing to set.
	_, err = Grid([]Axis{{Key: "quantile", Values: []string{"1.5", "x"}}}, DefaultParams(), p)
	want := `sweep quantile=x: want a number: strconv.ParseFloat: parsing "x": invalid syntax
sweep quantile=1.5: policies[0].forecast.quantile: must be within [0.5, 0.999], got 1.5`
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
	p.Forecast = nil
	_, err = Grid([]Axis{{Key: "quantile", Values: []string{"0.9"}}}, DefaultParams(), p)
	if want := "sweep quantile=0.9: policy prescale has no forecast"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestGridErrors(t *testing.T) {
	axes := []Axis{{Key: "scaleDownWindow", Values: []string{"x", "4000"}}, {Key: "peakReplicas", Values: []string{"0"}}}
	_, err := Grid(axes, DefaultParams(), examplePolicy(t))
	want := `sweep scaleDownWindow=x: want whole seconds: strconv.ParseInt: parsing "x": invalid syntax
sweep scaleDownWindow=4000 peakReplicas=0: peakReplicas: must be 1..100000, got 0
sweep scaleDownWindow=4000 peakReplicas=0: policies[0].behavior.scaleDown.stabilizationWindowSeconds: must be 0..3600, got 4000`
	if err == nil || err.Error() != want {
		t.Errorf("error =\n%v\nwant\n%s", err, want)
	}
}

func TestGridWithoutBehavior(t *testing.T) {
	// A policy without behavior scales on the HPA's behavior-less path; a window would give
	// it a behavior, with the HPA's default scale-up rules: the point would differ from the
	// policy in more than its window. Refused, saying how to sweep it. Other keys are swept.
	p := examplePolicy(t)
	p.Behavior = nil
	for _, key := range []string{"scaleDownWindow", "scaleUpWindow"} {
		_, err := Grid([]Axis{{Key: key, Values: []string{"60", "300"}}}, DefaultParams(), p)
		want := "sweep " + key + "=60: policy prescale has no behavior, whose behavior-less scaling (a fixed 300 s scale-down window, scale-ups of at most max(2 x current, 4)) has no window to sweep: give it one (behavior: {} holds the HPA's default rules)"
		if err == nil || !strings.HasPrefix(err.Error(), want+"\n") {
			t.Errorf("%s: error = %v, want %s...", key, err, want)
		}
	}
	points, err := Grid([]Axis{{Key: "queueTarget", Values: []string{"2", "5"}}}, DefaultParams(), p)
	if err != nil || len(points) != 2 || points[0].Policy.Behavior != nil {
		t.Errorf("queueTarget on a policy without behavior: %d points, %v", len(points), err)
	}
}

func TestGridSize(t *testing.T) {
	ax := func(n int) Axis { return Axis{Key: "slo", Values: make([]string, n)} }
	for _, tc := range []struct {
		name    string
		axes    []Axis
		n       int
		product string
	}{
		{name: "no axis: the one point", n: 1},
		{name: "10 x 100 is the most", axes: []Axis{ax(10), ax(100)}, n: 1000, product: "10 x 100"},
		{name: "7 x 143 = 1001 is over", axes: []Axis{ax(7), ax(143)}, n: 1001, product: "7 x 143"},
		// 2^16 x 2^16 x 2^16 x 2^16 = 2^64 wraps an int64 around to 0: the count stops past
		// the bound instead.
		{name: "a product that wraps around", axes: []Axis{ax(1 << 16), ax(1 << 16), ax(1 << 16), ax(1 << 16)}, n: 1001, product: "65536 x 65536 x 65536 x 65536"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, product := GridSize(tc.axes)
			if n != tc.n || product != tc.product {
				t.Errorf("GridSize = %d, %q; want %d, %q", n, product, tc.n, tc.product)
			}
		})
	}
	_, err := Grid([]Axis{ax(7), ax(143)}, DefaultParams(), examplePolicy(t))
	if want := "sweep: a grid of 7 x 143 points is more than 1000"; err == nil || err.Error() != want {
		t.Errorf("Grid of 1001 points: %v, want %s", err, want)
	}
}

func TestPareto(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		want []int
	}{
		{"one point", []float64{1}, []float64{1}, []int{0}},
		// (3,1) and (1,3) trade off; (2,2) too; (3,3) is dominated by (2,2); sorted by x.
		{"trade-offs and a dominated point", []float64{3, 1, 2, 3}, []float64{1, 3, 2, 3}, []int{1, 2, 0}},
		// Equal points dominate neither; (2,1) dominates (2,2): equal x, lower y.
		{"ties", []float64{1, 1, 2, 2}, []float64{5, 5, 1, 2}, []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Pareto(tc.x, tc.y)); diff != "" {
				t.Errorf("front (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSweepOnTrace(t *testing.T) {
	// A longer scale-down window keeps pods longer: more GPU-hours, no more violations.
	tr := Trace{600, 600, 2400, 2400, 600, 600, 600, 600, 600, 600, 2400, 2400, 600, 600, 600, 600}
	points, err := Grid([]Axis{{Key: "scaleDownWindow", Values: []string{"0", "600"}}}, smallParams(), examplePolicy(t))
	if err != nil {
		t.Fatal(err)
	}
	var results []SweepResult
	for _, pt := range points {
		cs, err := Contenders(pt.Policy, pt.Params)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(tr, cs, Options{Params: pt.Params})
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, SweepResult{Settings: pt.Settings, Result: res})
	}
	short, _ := results[0].Result.Policy("prescale")
	long, _ := results[1].Result.Policy("prescale")
	if !(long.GPUHours > short.GPUHours) || long.SLOViolationMinutes > short.SLOViolationMinutes {
		t.Errorf("window 600: %.3f GPU-hours, %d violation minutes; window 0: %.3f, %d", long.GPUHours, long.SLOViolationMinutes, short.GPUHours, short.SLOViolationMinutes)
	}
	var b strings.Builder
	if err := WriteSweep(&b, "prescale", results); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Pareto front") || !strings.Contains(b.String(), "scaleDownWindow=600") {
		t.Errorf("sweep output:\n%s", b.String())
	}
	t.Log("\n" + b.String())
}
