// Command prescale-sim runs the sandbox's simulated GPU inference service against a
// Deployment: it replays a load, shares it among the Deployment's Ready pods with the
// backtest model's fluid queue, and serves their metrics on /metrics: the simulator's own
// dialect by default, or with --server the series of vLLM, TGI, SGLang or Triton exactly
// (and with --dcgm and --gateway those of dcgm-exporter and the Gateway API Inference
// Extension).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/sandbox/sim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

type flags struct {
	kubeconfig, namespace, deployment, listen, trace string
	compression, targetUtilization                   float64
	tick, duration, slo                              time.Duration
	peakReplicas, batchSize                          int
	seed                                             uint64
	report                                           bool

	server, model, lengths string
	dcgm, gateway          bool
	dcgmInterval           time.Duration
	maxModelLen            int
}

func newRoot() *cobra.Command {
	var fl flags
	cmd := &cobra.Command{
		Use:           "prescale-sim",
		Short:         "A simulated GPU inference service that exports a real server's metrics (vLLM, TGI, SGLang, Triton) for a Deployment's Ready pods",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          func(cmd *cobra.Command, _ []string) error { return run(cmd.Context(), fl) },
	}
	f := cmd.Flags()
	f.StringVar(&fl.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster (env KUBECONFIG)")
	f.StringVar(&fl.namespace, "namespace", "default", "namespace of the Deployment")
	f.StringVar(&fl.deployment, "deployment", "", "the Deployment whose Ready pods serve the load")
	f.StringVar(&fl.listen, "listen", envOr("PRESCALE_SIM_ADDR", "127.0.0.1:9400"), "address of /metrics (env PRESCALE_SIM_ADDR, as the sandbox's Prometheus expects)")
	f.StringVar(&fl.trace, "trace", "", "per-minute CSV (minute,requests); default: the built-in generator")
	f.Float64Var(&fl.compression, "compression", 10, "model seconds per real second")
	f.DurationVar(&fl.tick, "tick", 15*time.Second, "model time of one tick")
	f.DurationVar(&fl.duration, "duration", 0, "model time to replay; 0 runs until interrupted")
	f.IntVar(&fl.peakReplicas, "peak-replicas", 10, "replicas the peak minute needs at the target utilization (sets the per-pod capacity)")
	f.Float64Var(&fl.targetUtilization, "target-utilization", 0.7, "target GPU utilization, 0..1, for the capacity")
	f.IntVar(&fl.batchSize, "batch-size", 16, "running-request slots per pod")
	f.DurationVar(&fl.slo, "slo", 2*time.Second, "allowed queueing delay, for the summary")
	f.Uint64Var(&fl.seed, "seed", 42, "seed of the built-in generator and of the request sizes")
	f.BoolVar(&fl.report, "report", false, "print a line per tick")
	f.StringVar(&fl.server, "server", string(sim.ServerPrescale), fmt.Sprintf("what each Ready pod exports: one of %v (prescale: the simulator's own series)", sim.Servers))
	f.BoolVar(&fl.dcgm, "dcgm", false, "also export dcgm-exporter's per-GPU series (needs --server other than prescale)")
	f.DurationVar(&fl.dcgmInterval, "dcgm-interval", 30*time.Second, "dcgm-exporter's collection interval, model time")
	f.BoolVar(&fl.gateway, "gateway", false, "also export the Gateway API Inference Extension endpoint picker's series (needs --server other than prescale)")
	f.StringVar(&fl.model, "model", "", "served model name in the servers' and gateway's labels (default: the Deployment's name)")
	f.StringVar(&fl.lengths, "lengths", "", "CSV of request sizes (columns ContextTokens, GeneratedTokens, as the Azure LLM traces); default: a built-in distribution")
	f.IntVar(&fl.maxModelLen, "max-model-len", 16384, "the servers' context length in tokens")
	_ = cmd.MarkFlagRequired("deployment")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	f.AddGoFlagSet(klogFlags)
	return cmd
}

func run(ctx context.Context, fl flags) error {
	logger := klog.FromContext(ctx)
	var load sim.Load = sim.Generator{
		Mean: 1500, DailyAmplitude: 0.5, TrendPerDay: 0.05, Noise: 0.05,
		BurstsPerDay: 6, BurstMinutes: 10, BurstFactor: 1.8, Seed: fl.seed,
	}
	if fl.trace != "" {
		t, err := sim.ReadCSVFile(fl.trace)
		if err != nil {
			return err
		}
		load = t
	}
	// Size the capacity on the whole load (a day of the generator at least, or the
	// whole trace), so that it does not depend on how long this run replays.
	minutes := max(1440, int(math.Ceil(fl.duration.Minutes())))
	if t, ok := load.(sim.Trace); ok {
		minutes = len(t)
	}
	mu := sim.Mu(sim.Peak(load, minutes), fl.peakReplicas, fl.targetUtilization)

	cfg, err := clientcmd.BuildConfigFromFlags("", fl.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig %s: %w", fl.kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	o := sim.Options{
		Namespace: fl.namespace, Deployment: fl.deployment, Load: load, Mu: mu,
		Tick: fl.tick, Compression: fl.compression, Duration: fl.duration,
		BatchSize: fl.batchSize, SLO: fl.slo,
		Server: sim.Server(fl.server), DCGM: fl.dcgm, DCGMInterval: fl.dcgmInterval, Gateway: fl.gateway,
		Model: fl.model, MaxModelLen: fl.maxModelLen, Seed: fl.seed,
	}
	if fl.lengths != "" {
		l, err := sim.ReadLengthsFile(fl.lengths)
		if err != nil {
			return err
		}
		o.Lengths = l
	}
	if fl.report {
		o.OnTick = func(r sim.Report) {
			fmt.Printf("t=%s load=%.1f req/s desired=%d ready=%d starting=%d pending=%d queue=%.0f util=%.0f%%\n",
				r.ModelTime, r.Lambda, r.Desired, r.Ready, r.Starting, r.Pending, r.Queue, r.Util)
		}
	}
	s, err := sim.New(client, o)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", fl.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", fl.listen, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Serving metrics stopped")
		}
	}()
	defer srv.Close()
	logger.Info("Serving simulated service", "deployment", klog.KRef(fl.namespace, fl.deployment), "metrics", "http://"+lis.Addr().String()+"/metrics", "muRequestsPerSecond", mu, "server", fl.server)
	sum, err := s.Run(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("replica-minutes=%.1f under-provisioned-minutes=%d slo-violation-minutes=%d scale-events=%d\n",
		sum.ReplicaMinutes, sum.UnderProvisionedMinute, sum.SLOViolationMinutes, sum.ScaleEvents)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
