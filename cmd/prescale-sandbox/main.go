// Command prescale-sandbox starts and stops the local Kubernetes sandbox (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kwok GPU nodes and
// Prometheus on loopback) and runs prescale's demo on it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/demo"
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

func newRoot() *cobra.Command {
	var o sandbox.Options
	root := &cobra.Command{
		Use:           "prescale-sandbox",
		Short:         "A local Kubernetes sandbox with simulated GPU nodes, for prescale's demo and tests",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.StateDir, "state-dir", envOr("PRESCALE_SANDBOX_DIR", ".state/sandbox"), "state folder: certificates, data, logs, kubeconfig (env PRESCALE_SANDBOX_DIR)")
	pf.StringVar(&o.BinDir, "bin-dir", envOr("PRESCALE_SANDBOX_BIN", "bin"), "folder of the tools built by make tools (env PRESCALE_SANDBOX_BIN)")
	pf.IntVar(&o.Nodes, "nodes", 4, "simulated GPU nodes")
	pf.IntVar(&o.GPUsPerNode, "gpus-per-node", 8, "nvidia.com/gpu per node")
	pf.StringVar(&o.GPUProduct, "gpu-product", "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.product label of the nodes")
	pf.DurationVar(&o.HPASyncPeriod, "hpa-sync-period", 15*time.Second, "kube-controller-manager --horizontal-pod-autoscaler-sync-period")
	pf.DurationVar(&o.ScrapeInterval, "scrape-interval", 5*time.Second, "Prometheus scrape interval of the simulated service")
	pf.DurationVar(&o.Timeout, "timeout", 120*time.Second, "readiness timeout of each component")
	var karpenter bool
	var k sandbox.KarpenterOptions
	pf.BoolVar(&karpenter, "karpenter", false, "run Karpenter's kwok provider with a NodePool of GPU nodes that grows for Pending pods; --nodes then defaults to 0")
	pf.DurationVar(&k.NodeDelay, "karpenter-node-delay", time.Minute, "time from a Karpenter node's creation to Ready (a GPU VM's boot)")
	pf.IntVar(&k.GPULimit, "karpenter-gpu-limit", 16, "the NodePool's nvidia.com/gpu limit")
	pf.StringVar(&k.FeatureGates, "karpenter-feature-gates", "", "Karpenter's --feature-gates, e.g. CapacityBuffer=true")
	// withKarpenter applies the Karpenter flags to o.
	withKarpenter := func(cmd *cobra.Command, o sandbox.Options) sandbox.Options {
		if !karpenter {
			return o
		}
		o.Karpenter = &k
		if !cmd.Flags().Changed("nodes") {
			o.Nodes = 0
		}
		return o
	}
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	pf.AddGoFlagSet(klogFlags)

	root.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Start the sandbox (a no-op if it is up); prints its environment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			s, err := sandbox.Up(cmd.Context(), withKarpenter(cmd, o))
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "sandbox up in %.1fs (logs in %s/logs)\n", time.Since(start).Seconds(), s.Dir)
			fmt.Fprint(cmd.OutOrStdout(), s.Env())
			return nil
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "down",
		Short: "Stop every process of the sandbox",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return sandbox.Down(cmd.Context(), o.StateDir)
		},
	})
	root.AddCommand(&cobra.Command{
		Use:   "env",
		Short: "Print the environment of the running sandbox (eval \"$(prescale-sandbox env)\")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := sandbox.Load(o.StateDir)
			if err != nil {
				return err
			}
			if err := s.Healthy(cmd.Context()); err != nil {
				return fmt.Errorf("check sandbox in %s: %w", s.Dir, err)
			}
			fmt.Fprint(cmd.OutOrStdout(), s.Env())
			return nil
		},
	})

	var d demo.Options
	demoCmd := &cobra.Command{
		Use:   "demo",
		Short: "Bring the sandbox up, run the same load through a real HPA and prescale side by side, compare, tear down",
		Long: `Bring the sandbox up, backfill days of a simulated GPU service's history into Prometheus,
then replay the same load on two identical services: one scaled by the controller-manager's
HPA (on prescale's external metrics), one by prescale run with a forecast and an SLO
objective. Prints both per tick, then compares replica-minutes, minutes over the SLO, peak
delay and scale events from the measured values.

With --karpenter, the services' GPU nodes come from Karpenter (a NodePool each, starting
empty, nodes Ready --node-lead after their creation): the HPA's pods wait for their nodes,
prescale sizes a CapacityBuffer so that the nodes of a surge are asked for ahead of it, and
the comparison adds the GPUs of the nodes each service paid for.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("karpenter-node-delay") {
				return fmt.Errorf("--karpenter-node-delay: the demo takes the node lead in model time, as --node-lead")
			}
			if cmd.Flags().Changed("node-lead") && !karpenter {
				return fmt.Errorf("--node-lead: only with --karpenter (the demo's nodes are otherwise all there from the start)")
			}
			d.Sandbox = withKarpenter(cmd, o)
			if d.Sandbox.Karpenter != nil {
				// The demo's own NodePools, each as large as a service, unless the flag says.
				if !cmd.Flags().Changed("karpenter-gpu-limit") {
					d.Sandbox.Karpenter.GPULimit = 0
				}
			} else if !cmd.Flags().Changed("nodes") {
				// Two services of up to 32 replicas: 8 nodes x 8 GPUs, unless --nodes says otherwise.
				d.Sandbox.Nodes = 8
			}
			// The HPA syncs once a tick, in real time.
			if !cmd.Flags().Changed("hpa-sync-period") {
				d.Sandbox.HPASyncPeriod = time.Duration(float64(d.Tick) / d.Compression)
			}
			if !cmd.Flags().Changed("scrape-interval") {
				// A scrape a tick: the services' counters step once a tick, and scraped every
				// second their rate over the policy's scaled window (6 s) saw 3 or 4 steps by
				// turns, a sawtooth of 25 % that the forecast's gate read as misses.
				d.Sandbox.ScrapeInterval = time.Duration(float64(d.Tick) / d.Compression)
			}
			_, err := demo.Run(cmd.Context(), d, cmd.OutOrStdout())
			return err
		},
	}
	f := demoCmd.Flags()
	f.BoolVar(&d.Keep, "keep", os.Getenv("KEEP") == "1", "leave the sandbox, both services and the HPA up at the end (env KEEP=1)")
	f.StringVar(&d.PrescaleBin, "prescale", "", "the prescale binary (default: <bin-dir>/prescale)")
	f.StringVar(&d.Dir, "dir", ".state/demo", "the demo's files: prescale's configuration and log, the plot")
	f.Int32Var(&d.Replicas, "replicas", 0, "replicas of each service at the start (0: what the first minute needs)")
	f.Float64Var(&d.Compression, "compression", 10, "model seconds per real second")
	f.DurationVar(&d.Duration, "duration", 30*time.Minute, "model time of the run")
	f.IntVar(&d.HistoryDays, "history-days", 3, "model days of the built-in load backfilled into Prometheus before the run")
	f.DurationVar(&d.Tick, "tick", 15*time.Second, "model time of one tick of the services, prescale and the HPA")
	f.DurationVar(&d.StartupDelay, "startup", 180*time.Second, "model time from pod binding to Ready (model load)")
	f.StringVar(&d.TracePath, "trace", os.Getenv("TRACE"), "per-minute CSV (minute,requests) to replay instead of the built-in load: its last --duration minutes, after the rest as history (env TRACE)")
	f.IntVar(&d.PeakReplicas, "peak-replicas", 10, "replicas the run's peak minute needs at 70% GPU utilization")
	f.Uint64Var(&d.Seed, "seed", 42, "seed of the built-in load")
	f.StringVar(&d.Plot, "plot", "", "PNG of the run (default: <dir>/demo.png; - for none)")
	f.DurationVar(&d.NodeLead, "node-lead", 10*time.Minute, "with --karpenter: model time from a GPU node's creation to Ready; each service gets a NodePool of its own, starting empty, and prescale a CapacityBuffer")
	root.AddCommand(demoCmd)
	return root
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
