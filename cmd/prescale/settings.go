package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/spf13/viper"

	"github.com/prescale/prescale/scaler"
	"github.com/prescale/prescale/scaler/prom"
)

// Settings are the policy file's global section. Every key has a default (registered with
// viper, so that PRESCALE_* environment variables reach it), the file overrides the
// defaults, the environment overrides the file, and flags override everything.
type Settings struct {
	Prometheus      PrometheusSettings      `mapstructure:"prometheus"`
	Interval        time.Duration           `mapstructure:"interval"`
	Staleness       time.Duration           `mapstructure:"staleness"`
	DryRun          bool                    `mapstructure:"dryRun"`
	SyncConcurrency int                     `mapstructure:"syncConcurrency"`
	Capacity        CapacitySettings        `mapstructure:"capacity"`
	LeaderElection  LeaderElectionSettings  `mapstructure:"leaderElection"`
	ListenAddress   string                  `mapstructure:"listenAddress"`
	Kubernetes      KubernetesSettings      `mapstructure:"kubernetes"`
	ExternalMetrics ExternalMetricsSettings `mapstructure:"externalMetrics"`
	// Policies are read by policy.Parse; listed here so that strict decoding accepts them.
	Policies any `mapstructure:"policies"`
}

// PrometheusSettings say how to reach Prometheus.
type PrometheusSettings struct {
	URL             string            `mapstructure:"url"`
	Timeout         time.Duration     `mapstructure:"timeout"`
	PodLabel        string            `mapstructure:"podLabel"`
	Concurrency     int               `mapstructure:"concurrency"`
	BearerTokenFile string            `mapstructure:"bearerTokenFile"`
	BasicAuth       BasicAuthSettings `mapstructure:"basicAuth"`
	TLS             TLSSettings       `mapstructure:"tls"`
	Headers         map[string]string `mapstructure:"headers"`
}

// BasicAuthSettings: the password is read from a file, never written in the policy file.
type BasicAuthSettings struct {
	Username     string `mapstructure:"username"`
	PasswordFile string `mapstructure:"passwordFile"`
}

// TLSSettings for Prometheus over HTTPS; verification stays on unless insecureSkipVerify.
type TLSSettings struct {
	CAFile             string `mapstructure:"caFile"`
	CertFile           string `mapstructure:"certFile"`
	KeyFile            string `mapstructure:"keyFile"`
	ServerName         string `mapstructure:"serverName"`
	InsecureSkipVerify bool   `mapstructure:"insecureSkipVerify"`
}

// CapacitySettings configure the GPU capacity cap.
type CapacitySettings struct {
	Mode             string `mapstructure:"mode"`
	Resource         string `mapstructure:"resource"`
	PendingAllowance int32  `mapstructure:"pendingAllowance"`
}

// LeaderElectionSettings configure the Lease.
type LeaderElectionSettings struct {
	Enabled       bool          `mapstructure:"enabled"`
	Namespace     string        `mapstructure:"namespace"`
	Name          string        `mapstructure:"name"`
	LeaseDuration time.Duration `mapstructure:"leaseDuration"`
	RenewDeadline time.Duration `mapstructure:"renewDeadline"`
	RetryPeriod   time.Duration `mapstructure:"retryPeriod"`
	// HotStandby: followers decide every tick as the leader does, and never write.
	HotStandby bool `mapstructure:"hotStandby"`
}

// KubernetesSettings tune the API client.
type KubernetesSettings struct {
	QPS   float32 `mapstructure:"qps"`
	Burst int     `mapstructure:"burst"`
}

// ExternalMetricsSettings configure the external metrics API server (an HPA reads the
// policies' queries through it).
type ExternalMetricsSettings struct {
	Enabled       bool               `mapstructure:"enabled"`
	ListenAddress string             `mapstructure:"listenAddress"`
	TLS           ServingTLSSettings `mapstructure:"tls"`
}

// ServingTLSSettings are a server's certificate and key files (PEM).
type ServingTLSSettings struct {
	CertFile string `mapstructure:"certFile"`
	KeyFile  string `mapstructure:"keyFile"`
}

