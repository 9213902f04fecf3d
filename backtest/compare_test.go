package backtest

import (
	"encoding/json"
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/prescale/prescale/policy"
)

func TestBudgetMinutes(t *testing.T) {
	tests := []struct {
		budget  float64
		minutes int
		want    int
	}{
		{0.001, 20160, 20}, // 20.16 minutes allowed: 20 whole ones
		{0.001, 39692, 39}, // 39.692
		{0.005, 1000, 5},   // 5 exactly, whatever float64 makes of 0.005 x 1000
		{0.001, 999, 0},    // 0.999: not one minute
		{0.001, 1000, 1},   // 1 exactly
		{0.0005, 60, 0},    // 0.03
		{0.5, 61, 30},      // 30.5
	}
	for _, tc := range tests {
		if got := BudgetMinutes(tc.budget, tc.minutes); got != tc.want {
			t.Errorf("BudgetMinutes(%v, %d) = %d, want %d", tc.budget, tc.minutes, got, tc.want)
		}
	}
}

// settings4 are four made-up HPA outcomes; B and D cost the same.
var settings4 = []HPASetting{
	{GPUTarget: 30, ScaleDownWindowSeconds: 600, Outcome: Outcome{GPUHours: 8000, SLOViolationMinutes: 10}},  // A
	{GPUTarget: 45, ScaleDownWindowSeconds: 600, Outcome: Outcome{GPUHours: 6800, SLOViolationMinutes: 20}},  // B
	{GPUTarget: 70, ScaleDownWindowSeconds: 300, Outcome: Outcome{GPUHours: 4500, SLOViolationMinutes: 100}}, // C
	{GPUTarget: 50, ScaleDownWindowSeconds: 0, Outcome: Outcome{GPUHours: 6800, SLOViolationMinutes: 15}},    // D
}

func TestCheapest(t *testing.T) {
	tests := []struct {
		name   string
		budget float64
		want   int
		ok     bool
	}{
		{name: "a budget under the fewest minutes: none holds it", budget: 9.99},
		{name: "the fewest minutes exactly: only A", budget: 10, want: 0, ok: true},
		{name: "one minute short of D's 15: still A", budget: 14, want: 0, ok: true},
		{name: "D's 15 minutes: D, cheaper than A", budget: 15, want: 3, ok: true},
		{name: "B and D both hold 20 at 6800 GPU-hours: D, the fewer minutes", budget: 20, want: 3, ok: true},
		{name: "one minute short of C's 100: D", budget: 99, want: 3, ok: true},
		{name: "C's 100 minutes: C, the cheapest of all", budget: 100, want: 2, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Cheapest(settings4, tc.budget)
			if ok != tc.ok || ok && got != tc.want {
				t.Errorf("Cheapest(%v) = %d, %v; want %d, %v", tc.budget, got, ok, tc.want, tc.ok)
			}
		})
	}
	if got := Fewest(settings4); got != 0 {
		t.Errorf("Fewest = %d, want 0 (A, 10 minutes)", got)
	}
}

