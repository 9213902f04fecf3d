package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplayCommand(t *testing.T) {
	obs := `{"time":"2026-01-01T00:00:15Z","specReplicas":4,"pods":[{"name":"a","ready":true},{"name":"b","ready":true},{"name":"c","ready":false}],"metrics":{"queue":{"perPod":{"a":12,"b":9}},"p95-ttft":{"value":3.1},"kv-cache":{"error":"timeout"}}}
`
	var stdout, stderr bytes.Buffer
	code := execute([]string{"replay", "-f", "../../examples/policy.yaml"}, strings.NewReader(obs), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, stderr.String())
	}
	var d struct {
		Desired int32  `json:"desiredReplicas"`
		Reason  string `json:"reason"`
		Metric  string `json:"metric"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &d); err != nil {
		t.Fatalf("output %q: %v", stdout.String(), err)
	}
	// queue 2.1 with c missing (0 on a scale-up): 21000/3 = 7000m, 1.4 -> ceil(4.2) = 5.
	if d.Desired != 5 || d.Reason != "DesiredWithinRange" || d.Metric != "queue" {
		t.Errorf("decision = %+v, want 5 DesiredWithinRange queue", d)
	}
}

func TestReplayCommandErrors(t *testing.T) {
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		stderr      string
	}{
		{"malformed line", "{}\n{oops\n", []string{"replay", "-f", "../../examples/policy.yaml"}, 1,
			"prescale replay: line 1: time: required\nspecReplicas: required\n"},
		{"a line over 16 MiB", "\n" + strings.Repeat(" ", 16<<20+1) + "\n", []string{"replay", "-f", "../../examples/policy.yaml"}, 1,
			"prescale replay: line 2: longer than the 16 MiB limit\n"},
		{"no such policy", "", []string{"replay", "-f", "../../examples/policy.yaml", "--policy", "nope"}, 2,
			`prescale: policy file ../../examples/policy.yaml has no policy "nope" (it has llama-70b)` + "\n"},
		{"no policy file", "", []string{"replay"}, 2, "prescale: no policy file: give -f FILE\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := execute(tc.args, strings.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.code || stderr.String() != tc.stderr {
				t.Errorf("exit %d, stderr %q; want exit %d, stderr %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}

// seasonalMinute is examples/backtest-policy.yaml with a seasonal-naive forecast of a
// 60 s season: valid at the policy's 15 s interval (4 steps), but 1 step at a 1 m one
// ((60 + 30) / 60), where it cannot be built.
func seasonalMinute(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../examples/backtest-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "method: auto", "method: seasonal-naive\n      season: 60s", 1)
	path := filepath.Join(t.TempDir(), "seasonal.yaml")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReplayCommandSaysWhenTheForecastCannotBeBuilt(t *testing.T) {
	file := seasonalMinute(t)
	obs := `{"time":"2026-01-01T00:00:00Z","specReplicas":2,"load":{"value":50}}` + "\n" + `{"time":"2026-01-01T00:01:00Z","specReplicas":2,"load":{"value":50}}` + "\n"
	code, out, stderr := runPrescale(t, obs, "replay", "-f", file, "--interval", "1m")
	want := "prescale replay: warning: policy prescale runs without its forecast, which cannot be built at the interval of 1m0s: " +
		"build the forecaster: fit forecast: invalid forecast options: season: must be at least 2 steps (2m0s), got 1m0s\n"
	if code != 0 || stderr != want || strings.Count(out, "\n") != 2 {
		t.Errorf("exit %d, stderr %q, %d records; want exit 0, stderr %q, 2 records", code, stderr, strings.Count(out, "\n"), want)
	}
	// At the 15 s interval the season is 4 steps: nothing to say.
	if code, _, stderr := runPrescale(t, obs, "replay", "-f", file); code != 0 || stderr != "" {
		t.Errorf("at 15s: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
}
