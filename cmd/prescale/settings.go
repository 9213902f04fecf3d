package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/config"
	"github.com/spf13/viper"
	"k8s.io/client-go/tools/leaderelection"

	"github.com/prescale/prescale/prom"
	"github.com/prescale/prescale/scaler"
)

// Settings are the policy file's global section. Every key has a default (registered with
// viper, so that PRESCALE_* environment variables reach it), the file overrides the
// defaults, the environment overrides the file, and flags override everything.
type Settings struct {
	Prometheus      PrometheusSettings      `mapstructure:"prometheus"`
	Interval        time.Duration           `mapstructure:"interval"`
	Staleness       time.Duration           `mapstructure:"staleness"`
	MissingAfter    time.Duration           `mapstructure:"missingAfter"`
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

// CapacitySettings configure the GPU allocation across policies.
type CapacitySettings struct {
	Mode string `mapstructure:"mode"`
	// Resources are the GPU kinds (names, or prefixes ending in *).
	Resources []string `mapstructure:"resources"`
	// Resource, when set, is the only GPU kind: the setting of files written before
	// resources, which it replaces.
	Resource         string         `mapstructure:"resource"`
	PendingAllowance int32          `mapstructure:"pendingAllowance"`
	Pools            []PoolSettings `mapstructure:"pools"`
	// Buffers (auto or off) and NodeLead: the CapacityBuffers of the policies with a
	// forecast, sized for the node lead time (the configured one until one is measured).
	Buffers  string        `mapstructure:"buffers"`
	NodeLead time.Duration `mapstructure:"nodeLead"`
}

// PoolSettings set one GPU kind's own Pending allowance.
type PoolSettings struct {
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
	// WatchTargets reads Deployments' and StatefulSets' replicas from informers.
	WatchTargets bool `mapstructure:"watchTargets"`
}

// ExternalMetricsSettings configure the external metrics API server (an HPA reads the
// policies' queries through it).
type ExternalMetricsSettings struct {
	Enabled       bool               `mapstructure:"enabled"`
	ListenAddress string             `mapstructure:"listenAddress"`
	TLS           ServingTLSSettings `mapstructure:"tls"`
	// Service is the Service in front of prescale that the APIService
	// v1beta1.external.metrics.k8s.io should route to; start-up reports another owner.
	Service ServiceSettings `mapstructure:"service"`
}

// ServiceSettings name a Service.
type ServiceSettings struct {
	Namespace string `mapstructure:"namespace"`
	Name      string `mapstructure:"name"`
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
		"missingAfter":                      o.MissingAfter,
		"dryRun":                            false,
		"syncConcurrency":                   o.SyncConcurrency,
		"capacity.mode":                     string(o.Capacity.Mode),
		"capacity.resources":                o.Capacity.Resources,
		"capacity.resource":                 "",
		"capacity.pendingAllowance":         0,
		"capacity.pools":                    []PoolSettings{},
		"capacity.buffers":                  string(o.Capacity.Buffers),
		"capacity.nodeLead":                 o.Capacity.NodeLead,
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
		"kubernetes.watchTargets":           o.WatchTargets,
		"externalMetrics.enabled":           false,
		"externalMetrics.listenAddress":     ":6443",
		"externalMetrics.tls.certFile":      "",
		"externalMetrics.tls.keyFile":       "",
		"externalMetrics.service.namespace": serviceNamespace(),
		"externalMetrics.service.name":      "prescale-external-metrics",
	} {
		v.SetDefault(key, val)
	}
}

// serviceNamespace is the default namespace of prescale's external metrics Service: the pod's
// (POD_NAMESPACE), else deploy/external-metrics.yaml's.
func serviceNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return "prescale"
}

// settingKeys are the policy file's top-level keys that hold global settings: policy.Parse
// skips them, and Settings decodes them strictly.
var settingKeys = []string{"prometheus", "interval", "staleness", "missingAfter", "dryRun", "syncConcurrency", "capacity",
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

// Validate reports every invalid global setting at once, one error per problem, each naming
// its YAML path. It is the one check of the global section: validate, start-up and every
// reload call it, through parseConfig. It neither reads the files the settings name nor
// dials anything, so that a file checks the same on a laptop as in the pod; start-up reads
// the files. Where a package already owns a rule (scaler.Options.Validate,
// prom.Options.Validate) it is asked, not copied.
func (s Settings) Validate() error {
	var errs []error
	// The identity is a flag, not a setting, and never empty at start-up (defaultIdentity).
	errs = append(errs, problems(s.options(scaler.DefaultOptions().Identity).Validate())...)
	errs = append(errs, s.validatePrometheus()...)
	errs = append(errs, s.LeaderElection.validate()...)
	if _, port, err := net.SplitHostPort(s.ListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("listenAddress: must be host:port, got %q", s.ListenAddress))
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		// A number, as the external metrics address: a port name ("http") resolves through
		// the machine's services database, which may differ between a laptop and the pod.
		// Port 0 is any free port; run logs the one it got.
		errs = append(errs, fmt.Errorf("listenAddress: must be host:port with a port number 0..65535, got %q", s.ListenAddress))
	}
	// client-go reads qps 0 as 5 and burst 0 as 10; with a positive qps, a negative burst lets
	// no request through. A negative qps turns client-side rate limiting off.
	if s.Kubernetes.QPS >= 0 && s.Kubernetes.Burst < 0 {
		errs = append(errs, fmt.Errorf("kubernetes.burst: must be >= 0, got %d", s.Kubernetes.Burst))
	}
	errs = append(errs, s.ExternalMetrics.validate()...)
	return errors.Join(errs...)
}

