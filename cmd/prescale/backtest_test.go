package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// convTrace is a shared trace; CI lays shared/ beside the repository.
const convTrace = "../../../shared/traces/azure-llm-2023/conv_requests_per_minute.csv"

func runPrescale(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = execute(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestBacktestCommandTable(t *testing.T) {
	code, out, stderr := runPrescale(t, "", "backtest", "-f", "../../examples/backtest-policy.yaml", "--trace", convTrace)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	// A summary, a blank line, the header and one row per policy, in order.
	if len(lines) != 6 || !strings.Contains(lines[0], "60 minutes (1.0 hours), 240 ticks of 15s; peak 502 req/min") {
		t.Fatalf("output:\n%s", out)
	}
	for i, name := range []string{"hpa", "prescale", "oracle"} {
		if f := strings.Fields(lines[3+i]); f[0] != name {
			t.Errorf("row %d is %q, want policy %s", i, lines[3+i], name)
		}
	}
	if stderr != "" {
		t.Errorf("stderr: %q", stderr)
	}
}

func TestBacktestCommandJSONAndPlot(t *testing.T) {
	png, html := filepath.Join(t.TempDir(), "conv.png"), filepath.Join(t.TempDir(), "conv.html")
	code, out, stderr := runPrescale(t, "", "backtest", "-f", "../../examples/backtest-policy.yaml", "--trace", convTrace,
		"--json", "--plot", png, "--html", html, "--plot-window", "30m", "--startup", "60s", "--peak-replicas", "20")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	var got struct {
		Policy string `json:"policy"`
		Params struct {
			StartupSeconds float64 `json:"startupSeconds"`
			PeakReplicas   int32   `json:"peakReplicas"`
			MaxReplicas    int32   `json:"maxReplicas"`
		} `json:"params"`
		Result struct {
			Ticks    int `json:"ticks"`
			Policies []struct {
				Name     string  `json:"name"`
				GPUHours float64 `json:"gpuHours"`
			} `json:"policies"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if got.Policy != "prescale" || got.Params.StartupSeconds != 60 || got.Params.PeakReplicas != 20 || got.Params.MaxReplicas != 40 ||
		got.Result.Ticks != 240 || len(got.Result.Policies) != 3 || got.Result.Policies[2].Name != "oracle" {
		t.Errorf("json: %+v", got)
	}
	b, err := os.ReadFile(png)
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("plot: %d bytes, %v", len(b), err)
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte(`<td>oracle</td>`)) || !bytes.Contains(page, []byte(`src="data:image/png;base64,iVBOR`)) {
		t.Errorf("html report (%v):\n%.2000s", err, page)
	}
}

func TestBacktestCommandSweep(t *testing.T) {
	code, out, stderr := runPrescale(t, "", "backtest", "-f", "../../examples/backtest-policy.yaml", "--trace", convTrace,
		"--sweep", "scaleDownWindow=0,300", "--sweep", "queueTarget=2,5")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	for _, want := range []string{"scaleDownWindow=0 queueTarget=2 ", "scaleDownWindow=300 queueTarget=5 ", "Pareto front of prescale"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBacktestCommandErrors(t *testing.T) {
	const policyFile = "../../examples/backtest-policy.yaml"
	unbound := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(unbound, []byte(`policies:
  - name: tokens
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: model}
    maxReplicas: 8
    metrics:
      - name: tokens
        query: sum(rate(vllm:request_generation_tokens_sum[1m]))
        target: {type: Value, value: 1000}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"bad trace line", "minute,requests\n0,5\n1,-3\n", []string{"backtest", "-f", policyFile, "--trace", "-"}, 1,
			"prescale backtest: trace -: line 3: requests is negative: -3\n"},
		{"empty trace", "", []string{"backtest", "-f", policyFile, "--trace", "-"}, 1,
			"prescale backtest: trace -: line 1: empty trace: want a minute,requests header and one row per minute\n"},
		{"a trace whose minutes are all 0", "minute,requests\n0,0\n1,0\n", []string{"backtest", "-f", policyFile, "--trace", "-"}, 1,
			"prescale backtest: trace -: no minute has requests: the model scales its capacity to the peak minute\n"},
		{"no load", "", []string{"backtest", "-f", policyFile}, 1,
			"prescale backtest: no load: give --trace FILE or --prometheus URL\n"},
		{"unknown sweep key", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--sweep", "foo=1"}, 2,
			`prescale: sweep "foo=1": unknown key "foo" (known: gpuTarget, kvTarget, peakReplicas, quantile, queueTarget, scaleDownWindow, scaleUpWindow, slo, startup, targetUtilization)` + "\n"},
		{"bad model parameter", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--peak-replicas", "0"}, 2,
			"prescale: --peak-replicas: must be 1..100000, got 0\n"},
		{"a nanosecond tick", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--tick", "1ns"}, 2,
			"prescale: --tick: must be 1s..1m0s and divide a minute, got 1ns\n"},
		{"the largest int32 as max replicas", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--max-replicas", "2147483647"}, 2,
			"prescale: --max-replicas: must be 0 (2 x peakReplicas) or minReplicas (1)..1000000, got 2147483647\n"},
		{"the longest duration as startup", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--startup", "2562047h"}, 2,
			"prescale: --startup: must be 0s..24h0m0s, got 2562047h0m0s\n"},
		{"peak replicas that double past int32", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--peak-replicas", "2000000000"}, 2,
			"prescale: --peak-replicas: must be 1..100000, got 2000000000\n"},
		{"1e308 GPUs per replica", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--gpus-per-replica", "1e308"}, 2,
			"prescale: --gpus-per-replica: must be in (0, 1024], got 1e+308\n"},
		{"every bad model flag at once", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--tick", "7s", "--startup", "-1s",
			"--peak-replicas", "0", "--target-utilization", "2", "--queue-target", "0", "--min-replicas", "-1", "--max-replicas", "-2",
			"--slo", "0s", "--gpus-per-replica", "NaN"}, 2,
			"prescale: --tick: must be 1s..1m0s and divide a minute, got 7s\n--startup: must be 0s..24h0m0s, got -1s\n" +
				"--peak-replicas: must be 1..100000, got 0\n--target-utilization: must be in (0, 1], got 2\n" +
				"--queue-target: must be a finite number > 0, got 0\n--min-replicas: must be 0..100000, got -1\n" +
				"--max-replicas: must be 0 (2 x peakReplicas) or minReplicas (-1)..1000000, got -2\n--slo: must be > 0, got 0s\n" +
				"--gpus-per-replica: must be in (0, 1024], got NaN\n"},
		{"a node lead without nodes", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--node-lead", "5m"}, 2,
			"prescale: --node-lead: with --gpus-per-node only\n"},
		{"bad node model", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--gpus-per-node", "2000", "--node-lead", "-1s",
			"--consolidate-after", "25h"}, 2,
			"prescale: --gpus-per-node: must be 1..1024 and at least gpusPerReplica (1), got 2000\n--node-lead: must be 0s..24h0m0s, got -1s\n" +
				"--consolidate-after: must be 0s..24h0m0s, got 25h0m0s\n"},
		{"nodes smaller than a pod", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--gpus-per-node", "1", "--gpus-per-replica", "2"}, 2,
			"prescale: --gpus-per-node: must be 1..1024 and at least gpusPerReplica (2), got 1\n"},
		{"prometheus without a range", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1"}, 2,
			"prescale: --from: required with --prometheus\n--to: required with --prometheus\n"},
		// --from and --to: Unix seconds of 1970..2100, refused before any query (nothing
		// listens at port 1).
		{"NaN and Inf as times", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "NaN", "--to", "Inf"}, 2,
			"prescale: --from: want RFC 3339 or Unix seconds from 0 (1970-01-01T00:00:00Z) to before 4102444800 (2100-01-01T00:00:00Z), got \"NaN\"\n--to: want RFC 3339 or Unix seconds from 0 (1970-01-01T00:00:00Z) to before 4102444800 (2100-01-01T00:00:00Z), got \"Inf\"\n"},
		{"1e300 and -1 as times", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "-1", "--to", "1e300"}, 2,
			"prescale: --from: want RFC 3339 or Unix seconds from 0 (1970-01-01T00:00:00Z) to before 4102444800 (2100-01-01T00:00:00Z), got -1\n--to: want RFC 3339 or Unix seconds from 0 (1970-01-01T00:00:00Z) to before 4102444800 (2100-01-01T00:00:00Z), got 1e300\n"},
		// 1767225600000 ms is 1767225600 s, 2026-01-01 (20,454 days x 86,400 s).
		{"a time in milliseconds", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "1767225600000", "--to", "1767229200"}, 2,
			"prescale: --from: want RFC 3339 or Unix seconds from 0 (1970-01-01T00:00:00Z) to before 4102444800 (2100-01-01T00:00:00Z), got 1767225600000: milliseconds? In seconds that is 1767225600 (2026-01-01T00:00:00Z)\n"},
		{"RFC 3339 past 2100", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "0", "--to", "2300-01-01T00:00:00Z"}, 2,
			"prescale: --to: want RFC 3339 or Unix seconds from 0 (1970-01-01T00:00:00Z) to before 4102444800 (2100-01-01T00:00:00Z), got 2300-01-01T00:00:00Z\n"},
		// The range: 1,767,225,600 steps of 1 s, refused before Load holds a flag for
		// each.
		{"a range of too many points", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "0", "--to", "2026-01-01T00:00:00Z", "--step", "1s"}, 2,
			"prescale: --from, --to and --step: 1970-01-01T00:00:00Z to 2026-01-01T00:00:00Z at 1s is 1767225600 points; at most 4000000 (46 days at 1s, 7.6 years at 1m)\n"},
		{"a range of a minute and a half", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "0", "--to", "90"}, 2,
			"prescale: --from and --to: 1970-01-01T00:00:00Z to 1970-01-01T00:01:30Z: 1m30s, must be whole minutes\n"},
		{"a step that does not divide a minute", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1", "--from", "0", "--to", "3600", "--step", "7s"}, 2,
			"prescale: --step: must divide a minute, got 7s\n"},
		{"a range with a trace", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--from", "0"}, 2,
			"prescale: --from: with --prometheus only\n"},
		{"a budget that is no number", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--budget", "abc"}, 2,
			"prescale: --budget: want a fraction (0.001) or a percentage (\"0.1%\"), got \"abc\"\n"},
		{"a budget over half the minutes", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--budget", "60%"}, 2,
			"prescale: --budget: must be within (0, 50%], got \"60%\"\n"},
		// 7 x 143 = 1001 points.
		{"a sweep grid over 1000 points", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--sweep", "slo=" + strings.Repeat("1,", 6) + "1",
			"--sweep", "startup=" + strings.Repeat("1,", 142) + "1"}, 2, "prescale: --sweep: a grid of 7 x 143 points is more than 1000\n"},
		// The window is checked before the simulation: the policy's query, which binds to no
		// series of the model, would stop the simulation with another error.
		{"a plot after the trace's end", "minute,requests\n0,5\n1,5\n", []string{"backtest", "-f", unbound, "--trace", "-", "--plot", "x.png", "--plot-from", "48h"}, 2,
			"prescale: --plot-from 48h0m0s: the trace ends at 2m0s (2 minutes)\n"},
		{"a negative plot start", "minute,requests\n0,5\n", []string{"backtest", "-f", unbound, "--trace", "-", "--html", "x.html", "--plot-from", "-1m"}, 2,
			"prescale: --plot-from: must be >= 0, got -1m0s\n"},
		{"a plot window under a minute", "minute,requests\n0,5\n", []string{"backtest", "-f", unbound, "--trace", "-", "--plot", "x.png", "--plot-window", "30s"}, 2,
			"prescale: --plot-window: must be at least a minute, the trace's resolution, got 30s\n"},
		{"a plot window without a plot", "minute,requests\n0,5\n", []string{"backtest", "-f", policyFile, "--trace", "-", "--plot-window", "1h"}, 2,
			"prescale: --plot-window: with --plot or --html only\n"},
		{"a budget with a sweep", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--budget", "1%", "--sweep", "queueTarget=2,5"}, 2,
			"prescale: --budget compares one backtest with the HPA's settings: leave out --sweep\n"},
		// The model exports vLLM's token counters, not its token histograms.
		{"a query on a series the model does not export", "minute,requests\n0,5\n", []string{"backtest", "-f", unbound, "--trace", "-"}, 2,
			"prescale: metric tokens of policy tokens: query \"sum(rate(vllm:request_generation_tokens_sum[1m]))\": selector vllm:request_generation_tokens_sum selects no series the model exports (DCGM_FI_DEV_GPU_UTIL, inference_objective_request_error_total, inference_objective_request_total, inference_pool_ready_pods, vllm:e2e_request_latency_seconds_bucket, vllm:e2e_request_latency_seconds_count, vllm:e2e_request_latency_seconds_sum, vllm:generation_tokens_total, vllm:kv_cache_usage_perc, vllm:num_requests_running, vllm:num_requests_waiting, vllm:prompt_tokens_total, vllm:request_queue_time_seconds_bucket, vllm:request_queue_time_seconds_count, vllm:request_queue_time_seconds_sum, vllm:request_success_total, vllm:time_to_first_token_seconds_bucket, vllm:time_to_first_token_seconds_count, vllm:time_to_first_token_seconds_sum, labelled as in docs/backtest.md)\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runPrescale(t, tc.stdin, tc.args...)
			if code != tc.code || stderr != tc.stderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

// syntheticCSV is a made-up 12-hour trace: a sine between 200 and 2200 requests a minute,
// with a burst of 1.8 times the load for 5 minutes every 97 minutes.
func syntheticCSV() string {
	var b strings.Builder
	b.WriteString("minute,requests\n")
	for m := range 720 {
		r := 1200 + 1000*math.Sin(2*math.Pi*float64(m)/1440)
		if m%97 < 5 {
			r *= 1.8
		}
		fmt.Fprintf(&b, "%d,%.0f\n", m, r)
	}
	return b.String()
}

func TestBacktestCommandObjective(t *testing.T) {
	html := filepath.Join(t.TempDir(), "slo.html")
	code, out, stderr := runPrescale(t, syntheticCSV(), "backtest", "-f", "../../examples/slo-policy.yaml", "--trace", "-", "--json", "--html", html)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	type outcome struct {
		GPUHours            float64 `json:"gpuHours"`
		SLOViolationMinutes *int    `json:"sloViolationMinutes"`
	}
	var got struct {
		Params struct {
			SLOSeconds float64 `json:"sloSeconds"`
		} `json:"params"`
		Objective *struct {
			Budget        float64 `json:"budget"`
			Minutes       int     `json:"minutes"`
			BudgetMinutes *int    `json:"budgetMinutes"`
			HPAGrid       []struct {
				GPUTarget              float64 `json:"gpuTarget"`
				ScaleDownWindowSeconds *int32  `json:"scaleDownWindowSeconds"`
				outcome
			} `json:"hpaGrid"`
			HPAFront []int           `json:"hpaFront"`
			Cheapest json.RawMessage `json:"cheapestHpaHolding"`
			Fewest   outcome         `json:"fewestViolationsHpa"`
			Prescale struct {
				Name string `json:"name"`
				outcome
				Holds *bool `json:"holds"`
			} `json:"prescale"`
			Saving json.RawMessage `json:"saving"`
			Oracle outcome         `json:"oracle"`
			Front  []struct {
				Budget float64 `json:"budget"`
				outcome
			} `json:"prescaleFront"`
			Criterion struct {
				B        float64         `json:"budgetMinutes"`
				Exact    float64         `json:"objectiveMinutes"`
				Fewest   *int            `json:"fewestHpaViolationMinutes"`
				Cheapest json.RawMessage `json:"cheapestHpaHolding"`
				Ratio    json.RawMessage `json:"gpuHoursRatio"`
				Capture  json.RawMessage `json:"captureShare"`
				Holds    *bool           `json:"holds"`
				Met      *bool           `json:"met"`
			} `json:"criterion"`
		} `json:"objective"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	o := got.Objective
	// slo-policy.yaml: budget 0.1% over 2 s; 0.001 x 720 = 0.72: no minute.
	if o == nil || got.Params.SLOSeconds != 2 || o.Budget != 0.001 || o.Minutes != 720 || o.BudgetMinutes == nil || *o.BudgetMinutes != 0 {
		t.Fatalf("json: %s", out)
	}
	if len(o.HPAGrid) != 75 || o.HPAGrid[0].GPUTarget != 30 || o.HPAGrid[0].ScaleDownWindowSeconds == nil || o.HPAGrid[74].GPUTarget != 85 ||
		len(o.HPAFront) == 0 || o.Cheapest == nil || o.Fewest.SLOViolationMinutes == nil || o.Prescale.Name != "prescale" ||
		o.Prescale.Holds == nil || o.Saving == nil || o.Oracle.GPUHours <= 0 || len(o.Front) != 6 || o.Front[5].Budget != 0.02 {
		t.Errorf("objective: %+v", o)
	}
	// B = max(0.72, ceil(1.2 x the fewest)).
	r := o.Criterion
	if r.Fewest == nil || r.Exact != 0.72 || r.B < 0.72 || r.Cheapest == nil || r.Ratio == nil || r.Capture == nil || r.Holds == nil || r.Met == nil {
		t.Errorf("criterion: %+v", r)
	}
	page, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(page, []byte("<h2>Objective</h2>")) || bytes.Count(page, []byte(`src="data:image/png;base64,iVBOR`)) != 2 {
		t.Errorf("html report (%v):\n%.2000s", err, page)
	}
}

func TestBacktestCommandObjectiveText(t *testing.T) {
	code, out, stderr := runPrescale(t, syntheticCSV(), "backtest", "-f", "../../examples/slo-policy.yaml", "--trace", "-", "--slo", "3s", "--budget", "2%")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	// --budget replaces the objective's 0.1%: 0.02 x 720 = 14.4 minutes, 14 whole ones.
	for _, want := range []string{"SLO 3s\n", "Objective: at most 2% of minutes over the 3s SLO: budget 2% of 720 minutes = 14 minutes\n",
		"prescale (policy as written):", "  oracle:", "Benchmark criterion: B = max(2% x 720 = 14.4, ceil(1.2 x 0, the fewest of any HPA setting) = 0) = 14.4 minutes; "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if want := "prescale backtest: warning: --slo 3s is not the objective's slo 2s of policy prescale: violations count over --slo\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

func TestBacktestCommandBudgetWithoutObjective(t *testing.T) {
	code, out, stderr := runPrescale(t, syntheticCSV(), "backtest", "-f", "../../examples/backtest-policy.yaml", "--trace", "-", "--budget", "0.01")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	// 0.01 x 720 = 7.2 minutes; a policy without an objective has no front.
	if !strings.Contains(out, "Objective: at most 1% of minutes over the 2s SLO: budget 1% of 720 minutes = 7 minutes\n") ||
		strings.Contains(out, "front") || !strings.Contains(out, "Benchmark criterion") {
		t.Errorf("output:\n%s", out)
	}
}

// poolPolicies are two reactive policies on the model's series, chat of priority 100 and
// code guaranteed 10 replicas.
const poolPolicies = `policies:
  - name: chat
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: chat}
    maxReplicas: 80
    metrics:
      - {name: kv-cache, query: 'max by (pod) (vllm:kv_cache_usage_perc)', target: {type: AverageValue, averageValue: 670m}}
    capacity: {priority: 100}
  - name: code
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: code}
    maxReplicas: 80
    metrics:
      - {name: kv-cache, query: 'max by (pod) (vllm:kv_cache_usage_perc)', target: {type: AverageValue, averageValue: 670m}}
    capacity: {guaranteed: 10}
`

func TestBacktestCommandPool(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pool.yaml")
	if err := os.WriteFile(file, []byte(poolPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	code := "../../../shared/traces/azure-llm-2023/code_requests_per_minute.csv"
	// Each trace's peak needs 40 replicas of 1 GPU; the pool has 50.
	args := []string{"backtest", "-f", file, "--pool-gpus", "50", "--pool-trace", "chat=" + convTrace, "--pool-trace", "code=" + code, "--json"}
	exit, out, stderr := runPrescale(t, "", args...)
	if exit != 0 {
		t.Fatalf("exit %d, stderr: %s", exit, stderr)
	}
	var res struct {
		GPUs     int64 `json:"gpus"`
		PeakGPUs int64 `json:"peakGPUs"`
		Policies []struct {
			Name             string  `json:"name"`
			Priority         int32   `json:"priority"`
			Guaranteed       int32   `json:"guaranteed"`
			GPUHours         float64 `json:"gpuHours"`
			UnservedGPUHours float64 `json:"unservedGPUHours"`
		} `json:"policies"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if res.GPUs != 50 || res.PeakGPUs > 50 || len(res.Policies) != 2 || res.Policies[0].Name != "chat" || res.Policies[0].Priority != 100 ||
		res.Policies[1].Guaranteed != 10 || res.Policies[0].GPUHours <= 0 {
		t.Errorf("result: %+v", res)
	}

	// The table: a summary, a blank line, the header and a row per policy.
	exit, out, stderr = runPrescale(t, "", args[:len(args)-1]...)
	if exit != 0 {
		t.Fatalf("exit %d, stderr: %s", exit, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "2 policies sharing 50 GPUs") || !strings.HasPrefix(lines[3], "chat ") || !strings.HasPrefix(lines[4], "code ") {
		t.Errorf("table:\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--pool-gpus", "50"}, 2, "--pool-gpus needs at least one --pool-trace POLICY=FILE.csv"},
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat"}, 2, `--pool-trace: want POLICY=FILE.csv, got "chat"`},
		{[]string{"--pool-gpus", "50", "--pool-trace", "none=" + code}, 2, `has no policy "none"`},
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat=/no/such.csv"}, 1, "open trace of policy chat"},
		// The issue's: flags that pool mode does not use were accepted and ignored.
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat=" + convTrace, "--trace", convTrace}, 2,
			"prescale: --trace: pool mode (--pool-gpus) reads each policy's trace from its --pool-trace POLICY=FILE.csv\n"},
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat=" + convTrace, "--sweep", "queueTarget=2,5"}, 2,
			"prescale: --sweep: pool mode (--pool-gpus) has no sweep, objective comparison, plot nor HTML report\n"},
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat=" + convTrace, "--html", "report.html"}, 2,
			"prescale: --html: pool mode (--pool-gpus) has no sweep, objective comparison, plot nor HTML report\n"},
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat=" + convTrace, "--budget", "1%"}, 2,
			"prescale: --budget: pool mode (--pool-gpus) has no sweep, objective comparison, plot nor HTML report\n"},
		{[]string{"--pool-gpus", "50", "--pool-trace", "chat=" + convTrace, "--policy", "chat"}, 2,
			"prescale: --policy: pool mode (--pool-gpus) backtests the policies of its --pool-trace flags\n"},
		{[]string{"--pool-trace", "chat=" + convTrace}, 2, "prescale: --pool-trace: pool mode needs --pool-gpus N, the GPUs the policies share\n"},
	} {
		exit, _, stderr := runPrescale(t, "", append([]string{"backtest", "-f", file}, tc.args...)...)
		if exit != tc.code || !strings.Contains(stderr, tc.want) || tc.code == 2 && strings.HasPrefix(tc.want, "prescale: ") && stderr != tc.want {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, exit, stderr, tc.code, tc.want)
		}
	}
}

// burstCSV is 60 minutes of 1 request, but perMinute requests in minutes 30, 31 and 32.
func burstCSV(perMinute string) string {
	var b strings.Builder
	b.WriteString("minute,requests\n")
	for m := range 60 {
		v := "1"
		if m >= 30 && m < 33 {
			v = perMinute
		}
		fmt.Fprintf(&b, "%d,%s\n", m, v)
	}
	return b.String()
}

// TestBacktestCommandJSONFinite: --json of a queue that a burst overflows. The issue's
// burst of 1.7e308 requests a minute made the queue +Inf, and --json failed with exit 2 and
// no output; it is now refused as a bad trace (exit 1, its line named). At the most requests
// a minute allowed, 1e15, every output (the single backtest, with the objective's
// comparison, from zero, in a pool) is JSON.
func TestBacktestCommandJSONFinite(t *testing.T) {
	dir := t.TempDir()
	over, most := filepath.Join(dir, "over.csv"), filepath.Join(dir, "most.csv")
	pool := filepath.Join(dir, "pool.yaml")
	for path, content := range map[string]string{over: burstCSV("1.7e308"), most: burstCSV("1e15"), pool: poolPolicies} {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, out, stderr := runPrescale(t, "", "backtest", "-f", "../../examples/backtest-policy.yaml", "--trace", over, "--json")
	// The header is line 1: minute 30 is line 32.
	if want := "prescale backtest: trace " + over + ": line 32: requests 1.7e308: at most 1e+15 a minute\n"; code != 1 || out != "" || stderr != want {
		t.Errorf("a burst of 1.7e308: exit %d, stdout %q, stderr %q; want exit 1, stderr %q", code, out, stderr, want)
	}
	for _, args := range [][]string{
		{"-f", "../../examples/backtest-policy.yaml", "--trace", most},
		{"-f", "../../examples/slo-policy.yaml", "--trace", most},
		{"-f", "../../examples/backtest-policy.yaml", "--trace", most, "--min-replicas", "0", "--budget", "1%"},
		{"-f", pool, "--pool-gpus", "1000", "--pool-trace", "chat=" + most, "--pool-trace", "code=" + most},
	} {
		code, out, stderr := runPrescale(t, "", append(append([]string{"backtest"}, args...), "--json")...)
		var v map[string]any
		if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil {
			t.Errorf("%v: exit %d, %v, stderr %q", args, code, err, stderr)
		}
	}
}

func TestBacktestCommandSaysWhenTheForecastCannotBeBuilt(t *testing.T) {
	// The backtest samples the load once a minute: a 60 s season is 1 step, and cannot be
	// built. Said once on standard error, for a sweep of two points too, and in --json.
	file := seasonalMinute(t)
	want := "prescale backtest: warning: policy prescale runs without its forecast, which cannot be built at the backtest's load step of 1m0s: " +
		"build the forecaster: fit forecast: invalid forecast options: season: must be at least 2 steps (2m0s), got 1m0s\n"
	for _, extra := range [][]string{nil, {"--sweep", "queueTarget=2,5"}} {
		code, _, stderr := runPrescale(t, "", append([]string{"backtest", "-f", file, "--trace", convTrace}, extra...)...)
		if code != 0 || stderr != want {
			t.Errorf("%v: exit %d, stderr %q; want exit 0, stderr %q", extra, code, stderr, want)
		}
	}
	_, out, _ := runPrescale(t, "", "backtest", "-f", file, "--trace", convTrace, "--json")
	var got struct {
		Result struct {
			Warnings []string `json:"warnings"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got.Result.Warnings) != 1 {
		t.Errorf("json warnings %q (%v), want the one", got.Result.Warnings, err)
	}
}

// poolObjectivePolicies are two policies guaranteed 40 replicas each; code has an objective
// whose slo is 5 s.
const poolObjectivePolicies = `policies:
  - name: chat
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: chat}
    maxReplicas: 80
    metrics:
      - {name: kv-cache, query: 'max by (pod) (vllm:kv_cache_usage_perc)', target: {type: AverageValue, averageValue: 670m}}
    capacity: {priority: 100, guaranteed: 40}
  - name: code
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: code}
    maxReplicas: 80
    metrics:
      - {name: kv-cache, query: 'max by (pod) (vllm:kv_cache_usage_perc)', target: {type: AverageValue, averageValue: 670m}}
    capacity: {guaranteed: 40}
    forecast:
      load: {query: 'sum(rate(inference_objective_request_total[1m]))', perReplica: auto}
    objective: {query: 'histogram_quantile(0.99, sum by (le) (rate(vllm:request_queue_time_seconds_bucket[1m])))', slo: 5s, budget: 1%}
`

func TestBacktestCommandPoolSLOAndGuarantees(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pool.yaml")
	if err := os.WriteFile(file, []byte(poolObjectivePolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	code := "../../../shared/traces/azure-llm-2023/code_requests_per_minute.csv"
	args := []string{"backtest", "-f", file, "--pool-gpus", "79", "--pool-trace", "chat=" + convTrace, "--pool-trace", "code=" + code, "--json"}
	type result struct {
		Policies []struct {
			Name       string  `json:"name"`
			SLOSeconds float64 `json:"sloSeconds"`
		} `json:"policies"`
		Warnings []string `json:"warnings"`
	}
	// 40 + 40 guaranteed GPUs in a pool of 79: a warning, on standard error and in the JSON.
	// code's SLO is its objective's, 5 s; chat's the model's, 2 s.
	guarantees := "the guarantees (chat 40, code 40 replicas; 80 GPUs at 1 a replica) exceed the pool's 79 GPUs: not all can be held"
	exit, out, stderr := runPrescale(t, "", args...)
	var res result
	if err := json.Unmarshal([]byte(out), &res); exit != 0 || err != nil {
		t.Fatalf("exit %d, %v, stderr %s", exit, err, stderr)
	}
	if want := "prescale backtest: warning: " + guarantees + "\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	if len(res.Policies) != 2 || res.Policies[0].SLOSeconds != 2 || res.Policies[1].SLOSeconds != 5 || len(res.Warnings) != 1 || res.Warnings[0] != guarantees {
		t.Errorf("result %+v; want chat at 2 s, code at 5 s, the warning", res)
	}
	// An explicit --slo wins, with a warning for code's objective.
	exit, out, stderr = runPrescale(t, "", append(args, "--slo", "3s")...)
	res = result{}
	if err := json.Unmarshal([]byte(out), &res); exit != 0 || err != nil {
		t.Fatalf("--slo 3s: exit %d, %v, stderr %s", exit, err, stderr)
	}
	want := "prescale backtest: warning: --slo 3s is not the objective's slo 5s of policy code: violations count over --slo\n" +
		"prescale backtest: warning: " + guarantees + "\n"
	if stderr != want || res.Policies[0].SLOSeconds != 3 || res.Policies[1].SLOSeconds != 3 {
		t.Errorf("--slo 3s: stderr %q, result %+v; want stderr %q, both at 3 s", stderr, res, want)
	}
	// The table has the SLO column.
	_, out, _ = runPrescale(t, "", args[:len(args)-1]...)
	if !strings.Contains(out, " SLO ") || !strings.Contains(out, " 5s ") {
		t.Errorf("table:\n%s", out)
	}
}

// With --gpus-per-node the pods run on nodes that a reactive node autoscaler grows: the
// table has the node-hours and the pods' hours waiting for a node, and the JSON the node
// model and each policy's node-hours. The oracle's CapacityBuffer (--node-buffers, on by
// default) launches nodes a lead ahead of its need, so its pods wait less for one than
// without; the HPA's nodes stay reactive either way.
func TestBacktestCommandNodes(t *testing.T) {
	args := []string{"backtest", "-f", "../../examples/backtest-policy.yaml", "--trace", convTrace, "--gpus-per-node", "4", "--node-lead", "5m"}
	code, out, stderr := runPrescale(t, "", args...)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.Contains(lines[2], "node-hours") || !strings.Contains(lines[2], "pending pod-h") {
		t.Fatalf("output:\n%s", out)
	}
	type policyJSON struct {
		Name            string  `json:"name"`
		NodeHours       float64 `json:"nodeHours"`
		PendingPodHours float64 `json:"pendingPodHours"`
	}
	run := func(buffers string) []policyJSON {
		t.Helper()
		code, out, stderr := runPrescale(t, "", append(args, "--json", "--node-buffers="+buffers)...)
		if code != 0 {
			t.Fatalf("exit %d, stderr: %s", code, stderr)
		}
		var got struct {
			Result struct {
				Nodes           struct{ GPUsPerNode int } `json:"nodes"`
				NodeLeadSeconds float64                   `json:"nodeLeadSeconds"`
				Policies        []policyJSON              `json:"policies"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		if r := got.Result; r.Nodes.GPUsPerNode != 4 || r.NodeLeadSeconds != 300 || len(r.Policies) != 3 || r.Policies[0].NodeHours <= 0 {
			t.Fatalf("json: %+v", r)
		}
		return got.Result.Policies
	}
	with, without := run("true"), run("false")
	if with[0] != without[0] {
		t.Errorf("hpa with buffers %+v, without %+v: want the same (its nodes are reactive)", with[0], without[0])
	}
	if !(with[2].PendingPodHours < without[2].PendingPodHours) {
		t.Errorf("oracle's pods waiting for a node: %v pod-hours with its buffer, %v without; want fewer with", with[2].PendingPodHours, without[2].PendingPodHours)
	}
}