func TestCriterion(t *testing.T) {
	// The HPA settings of servegen (14 days, 20160 minutes) as measured: the fewest
	// violation minutes are 40, at 8706.3 GPU-hours; 6846.8 GPU-hours hold 48. The oracle
	// costs 3846.8: the gap to capture from the 45 % setting is 6846.8 - 3846.8 = 3000.
	hpa := []HPASetting{
		{GPUTarget: 35, ScaleDownWindowSeconds: 600, Outcome: Outcome{GPUHours: 8706.3, SLOViolationMinutes: 40}},
		{GPUTarget: 45, ScaleDownWindowSeconds: 600, Outcome: Outcome{GPUHours: 6846.8, SLOViolationMinutes: 48}},
		{GPUTarget: 70, ScaleDownWindowSeconds: 300, Outcome: Outcome{GPUHours: 4479.1, SLOViolationMinutes: 101}},
	}
	oracle := Outcome{GPUHours: 3846.8}
	tests := []struct {
		name    string
		budget  float64
		conf    Outcome
		b       float64
		cheap   int // index in hpa
		ratio   float64
		capture *float64
		holds   bool
		met     bool
		minutes int
	}{
		// B = max(0.001 x 20160 = 20.16, ceil(1.2 x 40) = 48) = 48; 6846.8 holds it;
		// 5346.8 is 1500 over the oracle, half of the 3000 gap: captures 50 %, the boundary.
		{name: "holds 48 minutes capturing half the gap exactly: met", budget: 0.001, minutes: 20160,
			conf: Outcome{GPUHours: 5346.8, SLOViolationMinutes: 46}, b: 48, cheap: 1, ratio: 5346.8 / 6846.8, capture: ptr(0.5), holds: true, met: true},
		// 5376.8 is 1530 over the oracle: 1 - 1530 / 3000 = 0.49 < 0.5, though cheaper than the HPA.
		{name: "cheaper than the HPA but 49 % of the gap: not met", budget: 0.001, minutes: 20160,
			conf: Outcome{GPUHours: 5376.8, SLOViolationMinutes: 46}, b: 48, cheap: 1, ratio: 5376.8 / 6846.8, capture: ptr(0.49), holds: true},
		// 7000 > 6846.8: ratio 1.022 > 1, and the capture is negative: 1 - 3153.2 / 3000.
		{name: "more than the HPA: not met", budget: 0.001, minutes: 20160,
			conf: Outcome{GPUHours: 7000, SLOViolationMinutes: 30}, b: 48, cheap: 1, ratio: 7000 / 6846.8, capture: ptr(1 - 3153.2/3000.0), holds: true},
		// 49 > 48: cheap, but over B. 4000 is 153.2 over the oracle: 1 - 153.2 / 3000.
		{name: "one minute over B: not met", budget: 0.001, minutes: 20160,
			conf: Outcome{GPUHours: 4000, SLOViolationMinutes: 49}, b: 48, cheap: 1, ratio: 4000 / 6846.8, capture: ptr(1 - 153.2/3000.0)},
		// B = max(0.01 x 20160 = 201.6, 48) = 201.6, not floored: the 70% setting holds it;
		// 3500 / 4479.1 = 0.781, and it costs less than the oracle: 1 - (3500 - 3846.8) / 632.3.
		{name: "a budget above 1.2 x the fewest: B is budget x minutes, unfloored", budget: 0.01, minutes: 20160,
			conf: Outcome{GPUHours: 3500, SLOViolationMinutes: 201}, b: 201.6, cheap: 2, ratio: 3500 / 4479.1,
			capture: ptr(1 + 346.8/632.3), holds: true, met: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := criterion(tc.budget, tc.minutes, hpa, tc.conf, oracle)
			want := Criterion{B: tc.b, Exact: tc.budget * float64(tc.minutes), FewestHPA: 40, Cheapest: &hpa[tc.cheap],
				Ratio: &tc.ratio, Capture: tc.capture, Holds: tc.holds, Met: tc.met}
			if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
				t.Errorf("criterion (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCriterionWithoutAGap(t *testing.T) {
	// The cheapest HPA setting holding B costs what the oracle does: there is no gap to
	// capture (nil, not NaN or a division by zero), and the policy must only not cost more.
	hpa := []HPASetting{{GPUTarget: 70, Outcome: Outcome{GPUHours: 100, SLOViolationMinutes: 10}}}
	for _, tc := range []struct {
		name string
		conf Outcome
		met  bool
	}{
		{name: "at the HPA's cost: met", conf: Outcome{GPUHours: 100, SLOViolationMinutes: 10}, met: true},
		{name: "above it: not met", conf: Outcome{GPUHours: 101, SLOViolationMinutes: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := criterion(0.01, 60, hpa, tc.conf, Outcome{GPUHours: 100})
			if got.Capture != nil || got.Met != tc.met {
				t.Errorf("criterion %+v: want no capture share and met %v", got, tc.met)
			}
		})
	}
}

func TestCriterionWithoutGPUs(t *testing.T) {
	// An HPA setting that held no GPU (it stayed at zero) and holds B: the ratio of GPU-hours
	// to it is undefined, null in JSON rather than NaN, which encoding/json refuses. The
	// criterion is met only by a policy that held none either (at most 1 x 0).
	hpa := []HPASetting{{GPUTarget: 30, Outcome: Outcome{SLOViolationMinutes: 10}}}
	for _, tc := range []struct {
		name string
		conf Outcome
		met  bool
	}{
		{name: "no GPU either: met", conf: Outcome{SLOViolationMinutes: 10}, met: true},
		{name: "some GPUs: not met", conf: Outcome{GPUHours: 0.5, SLOViolationMinutes: 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// B = max(0.01 x 60 = 0.6, ceil(1.2 x 10) = 12) = 12.
			got := criterion(0.01, 60, hpa, tc.conf, Outcome{})
			want := Criterion{B: 12, Exact: 0.6, FewestHPA: 10, Cheapest: &hpa[0], Holds: true, Met: tc.met}
			if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("criterion (-want +got):\n%s", diff)
			}
			if _, err := json.Marshal(got); err != nil {
				t.Errorf("json: %v", err)
			}
		})
	}
}

func TestParseBudget(t *testing.T) {
	tests := []struct {
		in   string
		want float64
		err  string
	}{
		{in: "0.1%", want: 0.001},
		{in: " 2 % ", want: 0.02},
		{in: "0.001", want: 0.001},
		{in: "1e-3", want: 0.001},
		{in: "50%", want: 0.5},
		{in: "0.5", want: 0.5},
		{in: "60%", err: `must be within (0, 50%], got "60%"`},
		{in: "0", err: `must be within (0, 50%], got "0"`},
		{in: "-0.1%", err: `must be within (0, 50%], got "-0.1%"`},
		{in: "abc", err: `want a fraction (0.001) or a percentage ("0.1%"), got "abc"`},
		{in: "%", err: `want a fraction (0.001) or a percentage ("0.1%"), got "%"`},
		{in: "NaN", err: `want a fraction (0.001) or a percentage ("0.1%"), got "NaN"`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBudget(tc.in)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("error = %v, want %s", err, tc.err)
				}
				return
			}
			if err != nil || math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("ParseBudget(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestRunEachDeterministic: the parallel runs give what running each policy alone, one
// after another, gives, in the same order, also for policies with a forecast and an
// objective (their engines share nothing).
func TestRunEachDeterministic(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	tr := syntheticTrace(2 * 1440)
	par := DefaultParams()
	hpa, settings, err := HPAGrid(par)
	if err != nil {
		t.Fatal(err)
	}
	if len(hpa) != 75 || settings[0].String() != "gpuTarget=30 scaleDownWindow=0" || settings[74].String() != "gpuTarget=85 scaleDownWindow=600" {
		t.Fatalf("grid: %d settings, from %v to %v", len(hpa), settings[0], settings[len(settings)-1])
	}
	slo := examplePolicyFile(t, "slo-policy.yaml")
	ref := func(p *policy.Policy) Contender { return Contender{Name: p.Name, Policy: p, Reference: true} }
	own := func(p *policy.Policy) Contender { return Contender{Name: p.Name, Policy: p} }
	ps := []Contender{ref(hpa[0]), ref(hpa[37]), ref(hpa[74]), own(WithBudget(slo, 0.0005)), own(slo), own(WithBudget(slo, 0.02)), ref(hpa[12])}
	var serial []Outcome
	for _, p := range ps {
		res, err := Run(tr, []Contender{p}, Options{Params: par})
		if err != nil {
			t.Fatal(err)
		}
		serial = append(serial, outcome(res.Policies[0].Score))
	}
	var last, total int
	got, err := RunEach(tr, ps, par, func(done, n int) {
		if done < last || n != len(ps)*len(tr)*4 {
			t.Errorf("progress %d of %d after %d", done, n, last)
		}
		last, total = done, n
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(serial, got); diff != "" {
		t.Errorf("parallel (-serial +parallel):\n%s", diff)
	}
	if last != total {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	if *slo.Objective.Budget != 0.001 {
		t.Errorf("WithBudget changed the policy: budget %v", *slo.Objective.Budget)
	}
	// The settings change the policy: at the same window, a 30% target costs more than 85%.
	if !(serial[0].GPUHours > serial[2].GPUHours) {
		t.Errorf("gpuTarget=30 costs %.1f GPU-hours, gpuTarget=85 %.1f", serial[0].GPUHours, serial[2].GPUHours)
	}
}

func TestCompare(t *testing.T) {
	tr := syntheticTrace(720)
	par := DefaultParams()
	slo := examplePolicyFile(t, "slo-policy.yaml")
	cs, err := Contenders(slo, par)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(tr, cs, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compare(tr, slo, res, CompareOptions{Params: par, Budget: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	// 0.01 x 720 = 7.2: 7 minutes.
	if c.BudgetMinutes != 7 || c.Minutes != 720 || c.SLOSeconds != 2 || len(c.HPA) != 75 || len(c.Front) != len(FrontBudgets) {
		t.Fatalf("comparison: budget %d of %d minutes, slo %v, %d settings, front of %d", c.BudgetMinutes, c.Minutes, c.SLOSeconds, len(c.HPA), len(c.Front))
	}
	conf, _ := res.Policy(slo.Name)
	if c.Configured.Outcome != outcome(conf.Score) || c.Configured.Holds != (conf.SLOViolationMinutes <= 7) {
		t.Errorf("configured %+v, backtest %+v", c.Configured, conf.Score)
	}
	if c.Front[1].Budget != 0.001 || c.Front[1].Outcome == (Outcome{}) {
		t.Errorf("front: %+v", c.Front)
	}
	// The front's point at the policy's own budget (0.1%) is not run again: the policy run
	// alone at that budget, as the other points are, scores as the backtest's run does.
	if n := CompareRuns(slo); n != 75+len(FrontBudgets)-1 {
		t.Errorf("CompareRuns = %d, want the grid and the front less its point at the policy's budget", n)
	}
	alone, err := RunEach(tr, []Contender{{Name: slo.Name, Policy: WithBudget(slo, 0.001)}}, par, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Front[1].Outcome != alone[0] {
		t.Errorf("front at the policy's budget %+v, the policy run alone at it %+v", c.Front[1].Outcome, alone[0])
	}
	// CompareWith runs the backtest itself, beside its own runs: the same comparison.
	res2, c2, err := CompareWith(tr, slo, func() (Result, error) { return Run(tr, cs, Options{Params: par}) }, CompareOptions{Params: par, Budget: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, c2); diff != "" || len(res2.Policies) != len(res.Policies) {
		t.Errorf("CompareWith differs from Compare (-Compare +CompareWith):\n%s", diff)
	}
	// Brute force: the cheapest setting within 7 minutes.
	var want *HPASetting
	for i, s := range c.HPA {
		if s.SLOViolationMinutes <= 7 && (want == nil || s.GPUHours < want.GPUHours) {
			want = &c.HPA[i]
		}
	}
	if diff := cmp.Diff(want, c.Cheapest); diff != "" {
		t.Errorf("cheapest (-brute force +got):\n%s", diff)
	}
	for k := 1; k < len(c.HPAFront); k++ {
		a, b := c.HPA[c.HPAFront[k-1]], c.HPA[c.HPAFront[k]]
		if !(a.GPUHours <= b.GPUHours && a.SLOViolationMinutes > b.SLOViolationMinutes) {
			t.Errorf("front %v then %v: not a front by GPU-hours", a, b)
		}
	}
	// A policy without an objective gets no front.
	base := examplePolicy(t)
	cs, _ = Contenders(base, par)
	res, err = Run(tr, cs, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := Compare(tr, base, res, CompareOptions{Params: par, Budget: 0.01}); err != nil || len(c.Front) != 0 {
		t.Errorf("no objective: front %v, %v", c.Front, err)
	}
}

func TestWriteComparison(t *testing.T) {
	// Made-up: budget 0.1% of 20160 minutes = 20; B and D hold it, D is cheaper (fewer
	// minutes at the same 6800 GPU-hours); the policy holds it at 5440 GPU-hours: 1 -
	// 5440 / 6800 = 20% fewer. B = max(20.16, ceil(1.2 x 10) = 12) = 20.16; the cheapest
	// holding it is D again: 5440 / 6800 = 0.8, but with the oracle at 4000 it captures
	// 1 - 1440 / 2800 = 48.57 % of the gap: not met.
	c := Comparison{Budget: 0.001, SLOSeconds: 2, Minutes: 20160, BudgetMinutes: 20, HPA: settings4, HPAFront: []int{2, 3, 0},
		Cheapest: &settings4[3], Fewest: settings4[0], Configured: Configured{Name: "prescale", Outcome: Outcome{GPUHours: 5440, SLOViolationMinutes: 18}, Holds: true},
		Saving: ptr(0.2), Oracle: Outcome{GPUHours: 4000}, Front: []FrontPoint{{Budget: 0.0005, Outcome: Outcome{GPUHours: 5600, SLOViolationMinutes: 12}}}}
	c.Criterion = criterion(c.Budget, c.Minutes, c.HPA, c.Configured.Outcome, c.Oracle)
	var b strings.Builder
	if err := WriteComparison(&b, c); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Objective: at most 0.1% of minutes over the 2s SLO: budget 0.1% of 20160 minutes = 20 minutes\n",
		"cheapest HPA setting holding it (of 4):  gpuTarget=50 scaleDownWindow=0    6800.0 GPU-hours     15 SLO-viol min",
		"prescale (policy as written):            holds it                          5440.0 GPU-hours     18 SLO-viol min",
		"saving: 20.0% fewer GPU-hours than the cheapest HPA setting holding it\n",
		"0.05%     5600.0            12",
		"Benchmark criterion: B = max(0.1% x 20160 = 20.16, ceil(1.2 x 10, the fewest of any HPA setting) = 12) = 20.16 minutes; " +
			"cheapest HPA setting holding B: gpuTarget=50 scaleDownWindow=0 6800.0 GPU-hours 15 min; prescale 5440.0 GPU-hours 18 min: " +
			"holds B, 0.800 x its GPU-hours (<= 1), captures 48.57% of its gap to the oracle (>= 50%): NOT MET\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestObjectiveWaitingIsTheModelsQueue: an objective with objective.waiting binds it to the
// model's queue, whatever the query; the model always has a latency, so the minutes, the
// cost and the decisions are those of the same policy without it.
func TestObjectiveWaitingIsTheModelsQueue(t *testing.T) {
	tr := syntheticTrace(1440)
	par := DefaultParams()
	slo := examplePolicyFile(t, "slo-policy.yaml")
	waits := *slo
	o := *slo.Objective
	o.Waiting = `sum(vllm:num_requests_waiting{namespace="inference"})`
	waits.Objective = &o
	var got []Outcome
	for _, p := range []*policy.Policy{slo, &waits} {
		res, err := Run(tr, []Contender{{Name: p.Name, Policy: p}}, Options{Params: par})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, outcome(res.Policies[0].Score))
	}
	if diff := cmp.Diff(got[0], got[1]); diff != "" {
		t.Errorf("with objective.waiting (-without +with):\n%s", diff)
	}
}