// settingDefaults registers every key with its default.
func settingDefaults(v *viper.Viper) {
	o, lo := scaler.DefaultOptions(), scaler.DefaultLeaderOptions()
	ns := os.Getenv("POD_NAMESPACE")
	if ns == "" {
		ns = lo.Namespace
	}
	for key, val := range map[string]any{
		"prometheus.url":                    "http://localhost:9090",
		"prometheus.timeout":                prom.DefaultTimeout,
		"prometheus.podLabel":               prom.DefaultPodLabel,
		"prometheus.concurrency":            o.QueryConcurrency,
		"prometheus.bearerTokenFile":        "",
		"prometheus.basicAuth.username":     "",
		"prometheus.basicAuth.passwordFile": "",
		"prometheus.tls.caFile":             "",
		"prometheus.tls.certFile":           "",
		"prometheus.tls.keyFile":            "",
		"prometheus.tls.serverName":         "",
		"prometheus.tls.insecureSkipVerify": false,
		"prometheus.headers":                map[string]string{},
		"interval":                          o.Interval,
		"staleness":                         o.Staleness,
		"dryRun":                            false,
		"syncConcurrency":                   o.SyncConcurrency,
		"capacity.mode":                     string(o.Capacity.Mode),
		"capacity.resource":                 o.Capacity.Resource,
		"capacity.pendingAllowance":         0,
		"leaderElection.enabled":            lo.Enabled,
		"leaderElection.namespace":          ns,
		"leaderElection.name":               lo.Name,
		"leaderElection.leaseDuration":      lo.LeaseDuration,
		"leaderElection.renewDeadline":      lo.RenewDeadline,
		"leaderElection.retryPeriod":        lo.RetryPeriod,
		"leaderElection.hotStandby":         false,
		"listenAddress":                     ":8080",
		"kubernetes.qps":                    500,
		"kubernetes.burst":                  1000,
		"externalMetrics.enabled":           false,
		"externalMetrics.listenAddress":     ":6443",
		"externalMetrics.tls.certFile":      "",
		"externalMetrics.tls.keyFile":       "",
	} {
		v.SetDefault(key, val)
	}
}

// settingKeys are the policy file's top-level keys that hold global settings: policy.Parse
// skips them, and Settings decodes them strictly.
var settingKeys = []string{"prometheus", "interval", "staleness", "dryRun", "syncConcurrency", "capacity",
	"leaderElection", "listenAddress", "kubernetes", "externalMetrics"}

// loadSettings reads the settings from v (file, environment, flags) strictly: a key inside a
// settings block that Settings does not know is an error.
func loadSettings(v *viper.Viper) (Settings, error) {
	var s Settings
	if err := v.UnmarshalExact(&s); err != nil {
		return s, fmt.Errorf("settings: %w", err)
	}
	return s, nil
}

// options converts the settings into the controller's options.
func (s Settings) options(identity string) scaler.Options {
	return scaler.Options{
		Interval:         s.Interval,
		DryRun:           s.DryRun,
		Staleness:        s.Staleness,
		QueryConcurrency: s.Prometheus.Concurrency,
		SyncConcurrency:  s.SyncConcurrency,
		Capacity: scaler.CapacityOptions{Mode: scaler.CapacityMode(s.Capacity.Mode), Resource: s.Capacity.Resource,
			PendingAllowance: s.Capacity.PendingAllowance},
		Identity: identity,
	}
}

func (s Settings) leaderOptions() scaler.LeaderOptions {
	l := s.LeaderElection
	return scaler.LeaderOptions{Enabled: l.Enabled, Namespace: l.Namespace, Name: l.Name,
		LeaseDuration: l.LeaseDuration, RenewDeadline: l.RenewDeadline, RetryPeriod: l.RetryPeriod, HotStandby: l.HotStandby}
}

// promOptions converts the Prometheus settings into the source's options, with
// prometheus/common's HTTP client configuration doing auth and TLS.
func (s Settings) promOptions() (prom.Options, error) {
	p := s.Prometheus
	hc := config.DefaultHTTPClientConfig
	if p.BearerTokenFile != "" {
		hc.Authorization = &config.Authorization{Type: "Bearer", CredentialsFile: p.BearerTokenFile}
	}
	if p.BasicAuth.Username != "" || p.BasicAuth.PasswordFile != "" {
		if p.BearerTokenFile != "" {
			return prom.Options{}, errors.New("prometheus: bearerTokenFile and basicAuth are exclusive")
		}
		hc.BasicAuth = &config.BasicAuth{Username: p.BasicAuth.Username, PasswordFile: p.BasicAuth.PasswordFile}
	}
	hc.TLSConfig = config.TLSConfig{CAFile: p.TLS.CAFile, CertFile: p.TLS.CertFile, KeyFile: p.TLS.KeyFile,
		ServerName: p.TLS.ServerName, InsecureSkipVerify: p.TLS.InsecureSkipVerify}
	if len(p.Headers) > 0 {
		h := &config.Headers{Headers: map[string]config.Header{}}
		for k, val := range p.Headers {
			h.Headers[k] = config.Header{Values: []string{val}}
		}
		hc.HTTPHeaders = h
	}
	return prom.Options{URL: p.URL, Timeout: p.Timeout, PodLabel: p.PodLabel, HTTP: hc}, nil
}

// envKeyReplacer maps a key to its environment variable: prometheus.url is
// PRESCALE_PROMETHEUS_URL, leaderElection.enabled is PRESCALE_LEADERELECTION_ENABLED.
var envKeyReplacer = strings.NewReplacer(".", "_", "-", "_")
