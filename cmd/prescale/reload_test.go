package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	"github.com/prescale/prescale/policy"
)

func TestChangedSettings(t *testing.T) {
	base := func() Settings {
		return Settings{Interval: 15 * time.Second, Prometheus: PrometheusSettings{URL: "http://p:9090", Headers: map[string]string{"a": "1"}},
			LeaderElection: LeaderElectionSettings{Enabled: true}, Policies: []any{"web"}}
	}
	tests := []struct {
		name   string
		change func(*Settings)
		want   []string
	}{
		{name: "nothing changed", change: func(*Settings) {}},
		{name: "only the policies changed: they are not settings", change: func(s *Settings) { s.Policies = []any{"web", "api"} }},
		{name: "a top-level setting", change: func(s *Settings) { s.Interval = 30 * time.Second }, want: []string{"interval"}},
		{name: "a setting two blocks down", change: func(s *Settings) { s.Prometheus.TLS.CAFile = "/ca.pem" },
			want: []string{"prometheus.tls.caFile"}},
		{name: "a map's entry", change: func(s *Settings) { s.Prometheus.Headers = map[string]string{"a": "2"} },
			want: []string{"prometheus.headers"}},
		{name: "several, in the order of the fields", change: func(s *Settings) {
			s.ExternalMetrics.Enabled, s.DryRun, s.Prometheus.URL, s.Kubernetes.QPS = true, true, "http://q:9090", 5
		}, want: []string{"prometheus.url", "dryRun", "kubernetes.qps", "externalMetrics.enabled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := base()
			tc.change(&b)
			if diff := cmp.Diff(tc.want, changedSettings(base(), b)); diff != "" {
				t.Errorf("changedSettings (-want +got):\n%s", diff)
			}
		})
	}
}

// fakeLive records the policies and the dry-run settings it is given, in order.
type fakeLive struct {
	set   [][]policy.Policy
	calls []string
}

func (f *fakeLive) SetPolicies(p []policy.Policy) {
	f.set = append(f.set, p)
	f.calls = append(f.calls, "SetPolicies")
}

func (f *fakeLive) SetDryRun(on bool) { f.calls = append(f.calls, fmt.Sprintf("SetDryRun(%v)", on)) }