// validatePrometheus asks prom.Options.Validate, which owns the block's rules (url, timeout,
// podLabel, the HTTP client's auth and headers) and, unlike prom.New, reads no file. Its
// problems are named by their field: name them by their YAML path.
func (s Settings) validatePrometheus() []error {
	o, err := s.promOptions()
	if err != nil {
		return []error{err}
	}
	var errs []error
	for _, p := range problems(o.Validate()) {
		errs = append(errs, fmt.Errorf("prometheus.%w", p))
	}
	return errs
}

// validate checks the Lease's timings by client-go's rules (leaderelection.NewLeaderElector
// refuses to start otherwise), with the values, and that the Lease is named. Without leader
// election none of them is used.
func (l LeaderElectionSettings) validate() []error {
	if !l.Enabled {
		return nil
	}
	var errs []error
	if l.Namespace == "" {
		errs = append(errs, errors.New("leaderElection.namespace: required"))
	}
	if l.Name == "" {
		errs = append(errs, errors.New("leaderElection.name: required"))
	}
	if l.RetryPeriod <= 0 {
		errs = append(errs, fmt.Errorf("leaderElection.retryPeriod: must be > 0, got %s", l.RetryPeriod))
	}
	if minRenew := time.Duration(leaderelection.JitterFactor * float64(l.RetryPeriod)); l.RenewDeadline <= minRenew {
		errs = append(errs, fmt.Errorf("leaderElection.renewDeadline: must be more than %g × retryPeriod (%s), got %s",
			leaderelection.JitterFactor, minRenew, l.RenewDeadline))
	}
	if l.LeaseDuration <= l.RenewDeadline {
		errs = append(errs, fmt.Errorf("leaderElection.leaseDuration: must be more than renewDeadline (%s), got %s",
			l.RenewDeadline, l.LeaseDuration))
	}
	return errs
}

// validate checks the external metrics API's address and certificate pair, as its server
// (external.Serve) will, so that a bad one fails before start-up. Disabled, none is used.
func (e ExternalMetricsSettings) validate() []error {
	if !e.Enabled {
		return nil
	}
	var errs []error
	_, port, err := net.SplitHostPort(e.ListenAddress)
	var n uint64
	if err == nil {
		n, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil || n == 0 {
		// Port 0 (any free port) cannot be served: the API server's aggregator must know
		// the port, and the server's own address derivation refuses it.
		errs = append(errs, fmt.Errorf("externalMetrics.listenAddress: must be host:port with a port number 1..65535, got %q", e.ListenAddress))
	}
	if (e.TLS.CertFile == "") != (e.TLS.KeyFile == "") {
		errs = append(errs, fmt.Errorf("externalMetrics.tls: give both certFile and keyFile, or neither, got certFile %q and keyFile %q",
			e.TLS.CertFile, e.TLS.KeyFile))
	}
	if e.Service.Namespace == "" || e.Service.Name == "" {
		errs = append(errs, fmt.Errorf("externalMetrics.service: give both namespace and name, got namespace %q and name %q",
			e.Service.Namespace, e.Service.Name))
	}
	return errs
}

// problems splits an errors.Join into its errors; any other error is one problem, and nil
// none.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// options converts the settings into the controller's options.
func (s Settings) options(identity string) scaler.Options {
	return scaler.Options{
		Interval:         s.Interval,
		DryRun:           s.DryRun,
		Staleness:        s.Staleness,
		MissingAfter:     s.MissingAfter,
		QueryConcurrency: s.Prometheus.Concurrency,
		SyncConcurrency:  s.SyncConcurrency,
		Capacity:         s.Capacity.options(),
		WatchTargets:     s.Kubernetes.WatchTargets,
		Identity:         identity,
		Install:          installName(s.LeaderElection.Namespace, s.LeaderElection.Name),
	}
}

// options converts the capacity settings; resource, when set, replaces resources.
func (c CapacitySettings) options() scaler.CapacityOptions {
	o := scaler.CapacityOptions{Mode: scaler.CapacityMode(c.Mode), Resources: c.Resources, PendingAllowance: c.PendingAllowance,
		Buffers: scaler.BufferMode(c.Buffers), NodeLead: c.NodeLead}
	if c.Resource != "" {
		o.Resources = []string{c.Resource}
	}
	for _, p := range c.Pools {
		o.Pools = append(o.Pools, scaler.PoolOptions{Resource: p.Resource, PendingAllowance: p.PendingAllowance})
	}
	return o
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

// installName names an installation by its Lease (namespace and name), which two
// installations in one cluster never share: "<namespace>.<name>", as a label value (at most
// 63 characters: a longer one keeps its first 54 and a hash of the whole); "prescale"
// without a Lease.
func installName(namespace, name string) string {
	v := strings.Trim(namespace+"."+name, ".")
	if v == "" {
		return "prescale" // no Lease: leader election off, one instance
	}
	if len(v) <= 63 {
		return v
	}
	h := fnv.New32a()
	h.Write([]byte(v))
	return fmt.Sprintf("%s-%08x", strings.TrimRight(v[:54], "-."), h.Sum32())
}
