package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/sim"
)

// Options configure a demo run.
type Options struct {
	Sandbox      sandbox.Options
	Keep         bool          // leave the sandbox up at the end
	Replicas     int32         // replicas of the service at the start
	Compression  float64       // model seconds per real second
	Duration     time.Duration // model time of the scenario
	Tick         time.Duration // model time of one tick
	StartupDelay time.Duration // model time from binding to Ready
	PeakReplicas int           // replicas the load's peak needs at 70% utilization
	TracePath    string        // optional per-minute CSV instead of the built-in load
	Seed         uint64
}

// Defaults fills the zero fields of o with a scenario of about three minutes.
func (o Options) Defaults() Options {
	if o.Replicas == 0 {
		o.Replicas = 4
	}
	if o.Compression == 0 {
		o.Compression = 10
	}
	if o.Duration == 0 {
		o.Duration = 24 * time.Minute
	}
	if o.Tick == 0 {
		o.Tick = 15 * time.Second
	}
	if o.StartupDelay == 0 {
		o.StartupDelay = 180 * time.Second
	}
	if o.PeakReplicas == 0 {
		o.PeakReplicas = 10
	}
	if o.Seed == 0 {
		o.Seed = 42
	}
	return o
}

// Load is the demo's built-in scenario: a morning ramp of the daily cycle with a
// little trend and noise, and a 2.5x surge from minute 8 to minute 16.
func Load(seed uint64) sim.Load {
	return sim.Generator{
		Mean: 1500, DailyAmplitude: 0.3, StartMinute: 420, TrendPerDay: 0.05,
		Noise: 0.04, BurstsPerDay: 0, Seed: seed,
		Surges: []sim.Surge{{At: 8, Minutes: 8, Factor: 2.5}},
	}
}

const (
	namespace = "demo"
	service   = "llm"
)