func TestReload(t *testing.T) {
	eightReplicas := strings.Replace(policiesYAML, "maxReplicas: 4", "maxReplicas: 8", 1)
	tests := []struct {
		name    string
		newFile string
		// wantMaxReplicas is the new policy's maxReplicas; 0: the policies were not replaced.
		wantMaxReplicas int32
		wantSuccessful  float64
		// wantCalls are the live changes, in order; nil: none.
		wantCalls []string
		wantLog   []string
		// notLog must not be logged.
		notLog string
	}{
		{name: "new policies apply", newFile: "interval: 15s\n" + eightReplicas,
			wantMaxReplicas: 8, wantSuccessful: 1, wantCalls: []string{"SetPolicies"},
			wantLog: []string{"Reloaded configuration"}, notLog: "Global settings changed"},
		{name: "a changed setting is logged, and the policies still apply", newFile: "interval: 30s\n" + eightReplicas,
			wantMaxReplicas: 8, wantSuccessful: 1, wantCalls: []string{"SetPolicies"},
			wantLog: []string{`settings apply after a restart`, `settings=["interval"]`, "Reloaded configuration"}},
		{name: "dryRun: true applies live, before the policies, and needs no restart", newFile: "interval: 15s\ndryRun: true\n" + eightReplicas,
			wantMaxReplicas: 8, wantSuccessful: 1, wantCalls: []string{"SetDryRun(true)", "SetPolicies"},
			wantLog: []string{"Global dryRun changed; applies from the next tick", `dryRun=true`, "Reloaded configuration"},
			notLog:  "after a restart"},
		{name: "dryRun with a setting that needs a restart: only the latter is logged as such", newFile: "interval: 30s\ndryRun: true\n" + eightReplicas,
			wantMaxReplicas: 8, wantSuccessful: 1, wantCalls: []string{"SetDryRun(true)", "SetPolicies"},
			wantLog: []string{`settings=["interval"]`, `dryRun=true`}},
		{name: "a negative interval rejects the file", newFile: "interval: -5s\n" + eightReplicas,
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration", "interval: must be at least 1s, got -5s"}},
		{name: "an unknown capacity mode rejects the file", newFile: "capacity: {mode: bogus}\n" + eightReplicas,
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration", `capacity.mode: must be cap or off, got \"bogus\"`}},
		{name: "a rejected file does not turn dry-run on", newFile: "dryRun: true\ninterval: -5s\n" + eightReplicas,
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration"}},
		{name: "a bad policy rejects the file", newFile: "interval: 15s\n" + strings.Replace(policiesYAML, "maxReplicas: 4", "maxReplicas: 0", 1),
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration", "policies[0].maxReplicas: must be >= 1, got 0"}},
		// Running at 15s, a season must be at least 22.5s (1.5 intervals, rounded to two);
		// the file's 5s interval would allow 7.5s, but applies only after a restart.
		{name: "a season too short for the running interval rejects the file", newFile: "interval: 5s\n" + eightReplicas +
			"    forecast: {load: {query: up, perReplica: 1}, season: 20s}\n",
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration",
				"check the policies at the running interval 15s (the new interval 5s applies after a restart): policies[0].forecast.season: must be at least 22.5s"}},
		{name: "a season too short for the file's interval rejects the file", newFile: "interval: 1m\n" + eightReplicas +
			"    forecast: {load: {query: up, perReplica: 1}, season: 60s}\n",
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration",
				"policies[0].forecast.season: must be at least 1m30s, two steps of the load sampled every 1m0s (a season is rounded to whole steps), got 1m0s (line 7)"}},
		{name: "a season long enough for both intervals applies", newFile: "interval: 5s\n" + eightReplicas +
			"    forecast: {load: {query: up, perReplica: 1}, season: 22500ms}\n",
			wantMaxReplicas: 8, wantSuccessful: 1, wantCalls: []string{"SetPolicies"}, wantLog: []string{"Reloaded configuration"}},
		{name: "a bad setting rejects the file, its good policies too", newFile: "interval: 500ms\n" + eightReplicas,
			wantSuccessful: 0, wantLog: []string{"Rejected the new configuration", "interval: must be at least 1s, got 500ms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			ctx := klog.NewContext(context.Background(), logger)
			file := writeFile(t, "interval: 15s\n"+policiesYAML)
			running, _, err := loadConfig(file, nil)
			if err != nil {
				t.Fatal(err)
			}
			fake := &fakeLive{}
			r := &reloader{file: file, running: running, live: fake,
				successful: prometheus.NewGauge(prometheus.GaugeOpts{Name: "successful"}),
				timestamp:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "timestamp"})}
			r.successful.Set(1)
			if err := os.WriteFile(file, []byte(tc.newFile), 0o600); err != nil {
				t.Fatal(err)
			}
			r.reload(ctx)

			switch {
			case tc.wantMaxReplicas == 0 && len(fake.set) != 0:
				t.Errorf("policies replaced by %+v, want them kept", fake.set)
			case tc.wantMaxReplicas != 0 && (len(fake.set) != 1 || len(fake.set[0]) != 1 || fake.set[0][0].MaxReplicas != tc.wantMaxReplicas):
				t.Errorf("policies set: %+v, want one policy with maxReplicas %d", fake.set, tc.wantMaxReplicas)
			}
			if diff := cmp.Diff(tc.wantCalls, fake.calls); diff != "" {
				t.Errorf("live changes (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(r.successful); got != tc.wantSuccessful {
				t.Errorf("last reload successful = %v, want %v", got, tc.wantSuccessful)
			}
			log := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
			for _, want := range tc.wantLog {
				if !strings.Contains(log, want) {
					t.Errorf("log does not contain %q:\n%s", want, log)
				}
			}
			if tc.notLog != "" && strings.Contains(log, tc.notLog) {
				t.Errorf("log contains %q:\n%s", tc.notLog, log)
			}
		})
	}
}
