package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/prescale/prescale/scaler"
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
	if s.Staleness != 2*time.Minute || !slices.Equal(s.Capacity.Resources, scaler.DefaultResources) || s.Prometheus.PodLabel != "pod" || !s.LeaderElection.Enabled {
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
	t.Setenv("POD_NAMESPACE", "")
	// deploy/external-metrics.yaml's Service.
	defaultService := ServiceSettings{Namespace: "prescale", Name: "prescale-external-metrics"}
	for _, tc := range []struct {
		name    string
		file    string
		env     map[string]string
		args    []string
		want    ExternalMetricsSettings
		wantErr string
	}{
		{name: "off by default", file: policiesYAML,
			want: ExternalMetricsSettings{ListenAddress: ":6443", Service: defaultService}},
		{name: "from the file", file: "externalMetrics: {enabled: true, listenAddress: '127.0.0.1:7443', tls: {certFile: c.pem, keyFile: k.pem}}\n" + policiesYAML,
			want: ExternalMetricsSettings{Enabled: true, ListenAddress: "127.0.0.1:7443", TLS: ServingTLSSettings{CertFile: "c.pem", KeyFile: "k.pem"}, Service: defaultService}},
		{name: "the environment overrides the file", file: "externalMetrics: {enabled: false}\n" + policiesYAML,
			env:  map[string]string{"PRESCALE_EXTERNALMETRICS_ENABLED": "true"},
			want: ExternalMetricsSettings{Enabled: true, ListenAddress: ":6443", Service: defaultService}},
		{name: "flags override both", file: "externalMetrics: {listenAddress: ':7443'}\n" + policiesYAML,
			args: []string{"--external-metrics", "--external-metrics-address", ":8443"},
			want: ExternalMetricsSettings{Enabled: true, ListenAddress: ":8443", Service: defaultService}},
		{name: "the APIService's Service from the file", file: "externalMetrics: {service: {namespace: metrics, name: prescale-api}}\n" + policiesYAML,
			want: ExternalMetricsSettings{ListenAddress: ":6443", Service: ServiceSettings{Namespace: "metrics", Name: "prescale-api"}}},
		{name: "the Service's namespace is the pod's", file: policiesYAML, env: map[string]string{"POD_NAMESPACE": "ops"},
			want: ExternalMetricsSettings{ListenAddress: ":6443", Service: ServiceSettings{Namespace: "ops", Name: "prescale-external-metrics"}}},
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

// Settings.Validate, each rule on both sides of its edge. The base is the defaults.
func TestSettingsValidate(t *testing.T) {
	defaults, _, err := parseConfig([]byte(policiesYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(*Settings)
		// want is the whole error; empty: valid.
		want string
	}{
		{name: "the defaults", change: func(*Settings) {}},
		{name: "interval of 1s", change: func(s *Settings) { s.Interval = time.Second }},
		{name: "interval under 1s (scaler.Options.Validate)", change: func(s *Settings) { s.Interval = time.Second - 1 },
			want: "interval: must be at least 1s, got 999.999999ms"},
		{name: "TLS files are not read", change: func(s *Settings) {
			s.Prometheus.TLS = TLSSettings{CAFile: "/no/such/ca.pem", CertFile: "/no/such/cert.pem", KeyFile: "/no/such/key.pem"}
			s.Prometheus.BearerTokenFile = "/no/such/token"
		}},
		{name: "a relative Prometheus URL (prom.New)", change: func(s *Settings) { s.Prometheus.URL = "prometheus:9090" },
			want: `prometheus.url: must be an absolute http or https URL, got "prometheus:9090"`},
		{name: "bearer token and basic auth", change: func(s *Settings) {
			s.Prometheus.BearerTokenFile, s.Prometheus.BasicAuth.Username = "/t", "u"
		}, want: "prometheus: bearerTokenFile and basicAuth are exclusive"},
		// retryPeriod 2s: renewDeadline must exceed 1.2 × 2s = 2.4s.
		{name: "renewDeadline just over 1.2 × retryPeriod", change: func(s *Settings) {
			s.LeaderElection.RetryPeriod, s.LeaderElection.RenewDeadline = 2*time.Second, 2400*time.Millisecond+1
		}},
		{name: "renewDeadline at 1.2 × retryPeriod", change: func(s *Settings) {
			s.LeaderElection.RetryPeriod, s.LeaderElection.RenewDeadline = 2*time.Second, 2400*time.Millisecond
		}, want: "leaderElection.renewDeadline: must be more than 1.2 × retryPeriod (2.4s), got 2.4s"},
		{name: "leaseDuration just over renewDeadline", change: func(s *Settings) { s.LeaderElection.LeaseDuration = s.LeaderElection.RenewDeadline + 1 }},
		{name: "leaseDuration at renewDeadline", change: func(s *Settings) { s.LeaderElection.LeaseDuration = s.LeaderElection.RenewDeadline },
			want: "leaderElection.leaseDuration: must be more than renewDeadline (10s), got 10s"},
		{name: "retryPeriod 0", change: func(s *Settings) { s.LeaderElection.RetryPeriod = 0 },
			want: "leaderElection.retryPeriod: must be > 0, got 0s"},
		{name: "an unnamed Lease", change: func(s *Settings) { s.LeaderElection.Name, s.LeaderElection.Namespace = "", "" },
			want: "leaderElection.namespace: required\nleaderElection.name: required"},
		{name: "without leader election, its settings are unused", change: func(s *Settings) {
			s.LeaderElection = LeaderElectionSettings{Enabled: false}
		}},
		{name: "listenAddress on the highest port", change: func(s *Settings) { s.ListenAddress = ":65535" }},
		{name: "listenAddress on any free port", change: func(s *Settings) { s.ListenAddress = "127.0.0.1:0" }},
		{name: "listenAddress past the highest port", change: func(s *Settings) { s.ListenAddress = ":99999" },
			want: `listenAddress: must be host:port with a port number 0..65535, got ":99999"`},
		{name: "listenAddress with a port that is no number", change: func(s *Settings) { s.ListenAddress = "nohost:abc" },
			want: `listenAddress: must be host:port with a port number 0..65535, got "nohost:abc"`},
		{name: "listenAddress with a port name, which depends on the machine", change: func(s *Settings) { s.ListenAddress = "localhost:http" },
			want: `listenAddress: must be host:port with a port number 0..65535, got "localhost:http"`},
		{name: "listenAddress with a negative port", change: func(s *Settings) { s.ListenAddress = ":-1" },
			want: `listenAddress: must be host:port with a port number 0..65535, got ":-1"`},
		{name: "listenAddress without a port", change: func(s *Settings) { s.ListenAddress = "8080" },
			want: `listenAddress: must be host:port, got "8080"`},
		{name: "burst 0 (client-go's default)", change: func(s *Settings) { s.Kubernetes.Burst = 0 }},
		{name: "negative burst", change: func(s *Settings) { s.Kubernetes.Burst = -1 },
			want: "kubernetes.burst: must be >= 0, got -1"},
		{name: "negative burst without rate limiting", change: func(s *Settings) { s.Kubernetes.QPS, s.Kubernetes.Burst = -1, -1 }},
		{name: "external metrics on the highest port", change: func(s *Settings) {
			s.ExternalMetrics.Enabled, s.ExternalMetrics.ListenAddress = true, ":65535"
		}},
		{name: "external metrics past the highest port", change: func(s *Settings) {
			s.ExternalMetrics.Enabled, s.ExternalMetrics.ListenAddress = true, ":65536"
		}, want: `externalMetrics.listenAddress: must be host:port with a port number 1..65535, got ":65536"`},
		{name: "external metrics on port 0", change: func(s *Settings) {
			s.ExternalMetrics.Enabled, s.ExternalMetrics.ListenAddress = true, ":0"
		}, want: `externalMetrics.listenAddress: must be host:port with a port number 1..65535, got ":0"`},
		{name: "external metrics with a certificate and no key", change: func(s *Settings) {
			s.ExternalMetrics.Enabled, s.ExternalMetrics.TLS = true, ServingTLSSettings{CertFile: "c.pem"}
		}, want: `externalMetrics.tls: give both certFile and keyFile, or neither, got certFile "c.pem" and keyFile ""`},
		{name: "external metrics without the Service's namespace", change: func(s *Settings) {
			s.ExternalMetrics.Enabled, s.ExternalMetrics.Service.Namespace = true, ""
		}, want: `externalMetrics.service: give both namespace and name, got namespace "" and name "prescale-external-metrics"`},
		{name: "external metrics off: its settings are unused", change: func(s *Settings) {
			s.ExternalMetrics = ExternalMetricsSettings{ListenAddress: "nowhere", TLS: ServingTLSSettings{KeyFile: "k.pem"}}
		}},
		{name: "capacity.resource, when set, is the only GPU kind", change: func(s *Settings) { s.Capacity.Resource = "example.com/tpu" }},
		{name: "a pool of a kind named by a prefix", change: func(s *Settings) {
			s.Capacity.Pools = []PoolSettings{{Resource: "nvidia.com/mig-1g.10gb", PendingAllowance: 2}}
		}},
		{name: "capacity: bad kinds and pools, each named", change: func(s *Settings) {
			s.Capacity.Resources = []string{"nvidia.com/gpu", "nvidia.com/mig-*x", "nvidia.com/gpu"}
			s.Capacity.Pools = []PoolSettings{{Resource: "amd.com/gpu", PendingAllowance: -1}, {Resource: "nvidia.com/gpu"}, {Resource: "nvidia.com/gpu"}}
		}, want: `capacity.resources[1]: must be a resource name, or a prefix ending in *, got "nvidia.com/mig-*x"` + "\n" +
			`capacity.resources[2]: duplicate "nvidia.com/gpu", also capacity.resources[0]` + "\n" +
			`capacity.pools[0].resource: must be one of capacity.resources [nvidia.com/gpu nvidia.com/mig-*x nvidia.com/gpu], got "amd.com/gpu"` + "\n" +
			"capacity.pools[0].pendingAllowance: must be >= 0, got -1\n" +
			`capacity.pools[2].resource: duplicate "nvidia.com/gpu", also capacity.pools[1]`},
		{name: "capacity buffers off, a node lead of an hour", change: func(s *Settings) { s.Capacity.Buffers, s.Capacity.NodeLead = "off", time.Hour }},
		{name: "capacity buffers: an unknown mode and no node lead", change: func(s *Settings) { s.Capacity.Buffers, s.Capacity.NodeLead = "on", 0 },
			want: `capacity.buffers: must be auto or off, got "on"` + "\ncapacity.nodeLead: must be within 1s..1h, got 0s"},
		{name: "capacity buffers: a node lead past an hour", change: func(s *Settings) { s.Capacity.NodeLead = time.Hour + time.Second },
			want: "capacity.nodeLead: must be within 1s..1h, got 1h0m1s"},
		{name: "no GPU kind", change: func(s *Settings) { s.Capacity.Resources = nil },
			want: "capacity.resources: at least one GPU kind is required"},
		{name: "every problem at once, one per line", change: func(s *Settings) {
			s.Staleness, s.Prometheus.URL, s.Prometheus.PodLabel, s.LeaderElection.RetryPeriod = 0, "", "pod-name", 0
		}, want: "staleness: must be > 0, got 0s\nprometheus.url: required\n" +
			`prometheus.podLabel: must be a label name ([a-zA-Z_][a-zA-Z0-9_]*), got "pod-name"` + "\nleaderElection.retryPeriod: must be > 0, got 0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaults
			tc.change(&s)
			got := ""
			if err := s.Validate(); err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}

// settingLines finds the keys of the global settings, at any depth, and nothing under
// policies; a flag that overrides a setting takes its line away (withLines).
func TestSettingLines(t *testing.T) {
	content := []byte(`# comment
interval: 5s
prometheus:
  url: http://p:9090
  tls: {caFile: /ca.pem}
policies:
  - name: web
    interval: 1s
`)
	want := map[string]int{"interval": 2, "prometheus": 3, "prometheus.url": 4, "prometheus.tls": 5, "prometheus.tls.caFile": 5}
	if diff := cmp.Diff(want, settingLines(content)); diff != "" {
		t.Errorf("settingLines (-want +got):\n%s", diff)
	}

	problems := errors.Join(errors.New("interval: must be at least 1s, got 500ms"), errors.New("prometheus.url: required"),
		errors.New("staleness: must be > 0, got 0s"))
	got := withLines(problems, content, runFlagSet(t, "--interval", "500ms")).Error()
	// interval comes from the flag, staleness from its default: neither has a line.
	wantMsg := "interval: must be at least 1s, got 500ms\nprometheus.url: required (line 4)\nstaleness: must be > 0, got 0s"
	if diff := cmp.Diff(wantMsg, got); diff != "" {
		t.Errorf("withLines (-want +got):\n%s", diff)
	}
}

// An installation is named by its Lease, as a label value.
func TestInstallName(t *testing.T) {
	long := strings.Repeat("n", 63)
	for _, tc := range []struct{ namespace, name, want string }{
		{"prescale", "prescale", "prescale.prescale"},
		{"", "", "prescale"},
		{"ml", "", "ml"},
		// 63 + 1 + 8 characters: the first 54 and the FNV-1a hash of the whole.
		{long, "prescale", strings.Repeat("n", 54) + "-" + fmt.Sprintf("%08x", fnv32a(long+".prescale"))},
	} {
		got := installName(tc.namespace, tc.name)
		if got != tc.want || len(validation.IsValidLabelValue(got)) > 0 {
			t.Errorf("installName(%q, %q) = %q, want %q (a label value)", tc.namespace, tc.name, got, tc.want)
		}
	}
}

func fnv32a(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}
