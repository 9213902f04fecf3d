package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/sim"
)

// Options configure a demo run. Times are model times unless they say otherwise: the
// demo replays Compression model seconds per real second.
type Options struct {
	Sandbox     sandbox.Options
	PrescaleBin string // the prescale binary; default Sandbox.BinDir/prescale
	Dir         string // the demo's files: prescale's configuration and log, the plot; default .state/demo
	Keep        bool   // leave the sandbox, both services and the HPA up at the end
	// Replicas of each service at the start; 0: what the first minute's load needs at
	// 70 % GPU utilization.
	Replicas     int32
	Compression  float64
	Duration     time.Duration // the run, after the history
	HistoryDays  int           // days of load backfilled into Prometheus before the run
	Tick         time.Duration // one tick of the simulated services, prescale and the HPA
	StartupDelay time.Duration // from binding to Ready
	PeakReplicas int           // replicas the run's peak minute needs at 70 % GPU utilization
	// TracePath is a per-minute CSV (minute,requests) to replay instead of the built-in
	// load: its last Duration minutes are the run, up to HistoryDays days before them its
	// history.
	TracePath string
	Seed      uint64
	// Plot is where to write a PNG of the run (load, both services' replicas and delay);
	// default Dir/demo.png, "-" for none.
	Plot string
	// NodeLead, with Sandbox.Karpenter set, is the model time from a GPU node's creation to
	// Ready (a VM's boot, driver install and image pull); default 10m. Each service then has
	// a NodePool of its own that starts empty, and prescale sizes a CapacityBuffer
	// (karpenterFor).
	NodeLead time.Duration
}

