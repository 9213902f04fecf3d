package demo

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/sim"
)

func TestLine(t *testing.T) {
	cases := []struct {
		name string
		r    Row
		want []string
	}{
		{
			name: "both services side by side, with prescale's plan",
			r: Row{Time: 8*time.Minute + 15*time.Second, Forecast: 10, Planned: true,
				HPA:      sim.Report{Lambda: 75.9, Desired: 8, Ready: 4, Tick: sim.Tick{Queue: 796, Delay: 16.1}},
				Prescale: sim.Report{Lambda: 75.9, Desired: 10, Ready: 10}},
			want: []string{"08:15", "75.9", "796", "16.1s!", "   10    10    10"},
		},
		{
			name: "no plan yet is a dash, never a zero",
			r:    Row{HPA: sim.Report{Desired: 4, Ready: 4}, Prescale: sim.Report{Desired: 4, Ready: 4}},
			want: []string{"00:00", "     -"},
		},
		{
			name: "no Ready pod with a queue shows an infinite delay over the SLO",
			r:    Row{HPA: sim.Report{Tick: sim.Tick{Queue: 15, Delay: math.Inf(1)}}},
			want: []string{"inf!"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := line(c.r)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("line = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	cases := []struct {
		name    string
		h, p    sim.Summary
		prefix  string
		numbers []string
	}{
		{"fewer minutes over the SLO at less cost wins",
			sim.Summary{SLOViolationMinutes: 5, ReplicaMinutes: 400}, sim.Summary{SLOViolationMinutes: 0, ReplicaMinutes: 300},
			"prescale won: 5 fewer minutes", []string{"(0 vs 5)", "25.0% fewer replica-minutes (300.0 vs 400.0)"}},
		{"fewer minutes over the SLO at the same cost wins",
			sim.Summary{SLOViolationMinutes: 2, ReplicaMinutes: 100}, sim.Summary{SLOViolationMinutes: 1, ReplicaMinutes: 100},
			"prescale won: 1 fewer", []string{"0.0% fewer"}},
		{"fewer minutes over the SLO at more cost is a trade",
			sim.Summary{SLOViolationMinutes: 5, ReplicaMinutes: 400}, sim.Summary{SLOViolationMinutes: 1, ReplicaMinutes: 440},
			"a trade", []string{"10.0% more replica-minutes"}},
		{"the same minutes for less is a win on cost",
			sim.Summary{SLOViolationMinutes: 0, ReplicaMinutes: 200}, sim.Summary{SLOViolationMinutes: 0, ReplicaMinutes: 150},
			"prescale won on cost", nil},
		{"the same minutes for more is the HPA's win on cost",
			sim.Summary{SLOViolationMinutes: 0, ReplicaMinutes: 297.5}, sim.Summary{SLOViolationMinutes: 0, ReplicaMinutes: 350.2},
			"the HPA won on cost: as many minutes over the SLO (0)", []string{"17.7% more replica-minutes"}},
		{"equal is a tie",
			sim.Summary{SLOViolationMinutes: 1, ReplicaMinutes: 200}, sim.Summary{SLOViolationMinutes: 1, ReplicaMinutes: 200},
			"a tie", nil},
		{"more minutes over the SLO loses",
			sim.Summary{SLOViolationMinutes: 1, ReplicaMinutes: 200}, sim.Summary{SLOViolationMinutes: 3, ReplicaMinutes: 150},
			"the HPA won", []string{"3 minutes over the SLO against the HPA's 1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := verdict(c.h, c.p)
			if !strings.HasPrefix(got, c.prefix) {
				t.Errorf("verdict = %q, want it to start with %q", got, c.prefix)
			}
			for _, n := range c.numbers {
				if !strings.Contains(got, n) {
					t.Errorf("verdict = %q, want it to contain %q", got, n)
				}
			}
		})
	}
}

func TestSummaryPrintsTheMeasuredValues(t *testing.T) {
	res := Result{Minutes: 29,
		HPA:      sim.Summary{ReplicaMinutes: 408.5, SLOViolationMinutes: 5, PeakDelay: 132.6, ScaleEvents: 9, PeakQueue: 6547},
		Prescale: sim.Summary{ReplicaMinutes: 276.5, SLOViolationMinutes: 0, PeakDelay: math.Inf(1), ScaleEvents: 3}}
	text := strings.Join(summary(res), "\n")
	for _, w := range []string{"29 model minutes", "408.5", "276.5", "-32.3%", "132.6s", "inf (no Ready pod)", "6547", "prescale won: 5 fewer"} {
		if !strings.Contains(text, w) {
			t.Errorf("summary lacks %q:\n%s", w, text)
		}
	}
}

func TestLoadSurgesEveryDayAtTheSameMinute(t *testing.T) {
	l := Load(42, 3)
	for d := range 4 {
		before, during, after := l.RequestsPerMinute(d*1440+7), l.RequestsPerMinute(d*1440+8), l.RequestsPerMinute(d*1440+16)
		if during < 2*before || during < 2*after {
			t.Errorf("day %d: load at minutes 7, 8, 16 = %.0f, %.0f, %.0f; want a surge of about 2.5x at 8", d, before, during, after)
		}
	}
}

func TestScenarioFromATrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "trace.csv")
	var b strings.Builder
	b.WriteString("minute,requests\n")
	for m := range 100 {
		b.WriteString(strings.Join([]string{itoa(m), itoa(m * 10)}, ",") + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// 100 minutes, a 30-minute run: minutes 0..69 are history, 70..99 the run.
	sc, err := newScenario(Options{TracePath: path, Duration: 30 * time.Minute, HistoryDays: 3})
	if err != nil {
		t.Fatal(err)
	}
	if sc.history != 70 || sc.minutes != 30 || sc.peak() != 990 || sc.load.RequestsPerMinute(0) != 0 {
		t.Errorf("scenario = history %d, minutes %d, peak %v; want 70, 30, 990 from minute 0", sc.history, sc.minutes, sc.peak())
	}
	// No history days: the run alone, from the trace's minute 70.
	sc, err = newScenario(Options{TracePath: path, Duration: 30 * time.Minute, HistoryDays: 0})
	if err != nil {
		t.Fatal(err)
	}
	if sc.history != 0 || sc.minutes != 30 || sc.load.RequestsPerMinute(0) != 700 {
		t.Errorf("no history: history %d, minutes %d, first minute %v; want 0, 30, 700", sc.history, sc.minutes, sc.load.RequestsPerMinute(0))
	}
	// A trace shorter than the run is all run, no history.
	sc, err = newScenario(Options{TracePath: path, Duration: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if sc.history != 0 || sc.minutes != 100 {
		t.Errorf("short trace: history %d, minutes %d; want 0, 100", sc.history, sc.minutes)
	}
	if _, err := newScenario(Options{TracePath: filepath.Join(dir, "missing.csv"), Duration: time.Hour}); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("missing trace: err %v, want one naming the file", err)
	}
}

func TestOptionsNameTheFlag(t *testing.T) {
	o := Options{Compression: 0.5, Duration: time.Second, HistoryDays: 20, Tick: time.Millisecond, PeakReplicas: 40, Replicas: -1}.Defaults()
	err := o.validate()
	for _, w := range []string{"--compression", "0.5", "--duration", "--history-days", "20", "--tick", "--peak-replicas", "--replicas"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("validate = %v, want it to name %q", err, w)
		}
	}
	if err := (Options{}).Defaults().validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

func TestWritePlot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "demo.png")
	rows := []Row{
		{Time: 0, HPA: sim.Report{Lambda: 30, Ready: 4}, Prescale: sim.Report{Lambda: 30, Ready: 4}},
		{Time: time.Minute, Forecast: 10, Planned: true, HPA: sim.Report{Lambda: 80, Ready: 4, Tick: sim.Tick{Delay: math.Inf(1)}}, Prescale: sim.Report{Lambda: 80, Ready: 10}},
	}
	if err := writePlot(path, Result{Minutes: 2, Rows: rows}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 8 || string(data[1:4]) != "PNG" {
		t.Errorf("plot is not a PNG (%d bytes)", len(data))
	}
	if err := writePlot(path, Result{}); err == nil {
		t.Errorf("plot of no tick: no error")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The demo's policies are examples/servers/vllm.yaml for each service, on its time scale:
// they parse, the HPA's is in dry-run, and every duration is the example's divided by the
// compression (10x: 1m windows 6s, 15 s periods 2 s, the 300 s window 30 s, the 24h season
// 2h24m, the 2h gate window 12m, the 1h hold 6m, the 5-minute horizon 30s).
func TestPoliciesAreTheVLLMExampleOnTheDemosTimeScale(t *testing.T) {
	text, err := policies(10, 8*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f, err := policy.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, text)
	}
	if len(f.Policies) != 2 || f.Policies[0].Name != preService || f.Policies[1].Name != hpaService {
		t.Fatalf("policies %+v, want %s and %s", f.Policies, preService, hpaService)
	}
	if f.Policies[0].DryRun != nil || f.Policies[1].DryRun == nil || !*f.Policies[1].DryRun {
		t.Errorf("dryRun: %v and %v, want unset and true", f.Policies[0].DryRun, f.Policies[1].DryRun)
	}
	for _, w := range []string{`namespace="demo", pod=~"llm-prescale-[a-z0-9]+-[a-z0-9]{5}"`, "[6s]", "periodSeconds: 2}",
		"stabilizationWindowSeconds: 30,", "season: 2h24m0s", "horizon: 30s", "history: 8h0m0s", "gate: {window: 12m0s}", "hold: 6m0s",
		"histogram_quantile(0.99", "vllm:time_to_first_token_seconds_bucket"} {
		if !strings.Contains(text, w) {
			t.Errorf("the policies lack %q:\n%s", w, text)
		}
	}
	for _, w := range []string{"inference", "llama-70b", "[1m]", "periodSeconds: 15", "stabilizationWindowSeconds: 300"} {
		if strings.Contains(text, w) {
			t.Errorf("the policies still have %q:\n%s", w, text)
		}
	}
}

// constLoad is a load of the same requests every minute.
type constLoad float64

func (c constLoad) RequestsPerMinute(int) float64 { return float64(c) }

// The vLLM history is one pod per service, which the example's pod regex selects, whose
// completion counter counts every tick's arrivals and whose gauges stay 0: 2 minutes of 60
// requests a minute at 15 s ticks are 8 samples a series, the counter at 15, 30, ... 120,
// the last at End.
func TestVLLMHistory(t *testing.T) {
	end := time.Unix(1_700_000_000, 0)
	h := sim.History{Namespace: "demo", Services: []string{preService}, Load: constLoad(60), Tick: 15 * time.Second,
		Compression: 10, Minutes: 2, End: end}
	var b strings.Builder
	if err := writeVLLMHistory(&b, h); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	count := map[string]int{}
	var last string
	for _, l := range lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		name := l[:strings.Index(l, "{")]
		count[name]++
		if !strings.Contains(l, `pod="llm-prescale-history-00000"`) || !strings.Contains(l, `namespace="demo"`) {
			t.Errorf("line %q: want the history pod in namespace demo", l)
		}
		if name == "vllm:request_success_total" {
			last = l
		} else if f := strings.Fields(l); f[len(f)-2] != "0" {
			t.Errorf("gauge line %q: want 0", l)
		}
	}
	want := map[string]int{"vllm:request_success_total": 8, "vllm:num_requests_running": 8, "vllm:num_requests_waiting": 8}
	for k, v := range want {
		if count[k] != v {
			t.Errorf("%d samples of %s, want %d", count[k], k, v)
		}
	}
	if f := strings.Fields(last); f[len(f)-2] != "120" || f[len(f)-1] != "1700000000.000" {
		t.Errorf("last counter sample %q, want 120 at 1700000000.000", last)
	}
	if lines[len(lines)-1] != "# EOF" {
		t.Errorf("last line %q, want # EOF", lines[len(lines)-1])
	}
}

// Beside Karpenter the surge comes a node lead and a horizon later every day, history
// included, and the run is as much longer, so that its nodes can be asked for ahead of it.
func TestScenarioBesideKarpenter(t *testing.T) {
	o := Options{Sandbox: sandbox.Options{Karpenter: &sandbox.KarpenterOptions{}}, NodeLead: 10 * time.Minute}.Defaults()
	sc, err := newScenario(o)
	if err != nil {
		t.Fatal(err)
	}
	if sc.history != 3*1440 || sc.minutes != 45 {
		t.Errorf("history %d, minutes %d; want 4320 (3 days), 45 (30 + 10 + 5)", sc.history, sc.minutes)
	}
	for d := range 4 {
		before, during := sc.load.RequestsPerMinute(d*1440+22), sc.load.RequestsPerMinute(d*1440+23)
		if during < 2*before || sc.load.RequestsPerMinute(d*1440+8) > 1.5*before {
			t.Errorf("day %d: load at minutes 8, 22, 23 = %.0f, %.0f, %.0f; want the surge at 23 only", d,
				sc.load.RequestsPerMinute(d*1440+8), before, during)
		}
	}
	if !strings.Contains(sc.what, "surge at minute 23") {
		t.Errorf("scenario %q does not say when the surge comes", sc.what)
	}
}

func TestKarpenterFor(t *testing.T) {
	o := Options{Sandbox: sandbox.Options{Karpenter: &sandbox.KarpenterOptions{}}, NodeLead: 10 * time.Minute, Compression: 10}
	k := karpenterFor(o)
	want := sandbox.KarpenterOptions{NodeDelay: time.Minute, NodePools: []string{hpaService, preService}, GPULimit: maxReplicas,
		FeatureGates: "CapacityBuffer=true", ConsolidateAfter: 30 * time.Second}
	if diff := cmp.Diff(want, *k); diff != "" {
		t.Errorf("karpenterFor (-want +got):\n%s", diff)
	}
	// Other gates keep the CapacityBuffer gate on.
	o.Sandbox.Karpenter = &sandbox.KarpenterOptions{FeatureGates: "SpotToSpotConsolidation=true"}
	if k := karpenterFor(o); k.FeatureGates != "SpotToSpotConsolidation=true,CapacityBuffer=true" {
		t.Errorf("feature gates %q, want the CapacityBuffer gate added", k.FeatureGates)
	}
	// What the options set is kept, but the node delay, which the node lead sets.
	o.Sandbox.Karpenter = &sandbox.KarpenterOptions{NodeDelay: time.Hour, GPULimit: 8, FeatureGates: "CapacityBuffer=false", ConsolidateAfter: time.Minute}
	k = karpenterFor(o)
	if k.NodeDelay != time.Minute || k.GPULimit != 8 || k.FeatureGates != "CapacityBuffer=false" || k.ConsolidateAfter != time.Minute {
		t.Errorf("karpenterFor = %+v, want the node delay from the node lead and the rest as set", *k)
	}
}

func TestSummaryBesideKarpenter(t *testing.T) {
	res := Result{Minutes: 45, HPA: sim.Summary{ReplicaMinutes: 400}, Prescale: sim.Summary{ReplicaMinutes: 380},
		Nodes: &NodeSummary{Lead: 10 * time.Minute, HPAGPUMinutes: 800, PrescaleGPUMinutes: 760, BufferPeak: 7}}
	text := strings.Join(summary(res), "\n")
	for _, w := range []string{"node GPU-minutes (paid)", "800.0", "760.0", "-5.0%", "CapacityBuffer peak (replicas)", " 7", "Ready 10m0s after their creation"} {
		if !strings.Contains(text, w) {
			t.Errorf("summary lacks %q:\n%s", w, text)
		}
	}
	if res.Nodes = nil; strings.Contains(strings.Join(summary(res), "\n"), "node GPU-minutes") {
		t.Errorf("the summary without Karpenter has node lines")
	}
}
