package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/policy"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{
			name:       "example file is ok",
			args:       []string{"validate", "-f", "../../examples/policy.yaml"},
			wantStdout: "policy file ok: 1 policy (llama-70b)\n",
		},
		{
			name: "file from standard input, two policies",
			args: []string{"validate", "-f", "-"},
			stdin: `policies:
  - name: llama-70b
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: llama-70b}
    maxReplicas: 4
    metrics: [{name: queue, query: up, target: {type: AverageValue, averageValue: 5}}]
  - name: mistral-7b
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: mistral-7b}
    maxReplicas: 4
    metrics: [{name: queue, query: up, target: {type: AverageValue, averageValue: 5}}]
`,
			wantStdout: "policy file ok: 2 policies (llama-70b, mistral-7b)\n",
		},
		{
			name:       "file from PRESCALE_FILE",
			args:       []string{"validate"},
			env:        map[string]string{"PRESCALE_FILE": "../../examples/policy.yaml"},
			wantStdout: "policy file ok: 1 policy (llama-70b)\n",
		},
		{
			name: "every problem on its own line, in file order, exit 1",
			args: []string{"validate", "--file", "-"},
			stdin: `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: many
    metrics: [{name: rps, query: up, target: {type: Value, value: -5}}]
    behavior: {scaleUp: {foo: 1}}
`,
			wantCode: 1,
			wantStderr: `policies[0].maxReplicas: want an integer, got "many" (line 4)
policies[0].metrics[0].target.value: must be > 0, got -5 (line 5)
policies[0].behavior.scaleUp.foo: unknown field (line 6)
`,
		},
		{
			name: "every problem of the global settings, as prescale run would find them, exit 1",
			args: []string{"validate", "-f", "-"},
			stdin: `interval: 500ms
prometheus: {url: "prometheus:9090"}
leaderElection: {leaseDuration: 5s}
externalMetrics: {enabled: true, tls: {keyFile: k.pem}}
policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics: [{name: rps, query: up, target: {type: Value, value: 1}}]
`,
			wantCode: 1,
			wantStderr: `interval: must be at least 1s, got 500ms (line 1)
prometheus.url: must be an absolute http or https URL, got "prometheus:9090" (line 2)
leaderElection.leaseDuration: must be more than renewDeadline (10s), got 5s (line 3)
externalMetrics.tls: give both certFile and keyFile, or neither, got certFile "" and keyFile "k.pem" (line 4)
`,
		},
		{
			name: "a negative interval and an unknown capacity mode, with their lines, exit 1",
			args: []string{"validate", "-f", "-"},
			stdin: `interval: -5s
capacity:
  resource: nvidia.com/gpu
  mode: bogus
policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics: [{name: rps, query: up, target: {type: Value, value: 1}}]
`,
			wantCode: 1,
			wantStderr: `interval: must be at least 1s, got -5s (line 1)
capacity.mode: must be cap or off, got "bogus" (line 4)
`,
		},
		{
			name: "a value from the environment or a default has no line",
			args: []string{"validate", "-f", "-"},
			env:  map[string]string{"PRESCALE_INTERVAL": "-5s", "PRESCALE_CAPACITY_MODE": "bogus"},
			stdin: `interval: 15s
staleness: 0s
missingAfter: -1m
policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics: [{name: rps, query: up, target: {type: Value, value: 1}}]
`,
			wantCode: 1,
			wantStderr: `interval: must be at least 1s, got -5s
staleness: must be > 0, got 0s (line 2)
missingAfter: must be > 0, got -1m0s (line 3)
capacity.mode: must be cap or off, got "bogus"
`,
		},
		{
			// The controller samples the load every interval: a season is rounded to whole
			// intervals and needs two, so at 1m it must be at least 1.5 × 1m = 90s.
			name: "a forecast season too short for the interval, exit 1",
			args: []string{"validate", "-f", "-"},
			stdin: `interval: 1m
policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics: [{name: rps, query: up, target: {type: Value, value: 1}}]
    forecast:
      load: {query: up, perReplica: 1}
      method: seasonal-naive
      season: 20s
`,
			wantCode:   1,
			wantStderr: "policies[0].forecast.season: must be at least 1m30s, two steps of the load sampled every 1m0s (a season is rounded to whole steps), got 20s (line 10)\n",
		},
		{
			name: "the interval from the environment",
			args: []string{"validate", "-f", "-"},
			env:  map[string]string{"PRESCALE_INTERVAL": "15s"},
			stdin: `interval: 5s
policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics: [{name: rps, query: up, target: {type: Value, value: 1}}]
    forecast: {load: {query: up, perReplica: 1}, season: 20s}
`,
			wantCode:   1,
			wantStderr: "policies[0].forecast.season: must be at least 22.5s, two steps of the load sampled every 15s (a season is rounded to whole steps), got 20s (line 7)\n",
		},
		{
			name:       "empty file, exit 1",
			args:       []string{"validate", "-f", "-"},
			wantCode:   1,
			wantStderr: "policy file is empty: want a mapping with a policies list\n",
		},
		{
			name:       "a file over the size limit, exit 1",
			args:       []string{"validate", "-f", "-"},
			stdin:      "policies:\n" + strings.Repeat("# padding\n", policy.MaxFileBytes/10),
			wantCode:   1,
			wantStderr: "policy file is larger than the limit of 1048576 bytes (1 MiB)\n",
		},
		{
			name:       "no file given, exit 2",
			args:       []string{"validate"},
			wantCode:   2,
			wantStderr: "prescale: no policy file: give -f FILE, or -f - for standard input\n",
		},
		{
			name:       "missing file, exit 2",
			args:       []string{"validate", "-f", "testdata/no-such-file.yaml"},
			wantCode:   2,
			wantStderr: "prescale: read policy file: open testdata/no-such-file.yaml: no such file or directory\n",
		},
		{
			name:       "unexpected argument, exit 2",
			args:       []string{"validate", "-f", "-", "extra"},
			wantCode:   2,
			wantStderr: `prescale: unknown command "extra" for "prescale validate"` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PRESCALE_FILE", "")
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := execute(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d", code, tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSubcommandsRegistered checks that every constructor in subcommands is reachable from
// the root command.
func TestSubcommandsRegistered(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := execute([]string{"--help"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("prescale --help: exit code %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "validate    Check a policy file") {
		t.Errorf("prescale --help does not list validate:\n%s", stdout.String())
	}
}