// Run runs the demo, writing its story to out.
func Run(ctx context.Context, o Options, out io.Writer) (err error) {
	o = o.Defaults()
	if o.Sandbox.ScrapeInterval == 0 {
		o.Sandbox.ScrapeInterval = time.Second
	}
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }

	load := Load(o.Seed)
	what := "built-in load: daily cycle, trend, noise, and a 2.5x surge at minute 8"
	if o.TracePath != "" {
		trace, err := sim.ReadCSVFile(o.TracePath)
		if err != nil {
			return err
		}
		load, what = trace, "trace "+o.TracePath
	}
	minutes := int(math.Ceil(o.Duration.Minutes()))
	mu := sim.Mu(sim.Peak(load, minutes), o.PeakReplicas, 0.7)

	p("== prescale demo: a GPU inference service on a local Kubernetes sandbox")
	start := time.Now()
	st, err := sandbox.Up(ctx, o.Sandbox)
	if err != nil {
		return err
	}
	p("   sandbox up in %.1fs: %d kwok GPU nodes x %d nvidia.com/gpu, real apiserver, scheduler, controller-manager, Prometheus",
		time.Since(start).Seconds(), st.Nodes, st.GPUsPerNode)
	defer func() {
		if o.Keep {
			p("== sandbox kept up (KEEP=1), with the deployment %s/%s. Use it with:\n%s", namespace, service, strings.TrimRight(indent(st.Env()), "\n"))
			p("   The simulated service stopped with the demo; serve the deployment's metrics again with:")
			p("     bin/prescale-sim --namespace %s --deployment %s --report", namespace, service)
			p("   Stop the sandbox with: make sandbox-down")
			return
		}
		derr := sandbox.Down(context.WithoutCancel(ctx), st.Dir)
		if derr == nil {
			p("== sandbox down: no process left")
		}
		err = errors.Join(err, derr)
	}()

	cfg, err := st.RESTConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	realStartup := time.Duration(float64(o.StartupDelay) / o.Compression)
	w := sandbox.Workload{Namespace: namespace, Name: service, Replicas: o.Replicas, GPUs: 1, StartupDelay: realStartup}
	if err := w.Apply(ctx, client); err != nil {
		return err
	}
	p("   deployed %s/%s: %d replicas x 1 GPU, model load %s (model time; %s real)", namespace, service, o.Replicas, o.StartupDelay, realStartup)

	s, err := sim.New(client, sim.Options{
		Namespace: namespace, Deployment: service, Load: load, Mu: mu, Tick: o.Tick,
		Compression: o.Compression, Duration: o.Duration, BatchSize: 16, SLO: 2 * time.Second,
		OnTick: func(r sim.Report) { p("%s", line(r)) },
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Addr: st.SimAddr, Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	lis, err := net.Listen("tcp", st.SimAddr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", st.SimAddr, err)
	}
	go srv.Serve(lis)
	defer srv.Close()

	p("   waiting for the %d pods to load their model...", o.Replicas)
	if err := waitReady(ctx, client, o.Replicas, realStartup+60*time.Second); err != nil {
		return err
	}
	realTick := time.Duration(float64(o.Tick) / o.Compression)
	stop, err := startPrescale(ctx, cfg, st.PrometheusURL, realTick, o.Compression)
	if err != nil {
		return err
	}
	defer stop()
	p("   prescale is running: it reads the pods' GPU utilization (target 70%%) and queue (target 5 a pod)")
	p("   from Prometheus every tick and scales %s/%s (the policy: sandbox/demo/policy.yaml)", namespace, service)
	p("== replaying %s of model time at %gx (%s); one tick = %s model, %s real; per-replica capacity %.1f req/s",
		o.Duration, o.Compression, what, o.Tick, time.Duration(float64(o.Tick)/o.Compression), mu)
	p("%s", header)
	sum, err := s.Run(ctx)
	if err != nil {
		return err
	}
	p("")
	if ctx.Err() != nil {
		p("== interrupted")
	}
	p("== summary (model time %s)", sum.ModelTime)
	p("   replica-minutes:           %.1f", sum.ReplicaMinutes)
	p("   minutes under-provisioned: %d of %d", sum.UnderProvisionedMinute, minutes)
	p("   minutes over the 2s SLO:   %d", sum.SLOViolationMinutes)
	p("   scale events:              %d", sum.ScaleEvents)
	p("   requests arrived / served: %.0f / %.0f (peak queue %.0f)", sum.Requests, sum.Served, sum.PeakQueue)
	if ctx.Err() != nil {
		return nil
	}
	if n, err := promPods(ctx, st.PrometheusURL); err != nil {
		p("   Prometheus: %v", err)
	} else {
		p("   Prometheus scraped per-pod GPU utilization of %d pods (DCGM_FI_DEV_GPU_UTIL{namespace=%q})", n, namespace)
	}
	return nil
}

const header = "   time    load req/s  capacity  desired  ready  starting  pending   queue  delay   util"

func line(r sim.Report) string {
	flag := ""
	if r.UnderProvisioned {
		flag = "  UNDER-PROVISIONED"
	}
	delay := fmt.Sprintf("%5.1fs", r.Delay)
	if math.IsInf(r.Delay, 1) {
		delay = "   inf"
	}
	return fmt.Sprintf("   %02d:%02d   %10.1f  %8.1f  %7d  %5d  %8d  %7d  %6.0f %s  %4.0f%%%s",
		int(r.ModelTime.Minutes()), int(r.ModelTime.Seconds())%60,
		r.Lambda, r.Mu*float64(r.Ready), r.Desired, r.Ready, r.Starting, r.Pending, r.Queue, delay, r.Util, flag)
}

func waitReady(ctx context.Context, c kubernetes.Interface, want int32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := c.AppsV1().Deployments(namespace).Get(ctx, service, metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d ready pods of %s/%s: %w", want, namespace, service, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func promPods(ctx context.Context, url string) (int, error) {
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return 0, fmt.Errorf("build Prometheus client: %w", err)
	}
	q := fmt.Sprintf(`count(count by (pod) (count_over_time(DCGM_FI_DEV_GPU_UTIL{namespace=%q}[10m])))`, namespace)
	v, _, _, err := promv1.NewAPI(c).Query(ctx, q, time.Now())
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if ok && len(vec) == 0 {
		return 0, nil // no scrape yet: a run shorter than the scrape interval
	}
	if !ok || len(vec) != 1 {
		return 0, fmt.Errorf("query %s: want one sample, got %v", q, v)
	}
	return int(vec[0].Value), nil
}

func indent(s string) string {
	return "   " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n   ") + "\n"
}
