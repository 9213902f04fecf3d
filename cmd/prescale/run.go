package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/prom"
	"github.com/prescale/prescale/scaler"
)

// settingFlags are the run flags that override a global setting: flag name to the key of
// the setting. A flag overrides only when given (see newSettingsViper).
var settingFlags = map[string]string{
	"dry-run":                   "dryRun",
	"interval":                  "interval",
	"prometheus-url":            "prometheus.url",
	"listen-address":            "listenAddress",
	"leader-elect":              "leaderElection.enabled",
	"leader-election-namespace": "leaderElection.namespace",
	"external-metrics":          "externalMetrics.enabled",
	"external-metrics-address":  "externalMetrics.listenAddress",
}

// newRunCmd returns "prescale run": the controller.
func newRunCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run -f CONFIG.yaml",
		Short: "Run the controller: scale the policies' targets every interval",
		Long: `Run reads the policy file (global settings and policies), and every interval, for every
policy, queries Prometheus, decides with the HPA's math (plus the policy's forecast of its
load, fitted on the load's history at start-up), caps by the GPUs that can be placed, and
writes the target's scale subresource while it holds the leader Lease (never in dry-run).
The file is --file, or PRESCALE_FILE. Settings come from defaults, then the file, then
PRESCALE_* environment variables (PRESCALE_PROMETHEUS_URL, PRESCALE_DRYRUN, ...), then
flags. The file is watched: the policies and dryRun of a valid new version take effect at
the next tick, its other global settings after a restart (a change to one is logged); an
invalid version is logged and the last good one keeps running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return run(ctx, runOptionsFrom(v, cmd.Flags()))
		},
	}
	f := cmd.Flags()
	f.StringP("file", "f", "", "policy file (global settings and policies)")
	f.String("kubeconfig", "", "kubeconfig file; empty: $KUBECONFIG, then ~/.kube/config, then the in-cluster configuration")
	f.String("identity", "", "this instance's name in the Lease and as field manager of its writes (default: hostname and a random suffix)")
	f.Bool("profiling", false, "also serve Go's profiles (net/http/pprof) under /debug/pprof/ on the listen address")
	// The flags of settingFlags.
	f.Bool("dry-run", false, "decide and report, never write the scale (a policy's dryRun overrides it)")
	f.Duration("interval", 0, "time between ticks")
	f.String("prometheus-url", "", "Prometheus base URL")
	f.String("listen-address", "", "address of /metrics, /healthz, /readyz and /status")
	f.Bool("leader-elect", true, "elect a leader on a Lease; only the leader writes")
	f.String("leader-election-namespace", "", "namespace of the leader Lease")
	f.Bool("external-metrics", false, "serve the policies' queries as the external metrics API (external.metrics.k8s.io) for HPAs")
	f.String("external-metrics-address", "", "HTTPS address of the external metrics API")
	return cmd
}

// runOptions are what `prescale run` is given beyond the policy file's settings.
type runOptions struct {
	file       string
	kubeconfig string
	identity   string
	// profiling serves /debug/pprof/ beside /metrics.
	profiling bool
	// flags hold the setting flags (settingFlags); the ones given override the file.
	flags *pflag.FlagSet
}

// runOptionsFrom reads run's own options from v, which holds its flags and PRESCALE_*
// environment variables (PRESCALE_FILE, as validate reads it), flags first.
func runOptionsFrom(v *viper.Viper, flags *pflag.FlagSet) runOptions {
	o := runOptions{file: v.GetString("file"), kubeconfig: v.GetString("kubeconfig"), identity: v.GetString("identity"),
		profiling: v.GetBool("profiling"), flags: flags}
	if o.identity == "" {
		o.identity = defaultIdentity()
	}
	return o
}

// run is `prescale run`, wiring only: load the configuration, build the clients, the metrics
// registry and the controller, serve HTTP and (when enabled) the external metrics API, watch
// the file, and run the controller under leader election until ctx ends.
func run(ctx context.Context, o runOptions) error {
	if o.file == "" {
		return errors.New("no policy file: give -f FILE")
	}
	s, policies, err := loadConfig(o.file, o.flags)
	if err != nil {
		return fmt.Errorf("load %s: %w", o.file, err)
	}
	kcfg, err := kubeConfig(o.kubeconfig, s.Kubernetes, o.identity)
	if err != nil {
		return err
	}
	source, err := newSource(s)
	if err != nil {
		return err
	}
	reg := newRegistry(source)
	c, kube, metrics, stopEvents, err := scaler.NewForConfig(ctx, kcfg, s.options(o.identity), source, prom.Kind, reg, policies)
	if err != nil {
		return err
	}
	defer stopEvents()
	markReloaded(metrics.ReloadSuccessful, metrics.ReloadTimestamp)

	handler := c.Handler(reg)
	if o.profiling {
		handler = withProfiling(handler)
	}
	addr, stopHTTP, err := serveHTTP(ctx, s.ListenAddress, handler)
	if err != nil {
		return err
	}
	defer stopHTTP()
	// A server that stops on its own cancels ctx with the reason, which run returns.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if s.ExternalMetrics.Enabled {
		if err := serveExternalMetrics(ctx, cancel, s, o.kubeconfig, source, c); err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(kcfg)
		if err != nil {
			return fmt.Errorf("dynamic client: %w", err)
		}
		checkAPIService(ctx, dyn, s.ExternalMetrics.Service, newAPIServiceConflict(reg))
	}
	r := &reloader{file: o.file, flags: o.flags, running: s, live: c,
		successful: metrics.ReloadSuccessful, timestamp: metrics.ReloadTimestamp}
	go watchConfig(ctx, o.file, s.Interval, func() { r.reload(ctx) })

	klog.FromContext(ctx).Info("Starting prescale", "identity", o.identity, "policies", len(policies), "dryRun", s.DryRun,
		"interval", s.Interval, "prometheus", prom.RedactedURL(s.Prometheus.URL), "listen", addr, "leaderElection", s.LeaderElection.Enabled)
	return lead(ctx, c, kube, s.leaderOptions())
}

// lead runs the controller, electing a leader on the Lease when lo says so, until ctx ends.
// When a server run depends on ended ctx, its reason is the error. Stopped (SIGTERM) before
// the informer caches synced, it says why they had not (the API server was never reached,
// say) and returns nil: the stop was asked for.
func lead(ctx context.Context, c *scaler.Controller, kube kubernetes.Interface, lo scaler.LeaderOptions) error {
	err := c.Run(ctx, kube, lo)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if errors.Is(err, scaler.ErrNotSynced) {
		klog.FromContext(ctx).Info("Stopped while waiting for the informer caches", "err", err)
		return nil
	}
	return err
}

// defaultIdentity is the host name and a random suffix: two instances on one host differ.
func defaultIdentity() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}
