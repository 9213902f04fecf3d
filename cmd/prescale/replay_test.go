package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestReplayCommand(t *testing.T) {
	obs := `{"time":"2026-01-01T00:00:15Z","specReplicas":4,"pods":[{"name":"a","ready":true},{"name":"b","ready":true},{"name":"c","ready":false}],"metrics":{"queue":{"perPod":{"a":12,"b":9}},"p95-latency":{"value":3.1},"gpu":{"error":"timeout"}}}
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
