package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/scaler"
	"github.com/prescale/prescale/scaler/external"
	"github.com/prescale/prescale/scaler/prom"
)

// runFlags maps `prescale run` flags to the settings they override.
var runFlags = []struct{ flag, key, usage string }{
	{"dry-run", "dryRun", "decide and report, never write the scale (a policy's dryRun overrides it)"},
	{"interval", "interval", "time between ticks"},
	{"prometheus-url", "prometheus.url", "Prometheus base URL"},
	{"listen-address", "listenAddress", "address of /metrics, /healthz, /readyz and /status"},
	{"leader-elect", "leaderElection.enabled", "elect a leader on a Lease; only the leader writes"},
	{"leader-election-namespace", "leaderElection.namespace", "namespace of the leader Lease"},
	{"external-metrics", "externalMetrics.enabled", "serve the policies' queries as the external metrics API (external.metrics.k8s.io) for HPAs"},
	{"external-metrics-address", "externalMetrics.listenAddress", "HTTPS address of the external metrics API"},
}

// newRunCmd returns "prescale run": the controller.
func newRunCmd(*viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run -f CONFIG.yaml",
		Short: "Run the controller: scale the policies' targets every interval",
		Long: `Run reads the policy file (global settings and policies), and every interval, for every
policy, queries Prometheus, decides with the HPA's math (plus the policy's forecast of its
load, fitted on the load's history at start-up), caps by the GPUs that can be placed, and
writes the target's scale subresource while it holds the leader Lease (never in dry-run).
Settings come from defaults, then the file, then PRESCALE_* environment variables
(PRESCALE_PROMETHEUS_URL, PRESCALE_DRYRUN, ...), then flags. The file is watched: a valid
new version takes effect at the next tick; an invalid one is logged and the last good one
keeps running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return run(ctx, cmd.Flags())
		},
	}
	f := cmd.Flags()
	f.StringP("file", "f", "", "policy file (global settings and policies)")
	f.String("kubeconfig", "", "kubeconfig file; empty: in-cluster configuration, or $KUBECONFIG")
	f.String("identity", "", "this instance's name in the Lease and as field manager of its writes (default: hostname and a random suffix)")
	f.Bool("dry-run", false, runFlags[0].usage)
	f.Duration("interval", 0, runFlags[1].usage)
	f.String("prometheus-url", "", runFlags[2].usage)
	f.String("listen-address", "", runFlags[3].usage)
	f.Bool("leader-elect", true, runFlags[4].usage)
	f.String("leader-election-namespace", "", runFlags[5].usage)
	f.Bool("external-metrics", false, runFlags[6].usage)
	f.String("external-metrics-address", "", runFlags[7].usage)
	return cmd
}

// newSettingsViper returns a viper with every default, the file's content, the environment
// and the changed flags, in that order of precedence (lowest first).
func newSettingsViper(content []byte, flags *pflag.FlagSet) (*viper.Viper, error) {
	v := viper.New()
	settingDefaults(v)
	v.SetConfigType("yaml")
	v.SetEnvPrefix("PRESCALE")
	v.SetEnvKeyReplacer(envKeyReplacer)
	v.AutomaticEnv()
	if flags != nil {
		for _, rf := range runFlags {
			if fl := flags.Lookup(rf.flag); fl != nil && fl.Changed {
				if err := v.BindPFlag(rf.key, fl); err != nil {
					return nil, fmt.Errorf("bind flag --%s: %w", rf.flag, err)
				}
			}
		}
	}
	if err := v.ReadConfig(bytes.NewReader(content)); err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return v, nil
}

// parseConfig checks a whole policy file: the policies first (every problem with its line),
// then the global settings, strictly decoded and validated (every problem at once).
func parseConfig(content []byte, flags *pflag.FlagSet) (Settings, []policy.Policy, error) {
	pf, err := policy.Parse(bytes.NewReader(content), settingKeys...)
	if err != nil {
		return Settings{}, nil, err
	}
	v, err := newSettingsViper(content, flags)
	if err != nil {
		return Settings{}, nil, err
	}
	s, err := loadSettings(v)
	if err != nil {
		return Settings{}, nil, err
	}
	if err := s.Validate(); err != nil {
		return Settings{}, nil, err
	}
	return s, pf.Policies, nil
}

// loadConfig reads and checks the file at path.
func loadConfig(path string, flags *pflag.FlagSet) (Settings, []policy.Policy, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, nil, fmt.Errorf("read policy file: %w", err)
	}
	return parseConfig(content, flags)
}

func run(ctx context.Context, flags *pflag.FlagSet) error {
	logger := klog.FromContext(ctx)
	file, _ := flags.GetString("file")
	if file == "" {
		return errors.New("no policy file: give -f FILE")
	}
	s, policies, err := loadConfig(file, flags)
	if err != nil {
		return fmt.Errorf("load %s: %w", file, err)
	}
	identity, _ := flags.GetString("identity")
	if identity == "" {
		identity = defaultIdentity()
	}
	opts := s.options(identity)

	kubeconfig, _ := flags.GetString("kubeconfig")
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = s.Kubernetes.QPS, s.Kubernetes.Burst, "prescale/"+identity
	popts, err := s.promOptions()
	if err != nil {
		return err
	}
	source, err := prom.New(popts)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "prescale_prometheus_requests_total",
		Help: "HTTP queries sent to Prometheus (an empty result costs a second one, to tell stale from empty)."},
		func() float64 { return float64(source.QueryCount()) }))
	c, kube, metrics, stopEvents, err := scaler.NewForConfig(ctx, cfg, opts, source, prom.Kind, reg, policies)
	if err != nil {
		return err
	}
	defer stopEvents()
	metrics.ReloadSuccessful.Set(1)
	metrics.ReloadTimestamp.SetToCurrentTime()

	ln, err := net.Listen("tcp", s.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.ListenAddress, err)
	}
	srv := &http.Server{Handler: c.Handler(reg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "HTTP server stopped")
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	if s.ExternalMetrics.Enabled {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		if err := serveExternalMetrics(ctx, cancel, s, kubeconfig, source, c); err != nil {
			return err
		}
	}

	go watchConfig(ctx, file, s.Interval, func() {
		ns, np, err := loadConfig(file, flags)
		if err != nil {
			metrics.ReloadSuccessful.Set(0)
			logger.Error(err, "Rejected the new configuration; the last good one keeps running", "file", file)
			return
		}
		if ns.options(identity) != opts || ns.leaderOptions() != s.leaderOptions() || ns.ListenAddress != s.ListenAddress ||
			ns.Prometheus.URL != s.Prometheus.URL || ns.ExternalMetrics != s.ExternalMetrics {
			logger.Info("Global settings changed; policies reloaded now, settings apply after a restart", "file", file)
		}
		c.SetPolicies(np)
		metrics.ReloadSuccessful.Set(1)
		metrics.ReloadTimestamp.SetToCurrentTime()
		logger.Info("Reloaded configuration", "file", file, "policies", len(np))
	})

	logger.Info("Starting prescale", "identity", identity, "policies", len(policies), "dryRun", s.DryRun,
		"interval", s.Interval, "prometheus", s.Prometheus.URL, "listen", ln.Addr().String(), "leaderElection", s.LeaderElection.Enabled)
	err = c.Run(ctx, kube, s.leaderOptions())
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// serveExternalMetrics starts the external metrics API over the controller's policies and
// source; if the server stops on its own, it cancels ctx with the reason.
func serveExternalMetrics(ctx context.Context, cancel context.CancelCauseFunc, s Settings, kubeconfig string,
	source scaler.MetricSource, c *scaler.Controller) error {
	p, err := external.NewProvider(external.Options{Source: source, Policies: c.Policies, Staleness: s.Staleness, Forecasts: c})
	if err != nil {
		return err
	}
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	o := external.ServeOptions{Address: s.ExternalMetrics.ListenAddress, CertFile: s.ExternalMetrics.TLS.CertFile,
		KeyFile: s.ExternalMetrics.TLS.KeyFile, Kubeconfig: kubeconfig}
	go func() {
		err := external.Serve(ctx, o, p)
		if err == nil {
			err = errors.New("external metrics server stopped")
		}
		if ctx.Err() == nil {
			cancel(err)
		}
	}()
	klog.FromContext(ctx).Info("Serving the external metrics API", "address", o.Address)
	return nil
}

func defaultIdentity() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}
