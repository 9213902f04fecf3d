package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

const policiesYAML = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics: [{name: rps, query: up, target: {type: Value, value: 1}}]
`

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "prescale.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runFlagSet(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	cmd := newRunCmd(nil)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return cmd.Flags()
}

func TestSettingsPrecedence(t *testing.T) {
	file := writeFile(t, "interval: 30s\nprometheus: {url: http://file:9090, timeout: 3s}\ndryRun: false\n"+policiesYAML)

	// Defaults, then the file.
	s, policies, err := loadConfig(file, runFlagSet(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Interval != 30*time.Second || s.Prometheus.URL != "http://file:9090" || s.Prometheus.Timeout != 3*time.Second {
		t.Errorf("file values: interval %s url %s timeout %s", s.Interval, s.Prometheus.URL, s.Prometheus.Timeout)
	}
	if s.Staleness != 2*time.Minute || s.Capacity.Resource != "nvidia.com/gpu" || s.Prometheus.PodLabel != "pod" || !s.LeaderElection.Enabled {
		t.Errorf("defaults: %+v", s)
	}
	if len(policies) != 1 || policies[0].Name != "web" {
		t.Errorf("policies = %+v", policies)
	}

	// The environment overrides the file.
	t.Setenv("PRESCALE_PROMETHEUS_URL", "http://env:9090")
	t.Setenv("PRESCALE_DRYRUN", "true")
	t.Setenv("PRESCALE_CAPACITY_PENDINGALLOWANCE", "2")
	s, _, err = loadConfig(file, runFlagSet(t))
	if err != nil {
		t.Fatal(err)
	}
	if s.Prometheus.URL != "http://env:9090" || !s.DryRun || s.Capacity.PendingAllowance != 2 {
		t.Errorf("environment: url %s dryRun %v allowance %d", s.Prometheus.URL, s.DryRun, s.Capacity.PendingAllowance)
	}

	// Flags override both; unchanged flags do not.
	s, _, err = loadConfig(file, runFlagSet(t, "--prometheus-url", "http://flag:9090", "--interval", "5s"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Prometheus.URL != "http://flag:9090" || s.Interval != 5*time.Second || !s.DryRun {
		t.Errorf("flags: url %s interval %s dryRun %v", s.Prometheus.URL, s.Interval, s.DryRun)
	}
}

func TestSettingsAreStrict(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key in a settings block", "prometheus: {urll: http://x}\n" + policiesYAML, "'prometheus' has invalid keys: urll"},
		{"unknown top-level key", "intervall: 5s\n" + policiesYAML, "intervall: unknown field (line 1)"},
		{"a bad duration", "interval: soon\n" + policiesYAML, "interval"},
		{"a bad policy", strings.Replace(policiesYAML, "maxReplicas: 4", "maxReplicas: 0", 1), "policies[0].maxReplicas: must be >= 1, got 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := loadConfig(writeFile(t, tc.yaml), runFlagSet(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestValidateAcceptsSettings(t *testing.T) {
	file := writeFile(t, "prometheus: {url: http://p:9090}\ninterval: 15s\nleaderElection: {enabled: false}\n"+policiesYAML)
	var stdout, stderr strings.Builder
	if code := execute([]string{"validate", "-f", file}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}

func TestPromOptions(t *testing.T) {
	s := Settings{Prometheus: PrometheusSettings{URL: "https://p", BearerTokenFile: "/t", Headers: map[string]string{"X-Scope-OrgID": "a"},
		TLS: TLSSettings{CAFile: "/ca"}}}
	o, err := s.promOptions()
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTP.Authorization == nil || o.HTTP.Authorization.CredentialsFile != "/t" || o.HTTP.TLSConfig.CAFile != "/ca" ||
		o.HTTP.HTTPHeaders.Headers["X-Scope-OrgID"].Values[0] != "a" || o.HTTP.TLSConfig.InsecureSkipVerify {
		t.Errorf("http config = %+v", o.HTTP)
	}
	s.Prometheus.BasicAuth.Username = "u"
	if _, err := s.promOptions(); err == nil {
		t.Error("bearer token and basic auth together: no error")
	}
}

func TestExternalMetricsSettings(t *testing.T) {
	for _, tc := range []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		want    ExternalMetricsSettings
		wantErr string
	}{
		{name: "off by default", file: policiesYAML,
			want: ExternalMetricsSettings{ListenAddress: ":6443"}},
		{name: "from the file", file: "externalMetrics: {enabled: true, listenAddress: '127.0.0.1:7443', tls: {certFile: c.pem, keyFile: k.pem}}\n" + policiesYAML,
			want: ExternalMetricsSettings{Enabled: true, ListenAddress: "127.0.0.1:7443", TLS: ServingTLSSettings{CertFile: "c.pem", KeyFile: "k.pem"}}},
		{name: "the environment overrides the file", file: "externalMetrics: {enabled: false}\n" + policiesYAML,
			env:  map[string]string{"PRESCALE_EXTERNALMETRICS_ENABLED": "true"},
			want: ExternalMetricsSettings{Enabled: true, ListenAddress: ":6443"}},
		{name: "flags override both", file: "externalMetrics: {listenAddress: ':7443'}\n" + policiesYAML,
			args: []string{"--external-metrics", "--external-metrics-address", ":8443"},
			want: ExternalMetricsSettings{Enabled: true, ListenAddress: ":8443"}},
		{name: "unknown key", file: "externalMetrics: {port: 6443}\n" + policiesYAML, wantErr: "port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			s, _, err := loadConfig(writeFile(t, tc.file), runFlagSet(t, tc.args...))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one naming %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.ExternalMetrics != tc.want {
				t.Errorf("externalMetrics = %+v, want %+v", s.ExternalMetrics, tc.want)
			}
		})
	}
}