// Defaults fills the zero fields of o with the default scenario: three days of history,
// then 30 minutes that hold the day's predictable surge, about three minutes of real time.
func (o Options) Defaults() Options {
	if o.PrescaleBin == "" {
		o.PrescaleBin = filepath.Join(o.Sandbox.Defaults().BinDir, "prescale")
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(".state", "demo")
	}
	if o.Compression == 0 {
		o.Compression = DefaultCompression
	}
	if o.Duration == 0 {
		o.Duration = 30 * time.Minute
	}
	if o.HistoryDays == 0 {
		o.HistoryDays = 3
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
	if o.Plot == "" {
		o.Plot = filepath.Join(o.Dir, "demo.png")
	}
	if o.NodeLead == 0 {
		o.NodeLead = 10 * time.Minute
	}
	return o
}

// validate reports every option out of range, naming its flag.
func (o Options) validate() error {
	var errs []error
	if !(o.Compression >= 1 && o.Compression <= 100) {
		errs = append(errs, fmt.Errorf("--compression: must be within 1..100, got %v", o.Compression))
	}
	if o.Duration < time.Minute || o.Duration > 24*time.Hour {
		errs = append(errs, fmt.Errorf("--duration: must be within 1m..24h, got %v", o.Duration))
	}
	if o.HistoryDays < 1 || o.HistoryDays > 14 {
		errs = append(errs, fmt.Errorf("--history-days: must be within 1..14, got %d", o.HistoryDays))
	}
	if o.Tick < time.Second || o.Tick > time.Minute {
		errs = append(errs, fmt.Errorf("--tick: must be within 1s..1m, got %v", o.Tick))
	}
	if o.StartupDelay < 0 || o.StartupDelay > time.Hour {
		errs = append(errs, fmt.Errorf("--startup: must be within 0..1h, got %v", o.StartupDelay))
	}
	if o.PeakReplicas < 1 || o.PeakReplicas > 32 {
		errs = append(errs, fmt.Errorf("--peak-replicas: must be within 1..32, got %d", o.PeakReplicas))
	}
	if o.Replicas < 0 || o.Replicas > 32 {
		errs = append(errs, fmt.Errorf("--replicas: must be within 0..32, got %d", o.Replicas))
	}
	if o.NodeLead < time.Second || o.NodeLead > time.Hour {
		errs = append(errs, fmt.Errorf("--node-lead: must be within 1s..1h, got %v", o.NodeLead))
	}
	return errors.Join(errs...)
}

// Result is what a demo run measured.
type Result struct {
	Minutes       int          // model minutes of the run
	HPA, Prescale sim.Summary  // the service the HPA scaled, the one prescale scaled
	Rows          []Row        // one per tick
	Plot          string       // the PNG written, if any
	Nodes         *NodeSummary // beside Karpenter (Options.Sandbox.Karpenter), else nil
}

// NodeSummary is what each service's NodePool cost beside Karpenter, in model time.
type NodeSummary struct {
	Lead time.Duration // from a node's creation to Ready
	// HPAGPUMinutes and PrescaleGPUMinutes are the GPUs of each NodePool's nodes, from
	// their creation (paid for, Ready or not) to their removal, times the minutes.
	HPAGPUMinutes, PrescaleGPUMinutes float64
	BufferPeak                        int // the largest size of prescale's CapacityBuffer
}

// Row is one tick of both services.
type Row struct {
	Time          time.Duration // model time since the history's end
	HPA, Prescale sim.Report
	Forecast      int  // prescale's forecast replica proposal, when Planned
	Planned       bool // prescale had a proposal (not learning, gated or missing)
	// Beside Karpenter: the GPUs of each service's NodePool (its nodes, Ready or not) and
	// the size of prescale's CapacityBuffer.
	HPANodeGPUs, PrescaleNodeGPUs, Buffer int
}

// Load is the demo's built-in load: a daily cycle with a little trend and noise, and a
// daily 2.5x surge of 8 minutes (a batch job that starts every morning at 07:08), for days
// of history and the day of the run. Minute 0 is 07:00 of the first day of history; the run
// starts at 07:00 of day `days`.
func Load(seed uint64, days int) sim.Load { return loadWithSurgeAt(seed, days, 8) }

// loadWithSurgeAt is Load with the daily surge at minute surge of each day.
func loadWithSurgeAt(seed uint64, days, surge int) sim.Load {
	g := sim.Generator{
		Mean: 1500, DailyAmplitude: 0.3, StartMinute: 420, TrendPerDay: 0.05,
		Noise: 0.04, BurstsPerDay: 0, Seed: seed,
	}
	for d := range days + 1 {
		g.Surges = append(g.Surges, sim.Surge{At: d*1440 + surge, Minutes: 8, Factor: 2.5})
	}
	return g
}

// scenario is the load of a run: minutes [0, history) are backfilled as history, minutes
// [history, history+minutes) are replayed live.
type scenario struct {
	load             sim.Load
	history, minutes int
	what             string
}

func newScenario(o Options) (scenario, error) {
	minutes := int(math.Ceil(o.Duration.Minutes()))
	if o.TracePath == "" {
		sc := scenario{load: Load(o.Seed, o.HistoryDays), history: o.HistoryDays * 1440, minutes: minutes,
			what: fmt.Sprintf("built-in load: a daily cycle and a daily 2.5x surge at minute 8, after %d days of it as history", o.HistoryDays)}
		if o.Sandbox.Karpenter != nil {
			// The surge comes a node lead and a horizon (5 model minutes) later, every day, and
			// the run is as much longer: the nodes of the surge can be asked for ahead of it.
			later := int(math.Ceil((o.NodeLead + 5*time.Minute).Minutes()))
			sc.load = loadWithSurgeAt(o.Seed, o.HistoryDays, 8+later)
			sc.minutes += later
			sc.what = fmt.Sprintf("built-in load: a daily cycle and a daily 2.5x surge at minute %d, after %d days of it as history", 8+later, o.HistoryDays)
		}
		return sc, nil
	}
	trace, err := sim.ReadCSVFile(o.TracePath)
	if err != nil {
		return scenario{}, err
	}
	// The run is the trace's last minutes; up to HistoryDays days before them are history.
	minutes = min(minutes, len(trace))
	history := min(len(trace)-minutes, o.HistoryDays*1440)
	from := len(trace) - minutes - history
	return scenario{load: sim.Trace(trace[from:]), history: history, minutes: minutes,
		what: fmt.Sprintf("trace %s: its last %d minutes, after the %d minutes before them as history", o.TracePath, minutes, history)}, nil
}

// peak is the largest load of minutes [from, to).
func (sc scenario) peak() float64 {
	p := 0.0
	for m := sc.history; m < sc.history+sc.minutes; m++ {
		p = max(p, sc.load.RequestsPerMinute(m))
	}
	return p
}

const (
	namespace  = "demo"
	hpaService = "llm-hpa"
	preService = "llm-prescale"
	prePolicy  = preService // the example's policy takes the Deployment's name
	sloDelay   = 2 * time.Second
	targetUtil = 0.7
	// batchSize is the requests a replica runs at once: the vLLM example's in-flight target
	// (48) is 75 % of it.
	batchSize = 64
	// prefillRatio is the prompt tokens a replica prefills in one engine step: vLLM's
	// default max_num_batched_tokens with chunked prefill.
	prefillRatio = 2048
	maxReplicas  = 32
)

// Run runs the demo, writing its story to out.
func Run(ctx context.Context, o Options, out io.Writer) (res Result, err error) {
	o = o.Defaults()
	if err := o.validate(); err != nil {
		return res, fmt.Errorf("demo: %w", err)
	}
	if o.Sandbox.Karpenter != nil {
		o.Sandbox.Karpenter = karpenterFor(o)
	}
	sc, err := newScenario(o)
	if err != nil {
		return res, err
	}
	res.Minutes = sc.minutes
	if _, err := os.Stat(o.PrescaleBin); err != nil {
		return res, fmt.Errorf("the prescale binary (build it with make build): %w", err)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return res, fmt.Errorf("create the demo's folder: %w", err)
	}
	p := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	realTime := func(model time.Duration) time.Duration { return time.Duration(float64(model) / o.Compression) }
	mu := sim.Mu(sc.peak(), o.PeakReplicas, targetUtil)
	replicas := o.Replicas
	if replicas == 0 {
		replicas = int32(max(1, math.Ceil(sc.load.RequestsPerMinute(sc.history)/60/(mu*targetUtil))))
	}

	p("== prescale demo: the same load on two identical GPU services, one scaled by a real HPA, one by prescale")
	if old, err := sandbox.Load(o.Sandbox.Defaults().StateDir); err == nil {
		p("   stopping the sandbox a previous run kept (%s): the demo starts afresh", old.Dir)
		if err := sandbox.Down(ctx, old.Dir); err != nil {
			return res, err
		}
	}
	start := time.Now()
	st, err := sandbox.Up(ctx, o.Sandbox)
	if err != nil {
		return res, err
	}
	if k := o.Sandbox.Karpenter; k != nil {
		p("   sandbox up in %.1fs: Karpenter (kwok provider, CapacityBuffers on) with a NodePool of GPU nodes for each service, none yet; a node is Ready %s after its creation (%s real), real apiserver, scheduler, controller-manager (its HPA controller), Prometheus",
			time.Since(start).Seconds(), o.NodeLead, k.NodeDelay)
	} else {
		p("   sandbox up in %.1fs: %d kwok GPU nodes x %d nvidia.com/gpu, real apiserver, scheduler, controller-manager (its HPA controller), Prometheus",
			time.Since(start).Seconds(), st.Nodes, st.GPUsPerNode)
	}
	var pre *prescaleRun
	defer func() {
		if pre != nil {
			pre.stop()
		}
		if o.Keep {
			p("== sandbox kept up (KEEP=1) with both services and the HPA in namespace %s. Use it with:\n%s", namespace, strings.TrimRight(indent(st.Env()), "\n"))
			p("   prescale and the simulated services stopped with the demo. Run prescale again with:")
			p("     %s run -f %s --kubeconfig %s", o.PrescaleBin, filepath.Join(o.Dir, "prescale.yaml"), st.Kubeconfig)
			p("   Stop the sandbox with: make sandbox-down")
			return
		}
		derr := sandbox.Down(context.WithoutCancel(ctx), st.Dir)
		if derr == nil {
			p("== sandbox down, prescale stopped: no process left")
		}
		err = errors.Join(err, derr)
	}()

	cfg, err := st.RESTConfig()
	if err != nil {
		return res, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return res, fmt.Errorf("build client: %w", err)
	}
	realStartup := realTime(o.StartupDelay)
	for _, name := range []string{hpaService, preService} {
		w := sandbox.Workload{Namespace: namespace, Name: name, Replicas: replicas, GPUs: 1, StartupDelay: realStartup}
		if o.Sandbox.Karpenter != nil {
			w.NodeSelector = map[string]string{nodePoolLabel: name}
		}
		if err := w.Apply(ctx, client); err != nil {
			return res, err
		}
	}
	p("   deployed %s/%s and %s/%s: %d replicas x 1 GPU each, model load %s (%s real)",
		namespace, hpaService, namespace, preService, replicas, o.StartupDelay, realStartup)
	wait := realStartup + 60*time.Second
	if k := o.Sandbox.Karpenter; k != nil {
		p("   waiting for Karpenter to launch their nodes, and for their pods to load the model...")
		wait += k.NodeDelay + 30*time.Second
	} else {
		p("   waiting for their pods to load the model...")
	}
	for _, name := range []string{hpaService, preService} {
		if err := waitReady(ctx, client, name, replicas, wait); err != nil {
			return res, err
		}
	}

	realTick := realTime(o.Tick)
	if sc.history > 0 {
		start := time.Now()
		var om bytes.Buffer
		h := sim.History{Namespace: namespace, Services: []string{hpaService, preService}, Load: sc.load,
			Tick: o.Tick, Compression: o.Compression, Minutes: sc.history, End: time.Now()}
		if err := writeVLLMHistory(&om, h); err != nil {
			return res, err
		}
		if err := st.Backfill(ctx, o.Sandbox.Defaults().BinDir, om.Bytes()); err != nil {
			return res, err
		}
		p("   backfilled %d minutes of the services' vLLM series into Prometheus (promtool, %.1f MB, %.1fs): the history a cluster has after %s",
			sc.history, float64(om.Len())/1e6, time.Since(start).Seconds(), (time.Duration(sc.history) * time.Minute).String())
	} else {
		p("   no history to backfill: the forecast learns as it goes and, until it has a gate window of samples, prescale decides as the HPA does")
	}
	end := time.Now() // the history's end: model minute sc.history

	ext, err := newExternal(st, o.Dir)
	if err != nil {
		return res, err
	}
	// The forecast loads the backfilled history: all of it, at the demo's time scale.
	history := realTime(time.Duration(sc.history)*time.Minute).Truncate(time.Hour) + time.Hour
	pols, err := policies(o.Compression, history)
	if err != nil {
		return res, err
	}
	if k := o.Sandbox.Karpenter; k != nil {
		// The node lead until prescale has measured one (the services' first nodes).
		pols = fmt.Sprintf("capacity: {nodeLead: %s}\n", k.NodeDelay) + pols
	}
	if pre, err = startPrescale(ctx, o.PrescaleBin, o.Dir, st, realTick, ext, pols); err != nil {
		return res, err
	}
	ca, err := st.CACertPEM()
	if err != nil {
		return res, err
	}
	if err := st.RegisterAPIService(ctx, sandbox.APIService{Group: "external.metrics.k8s.io", Version: "v1beta1",
		Namespace: namespace, Service: externalService, Host: ext.ip, Port: ext.port, CABundle: ca}); err != nil {
		return res, err
	}
	if err := applyHPA(ctx, client, HPA(hpaService, o.Compression)); err != nil {
		return res, err
	}
	if err := waitAPIService(ctx, cfg, 60*time.Second); err != nil {
		return res, err
	}
	p("   prescale run is up (policy: examples/servers/vllm.yaml at %gx, log: %s); it scales %s with a forecast and an SLO objective", o.Compression, pre.logPath, preService)
	p("   and serves the same metrics to the HPA %s/%s through the external metrics API (targets: 48 requests in flight a pod, KV cache 80 %%)", namespace, hpaService)

	// The run continues the history's clock: model time = history + (now - end) * compression.
	offset := time.Duration(float64(time.Since(end)) * o.Compression)
	offset = (offset + o.Tick - 1) / o.Tick * o.Tick
	runFrom := time.Duration(sc.history)*time.Minute + offset
	if offset >= time.Duration(sc.minutes)*time.Minute {
		return res, fmt.Errorf("demo: %s of model time passed between the history's end and the run: longer than the run", offset)
	}
	p("== replaying %s of model time at %gx (%s)", time.Duration(sc.minutes)*time.Minute-offset, o.Compression, sc.what)
	p("   one tick = %s model, %s real; a replica serves %.1f req/s at 100%% GPU; SLO: queueing delay <= %s", o.Tick, realTick, mu, sloDelay)
	if o.Sandbox.Karpenter != nil {
		p("   nodes: the GPUs of each service's NodePool (launched, Ready or not); buffer: prescale's CapacityBuffer, in replicas")
	}
	res, err = replay(ctx, o, sc, mu, runFrom, time.Duration(sc.minutes)*time.Minute-offset, st, client, pre, p)
	if err != nil {
		return res, err
	}
	if ctx.Err() != nil {
		p("== interrupted")
		return res, nil
	}
	p("")
	for _, l := range summary(res) {
		p("%s", l)
	}
	if o.Plot != "-" {
		if err := writePlot(o.Plot, res); err != nil {
			p("   plot: %v", err)
		} else {
			res.Plot = o.Plot
			p("   plot of the run: %s", o.Plot)
		}
	}
	return res, nil
}

// replay runs the two simulated services side by side for dur of model time from model
// time from, printing one line per tick, and returns their summaries.
func replay(ctx context.Context, o Options, sc scenario, mu float64, from, dur time.Duration, st *sandbox.State,
	client kubernetes.Interface, pre *prescaleRun, p func(string, ...any)) (Result, error) {
	res := Result{Minutes: int(dur / time.Minute)}
	if o.Sandbox.Karpenter != nil {
		res.Nodes = &NodeSummary{Lead: o.NodeLead}
	}
	type tick struct {
		svc int
		r   sim.Report
	}
	ticks := make(chan tick, 64)
	sims := make([]*sim.Sim, 2)
	for i, name := range []string{hpaService, preService} {
		s, err := sim.New(client, sim.Options{
			Namespace: namespace, Deployment: name, Load: sc.load, Mu: mu, Tick: o.Tick, Start: from,
			Compression: o.Compression, Duration: dur, BatchSize: batchSize, SLO: sloDelay,
			Server: sim.ServerVLLM, PrefillRatio: prefillRatio, Seed: o.Seed,
			OnTick: func(r sim.Report) { ticks <- tick{i, r} },
		})
		if err != nil {
			return res, err
		}
		sims[i] = s
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(prometheus.Gatherers{sims[0].Gatherer(), sims[1].Gatherer()}, promhttp.HandlerOpts{}),
		ReadHeaderTimeout: 5 * time.Second}
	lis, err := net.Listen("tcp", st.SimAddr)
	if err != nil {
		return res, fmt.Errorf("listen for metrics on %s: %w", st.SimAddr, err)
	}
	go srv.Serve(lis)
	defer srv.Close()

	sums := make([]sim.Summary, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range sims {
		wg.Go(func() { sums[i], errs[i] = s.Run(ctx) })
	}
	go func() { wg.Wait(); close(ticks) }()

	if res.Nodes != nil {
		p("%s", header1+nodesHeader1)
		p("%s", header2+nodesHeader2)
	} else {
		p("%s", header1)
		p("%s", header2)
	}
	pending := map[int]*Row{}
	for t := range ticks {
		row := pending[t.r.N]
		if row == nil {
			row = &Row{Time: t.r.ModelTime - time.Duration(sc.history)*time.Minute}
			pending[t.r.N] = row
		}
		if t.svc == 0 {
			row.HPA = t.r
		} else {
			row.Prescale = t.r
			if f, ok := pre.forecastReplicas(ctx, prePolicy); ok {
				row.Forecast, row.Planned = f, true
			}
		}
		if row.HPA.Mu > 0 && row.Prescale.Mu > 0 {
			delete(pending, t.r.N)
			text := line(*row)
			if res.Nodes != nil {
				gpus := poolGPUs(ctx, client)
				row.HPANodeGPUs, row.PrescaleNodeGPUs = gpus[hpaService], gpus[preService]
				row.Buffer, _ = pre.gauge(ctx, "prescale_capacity_buffer_replicas", prePolicy)
				minutes := o.Tick.Minutes()
				res.Nodes.HPAGPUMinutes += float64(row.HPANodeGPUs) * minutes
				res.Nodes.PrescaleGPUMinutes += float64(row.PrescaleNodeGPUs) * minutes
				res.Nodes.BufferPeak = max(res.Nodes.BufferPeak, row.Buffer)
				text += nodesColumns(*row)
			}
			res.Rows = append(res.Rows, *row)
			p("%s", text)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return res, err
	}
	res.HPA, res.Prescale = sums[0], sums[1]
	return res, nil
}

// nodePoolLabel is the label Karpenter gives a node of its NodePool's name.
const nodePoolLabel = "karpenter.sh/nodepool"

// karpenterFor returns the Karpenter of a demo beside a node autoscaler, from
// o.Sandbox.Karpenter: a NodePool for each service, named after it (its pods select it, so
// that neither service takes the nodes the other's autoscaling asked for), each of up to
// maxReplicas GPUs unless set, starting empty; nodes Ready o.NodeLead (model time) after
// their creation and removed 5 model minutes after they are empty; the CapacityBuffer
// feature gate on unless the gates name it.
func karpenterFor(o Options) *sandbox.KarpenterOptions {
	k := *o.Sandbox.Karpenter
	k.NodeDelay = time.Duration(float64(o.NodeLead) / o.Compression)
	k.NodePools = []string{hpaService, preService}
	if k.GPULimit == 0 {
		k.GPULimit = maxReplicas
	}
	switch {
	case k.FeatureGates == "":
		k.FeatureGates = "CapacityBuffer=true"
	case !strings.Contains(k.FeatureGates, "CapacityBuffer="):
		k.FeatureGates += ",CapacityBuffer=true"
	}
	if k.ConsolidateAfter == 0 {
		k.ConsolidateAfter = scaled(5*time.Minute, o.Compression)
	}
	return &k
}

// poolGPUs returns the GPUs of each NodePool's nodes, Ready or not: what the pool pays for.
func poolGPUs(ctx context.Context, c kubernetes.Interface) map[string]int {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: nodePoolLabel})
	if err != nil {
		return nil
	}
	gpus := map[string]int{}
	for _, n := range nodes.Items {
		// Allocatable: a kwok node Karpenter launched may report a Capacity below its
		// instance type's while it boots.
		q := n.Status.Allocatable[sandbox.GPUResource]
		gpus[n.Labels[nodePoolLabel]] += int(q.Value())
	}
	return gpus
}

const (
	nodesHeader1 = " | nodes (GPUs)"
	nodesHeader2 = " |  HPA prescale buffer"
)

// nodesColumns are a row's node columns beside Karpenter.
func nodesColumns(r Row) string {
	return fmt.Sprintf(" | %4d %8d %6d", r.HPANodeGPUs, r.PrescaleNodeGPUs, r.Buffer)
}

const (
	header1 = "   model           | HPA (reactive)                   | prescale (forecast + SLO objective)"
	header2 = "   mm:ss   load/s  | replicas ready   queue   delay   | replicas ready  plan   queue   delay"
)

func line(r Row) string {
	delay := func(s sim.Report) string {
		d := fmt.Sprintf("%6.1fs", s.Delay)
		if math.IsInf(s.Delay, 1) {
			d = "    inf"
		}
		if s.Delay > sloDelay.Seconds() {
			return d + "!"
		}
		return d + " "
	}
	plan := "    -"
	if r.Planned {
		plan = fmt.Sprintf("%5d", r.Forecast)
	}
	h, pr := r.HPA, r.Prescale
	t := r.Time
	return fmt.Sprintf("   %02d:%02d  %7.1f  | %8d %5d  %6.0f %s    | %8d %5d %s  %6.0f %s",
		int(t.Minutes()), int(t.Seconds())%60, h.Lambda,
		h.Desired, h.Ready, h.Queue, delay(h),
		pr.Desired, pr.Ready, plan, pr.Queue, delay(pr))
}

// summary compares the two services from their measured summaries and says which won.
func summary(res Result) []string {
	h, pr := res.HPA, res.Prescale
	delay := func(d float64) string {
		if math.IsInf(d, 1) {
			return "inf (no Ready pod)"
		}
		return fmt.Sprintf("%.1fs", d)
	}
	pct := func(a, b float64) string {
		if b == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%+.1f%%", 100*(a-b)/b)
	}
	out := []string{
		fmt.Sprintf("== summary: %d model minutes, the same load on both services", res.Minutes),
		fmt.Sprintf("   %-30s %12s %12s %10s", "", "HPA", "prescale", "prescale"),
		fmt.Sprintf("   %-30s %12.1f %12.1f %10s", "replica-minutes (GPU cost)", h.ReplicaMinutes, pr.ReplicaMinutes, pct(pr.ReplicaMinutes, h.ReplicaMinutes)),
		fmt.Sprintf("   %-30s %12d %12d %10s", fmt.Sprintf("minutes over the %s SLO", sloDelay), h.SLOViolationMinutes, pr.SLOViolationMinutes, fmt.Sprintf("%+d", pr.SLOViolationMinutes-h.SLOViolationMinutes)),
		fmt.Sprintf("   %-30s %12s %12s", "peak queueing delay", delay(h.PeakDelay), delay(pr.PeakDelay)),
		fmt.Sprintf("   %-30s %12d %12d", "scale events", h.ScaleEvents, pr.ScaleEvents),
		fmt.Sprintf("   %-30s %12.0f %12.0f", "peak queue (requests)", h.PeakQueue, pr.PeakQueue),
	}
	if n := res.Nodes; n != nil {
		out = append(out,
			fmt.Sprintf("   %-30s %12.1f %12.1f %10s", "node GPU-minutes (paid)", n.HPAGPUMinutes, n.PrescaleGPUMinutes, pct(n.PrescaleGPUMinutes, n.HPAGPUMinutes)),
			fmt.Sprintf("   %-30s %12s %12d", "CapacityBuffer peak (replicas)", "-", n.BufferPeak),
			fmt.Sprintf("   nodes are Ready %s after their creation; each service's NodePool grows for its own pods (and prescale's buffer)", n.Lead))
	}
	return append(out, "== "+verdict(h, pr))
}

// verdict says which service did better: fewer minutes over the SLO at no more replica-minutes
// wins outright; otherwise it says what each one traded.
func verdict(h, pr sim.Summary) string {
	cost := func() string {
		if pr.ReplicaMinutes <= h.ReplicaMinutes {
			return fmt.Sprintf("%.1f%% fewer replica-minutes (%.1f vs %.1f)", 100*(h.ReplicaMinutes-pr.ReplicaMinutes)/max(h.ReplicaMinutes, 1e-9), pr.ReplicaMinutes, h.ReplicaMinutes)
		}
		return fmt.Sprintf("%.1f%% more replica-minutes (%.1f vs %.1f)", 100*(pr.ReplicaMinutes-h.ReplicaMinutes)/max(h.ReplicaMinutes, 1e-9), pr.ReplicaMinutes, h.ReplicaMinutes)
	}
	switch {
	case pr.SLOViolationMinutes < h.SLOViolationMinutes && pr.ReplicaMinutes <= h.ReplicaMinutes:
		return fmt.Sprintf("prescale won: %d fewer minutes over the SLO (%d vs %d) with %s",
			h.SLOViolationMinutes-pr.SLOViolationMinutes, pr.SLOViolationMinutes, h.SLOViolationMinutes, cost())
	case pr.SLOViolationMinutes == h.SLOViolationMinutes && pr.ReplicaMinutes < h.ReplicaMinutes:
		return fmt.Sprintf("prescale won on cost: as many minutes over the SLO (%d) with %s", pr.SLOViolationMinutes, cost())
	case pr.SLOViolationMinutes < h.SLOViolationMinutes:
		return fmt.Sprintf("a trade: prescale had %d fewer minutes over the SLO (%d vs %d) for %s",
			h.SLOViolationMinutes-pr.SLOViolationMinutes, pr.SLOViolationMinutes, h.SLOViolationMinutes, cost())
	case pr.SLOViolationMinutes == h.SLOViolationMinutes && pr.ReplicaMinutes == h.ReplicaMinutes:
		return fmt.Sprintf("a tie: both had %d minutes over the SLO and %.1f replica-minutes", h.SLOViolationMinutes, h.ReplicaMinutes)
	case pr.SLOViolationMinutes == h.SLOViolationMinutes:
		return fmt.Sprintf("the HPA won on cost: as many minutes over the SLO (%d), prescale with %s", h.SLOViolationMinutes, cost())
	default:
		return fmt.Sprintf("the HPA won: prescale had %d minutes over the SLO against the HPA's %d, with %s",
			pr.SLOViolationMinutes, h.SLOViolationMinutes, cost())
	}
}

func waitReady(ctx context.Context, c kubernetes.Interface, name string, want int32, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := c.AppsV1().Deployments(namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d ready pods of %s/%s: %w", want, namespace, name, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitAPIService waits until the aggregator reports the external metrics APIService
// Available: until then the HPA cannot read its metrics.
func waitAPIService(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client: %w", err)
	}
	gvr := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "not read yet"
	for {
		obj, err := dyn.Resource(gvr).Get(ctx, "v1beta1.external.metrics.k8s.io", metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Available" {
					if m["status"] == "True" {
						return nil
					}
					last = fmt.Sprintf("%v: %v", m["reason"], m["message"])
				}
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the external metrics APIService to be Available (prescale's log: .state/demo/prescale.log): %w (last: %s)", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func indent(s string) string {
	return "   " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n   ") + "\n"
}
