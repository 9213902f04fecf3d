package main

import (
	"bytes"
	"encoding/json"
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
        query: sum(rate(vllm:generation_tokens_total[1m]))
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
		{"no load", "", []string{"backtest", "-f", policyFile}, 1,
			"prescale backtest: no load: give --trace FILE or --prometheus URL\n"},
		{"unknown sweep key", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--sweep", "foo=1"}, 2,
			`prescale: sweep "foo=1": unknown key "foo" (known: gpuTarget, peakReplicas, quantile, queueTarget, scaleDownWindow, scaleUpWindow, slo, startup, targetUtilization)` + "\n"},
		{"bad model parameter", "", []string{"backtest", "-f", policyFile, "--trace", "-", "--peak-replicas", "0"}, 2,
			"prescale: model parameters: peak replicas: must be >= 1, got 0\n"},
		{"prometheus without a range", "", []string{"backtest", "-f", policyFile, "--prometheus", "http://127.0.0.1:1"}, 1,
			"prescale backtest: --from: required with --prometheus\n"},
		{"a query binding to no series", "minute,requests\n0,5\n", []string{"backtest", "-f", unbound, "--trace", "-"}, 2,
			"prescale: bind metric tokens of policy tokens: query \"sum(rate(vllm:generation_tokens_total[1m]))\" mentions none of the model's series (DCGM_FI_DEV_GPU_UTIL, vllm:num_requests_waiting, vllm:e2e_request_latency_seconds, inference_requests_total)\n"},
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
