package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// Options configure a simulated service.
type Options struct {
	Namespace  string
	Deployment string
	Load       Load
	// Mu is each Ready pod's capacity in requests/s at 100% GPU utilization.
	Mu float64
	// Tick is the model time of one tick (the model's dt).
	Tick time.Duration
	// Compression is model seconds per real second: a tick lasts Tick/Compression.
	Compression float64
	// Duration is the model time to run; 0 runs until the context ends.
	Duration time.Duration
	// BatchSize is the running-request slots of a pod: running = Util/100 * BatchSize.
	BatchSize int
	// SLO is the allowed queueing delay, for the summary.
	SLO time.Duration
	// Start is the model time at which the replay starts: tick n replays the load of model
	// time Start + n*Tick (a demo whose history ends where its live run begins).
	Start time.Duration
	// OnTick, if set, is called after each tick with its report.
	OnTick func(Report)

	// Server is what each Ready pod exports: "" or ServerPrescale for the simulator's own
	// dialect (the series above, labelled namespace, service and pod), or the series of
	// vLLM, TGI, SGLang or Triton exactly as testdata/upstream defines them, labelled as
	// the server labels them plus namespace, service and pod (the labels a scrape adds).
	// A server mode exports nothing of the prescale dialect.
	Server Server
	// DCGM adds dcgm-exporter's per-GPU series (needs a server mode).
	DCGM bool
	// DCGMInterval is dcgm-exporter's collection interval in model time; 0 means 30 s.
	DCGMInterval time.Duration
	// Gateway adds the Gateway API Inference Extension endpoint picker's series for the
	// service (needs a server mode).
	Gateway bool
	// Model is the served model's name in the servers' and the gateway's model labels;
	// "" means the Deployment's name.
	Model string
	// Lengths are the request sizes the server modes draw from; nil means DefaultLengths.
	Lengths Lengths
	// MaxModelLen is the servers' context length in tokens (vLLM's --max-model-len, TGI's
	// max_total_tokens); it fits the Lengths and sets the token histograms' buckets. 0
	// means 16384.
	MaxModelLen int
	// PrefillRatio is the prompt tokens a server prefills in the time of one decode step
	// (Engine); 0 means 100.
	PrefillRatio float64
	// KVCacheTokens is a replica's KV cache in tokens; 0 means BatchSize requests of the
	// mean size (prompt and output).
	KVCacheTokens float64
	// Seed seeds the draws of request sizes.
	Seed uint64
}

// Report is what one tick of the simulated service saw and did.
type Report struct {
	N         int           // tick number from 0
	ModelTime time.Duration // model time at the start of the tick, from Options.Start
	Lambda    float64       // arrival rate, requests/s
	Mu        float64       // per-pod capacity, requests/s
	Desired   int32         // the Deployment's spec.replicas
	Ready     int           // Ready pods: the servers
	Starting  int           // scheduled, not Ready yet (loading the model)
	Pending   int           // not scheduled (e.g. no free GPU)
	Tick
}

// Summary scores a run like the backtest does.
type Summary struct {
	Ticks                  int
	ModelTime              time.Duration
	ReplicaMinutes         float64 // sum of (Ready + starting) pods * tick, in minutes
	UnderProvisionedMinute int     // model minutes in which some tick had lambda > mu * Ready
	SLOViolationMinutes    int     // model minutes in which some tick's queueing delay exceeded the SLO
	ScaleEvents            int     // ticks at which spec.replicas differed from the tick before
	PeakQueue              float64
	PeakDelay              float64 // the longest queueing delay of a tick, seconds (+Inf: a queue and no Ready pod)
	Requests, Served       float64
}

// Sim is the simulated inference service of one Deployment.
type Sim struct {
	o        Options
	client   kubernetes.Interface
	registry *prometheus.Registry

	waiting, running, util *prometheus.GaugeVec
	latency                *prometheus.HistogramVec
	arrivals               *arrivals
	offered, capacity      *prometheus.GaugeVec
	queue, delay           *prometheus.GaugeVec
	ready, modelTime       *prometheus.GaugeVec

	mu       sync.Mutex
	exported map[string]bool // pods with per-pod series

	expo *exposition // the server mode's series; nil in the prescale dialect
}

// New builds a simulated service; Run starts it.
func New(client kubernetes.Interface, o Options) (*Sim, error) {
	var errs []error
	if o.Namespace == "" || o.Deployment == "" {
		errs = append(errs, errors.New("namespace and deployment: must be set"))
	}
	if o.Load == nil {
		errs = append(errs, errors.New("load: must be set"))
	}
	if !(o.Mu > 0) {
		errs = append(errs, fmt.Errorf("mu: must be > 0, got %v", o.Mu))
	}
	if o.Tick <= 0 {
		errs = append(errs, fmt.Errorf("tick: must be > 0, got %v", o.Tick))
	}
	if !(o.Compression > 0) {
		errs = append(errs, fmt.Errorf("compression: must be > 0, got %v", o.Compression))
	}
	if o.Start < 0 {
		errs = append(errs, fmt.Errorf("start: must be >= 0, got %v", o.Start))
	}
	if o.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("batchSize: must be > 0, got %d", o.BatchSize))
	}
	errs = append(errs, validateServer(o)...)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configure simulated service: %w", err)
	}
	if o.Server != "" && o.Server != ServerPrescale {
		return newServerSim(client, o)
	}
	// Per-pod series carry the service too, as a ServiceMonitor's scrape labels them, so
	// that two services in one namespace are told apart.
	pod := []string{"namespace", "service", "pod"}
	svc := []string{"namespace", "service"}
	s := &Sim{
		o: o, client: client, registry: prometheus.NewRegistry(), exported: map[string]bool{},
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vllm:num_requests_waiting",
			Help: "Requests waiting in the pod's queue."}, pod),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vllm:num_requests_running",
			Help: "Requests running on the pod's GPU."}, pod),
		util: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "DCGM_FI_DEV_GPU_UTIL",
			Help: "GPU utilization, percent."}, pod),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vllm:e2e_request_latency_seconds",
			Help:    "Queueing delay of the requests the pod served, seconds.",
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300}}, pod),
		arrivals: &arrivals{desc: prometheus.NewDesc("inference_requests_total",
			"Requests that arrived at the service, as a gateway counts them (model requests).", nil,
			prometheus.Labels{"namespace": o.Namespace, "service": o.Deployment}), compression: o.Compression, period: o.Tick},
		offered: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_sim_offered_load_requests_per_second",
			Help: "Arrival rate of the replayed load, model requests per model second."}, svc),
		capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_sim_capacity_requests_per_second",
			Help: "Capacity of the Ready pods, model requests per model second."}, svc),
		queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_sim_queue_requests",
			Help: "Requests waiting in the whole service."}, svc),
		delay: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_sim_queueing_delay_seconds",
			Help: "Queueing delay of the service, model seconds (+Inf with a queue and no Ready pod)."}, svc),
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_sim_ready_replicas",
			Help: "Ready pods serving the load."}, svc),
		modelTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_sim_model_time_seconds",
			Help: "Model time since the start of the replay."}, svc),
	}
	s.registry.MustRegister(s.waiting, s.running, s.util, s.latency, s.arrivals,
		s.offered, s.capacity, s.queue, s.delay, s.ready, s.modelTime)
	return s, nil
}

// Handler serves the service's metrics in the Prometheus exposition format.
func (s *Sim) Handler() http.Handler {
	return promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{})
}

// Gatherer is the service's metrics, to serve several services on one endpoint
// (prometheus.Gatherers).
func (s *Sim) Gatherer() prometheus.Gatherer { return s.registry }

// Run replays the load until Duration of model time has passed or ctx ends, and
// returns the run's summary. It waits for the Deployment to exist.
func (s *Sim) Run(ctx context.Context) (Summary, error) {
	logger := klog.FromContext(ctx)
	var dep *appsv1.Deployment
	for {
		d, err := s.client.AppsV1().Deployments(s.o.Namespace).Get(ctx, s.o.Deployment, metav1.GetOptions{})
		if err == nil {
			dep = d
			break
		}
		logger.V(2).Info("Waiting for the deployment", "deployment", klog.KRef(s.o.Namespace, s.o.Deployment), "err", err)
		select {
		case <-ctx.Done():
			return Summary{}, fmt.Errorf("get deployment %s/%s: %w", s.o.Namespace, s.o.Deployment, err)
		case <-time.After(time.Second):
		}
	}
	sel, err := metav1.LabelSelectorAsSelector(dep.Spec.Selector)
	if err != nil {
		return Summary{}, fmt.Errorf("parse selector of deployment %s/%s: %w", s.o.Namespace, s.o.Deployment, err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(s.client, 0, informers.WithNamespace(s.o.Namespace))
	pods := factory.Core().V1().Pods().Lister()
	deps := factory.Apps().V1().Deployments().Lister()
	ictx, stopInformers := context.WithCancel(ctx)
	factory.Start(ictx.Done())
	defer func() {
		stopInformers() // Shutdown waits for the informers, which wait for this
		factory.Shutdown()
	}()
	for typ, ok := range factory.WaitForCacheSync(ictx.Done()) {
		if !ok {
			return Summary{}, fmt.Errorf("sync informer cache of %v", typ)
		}
	}

	var (
		st      State
		sum     Summary
		under   = map[int]bool{}
		slo     = map[int]bool{}
		lastDes = int32(-1)
	)
	interval := time.Duration(float64(s.o.Tick) / s.o.Compression)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	svc := []string{s.o.Namespace, s.o.Deployment}
	for n := 0; s.o.Duration == 0 || time.Duration(n)*s.o.Tick < s.o.Duration; n++ {
		if n > 0 {
			select {
			case <-ctx.Done():
				return s.finish(sum, under, slo), nil
			case <-ticker.C:
			}
		}
		r := Report{N: n, ModelTime: s.o.Start + time.Duration(n)*s.o.Tick, Mu: s.o.Mu}
		minute := int(r.ModelTime / time.Minute)
		r.Lambda = s.o.Load.RequestsPerMinute(minute) / 60
		if d, err := deps.Deployments(s.o.Namespace).Get(s.o.Deployment); err == nil && d.Spec.Replicas != nil {
			r.Desired = *d.Spec.Replicas
		}
		all, err := pods.List(sel)
		if err != nil {
			return Summary{}, fmt.Errorf("list pods of deployment %s/%s: %w", s.o.Namespace, s.o.Deployment, err)
		}
		var ready []string
		ready, r.Starting, r.Pending = classify(all)
		r.Ready = len(ready)
		st, r.Tick = Step(st, r.Lambda, s.o.Mu, r.Ready, s.o.Tick)
		if s.expo != nil {
			s.exportServers(r, ready, gpuHolders(all), time.Now())
		} else {
			s.export(r, ready, svc)
		}

		sum.Ticks++
		sum.ModelTime += s.o.Tick
		sum.ReplicaMinutes += float64(r.Ready+r.Starting) * s.o.Tick.Minutes()
		sum.PeakQueue = max(sum.PeakQueue, r.Queue)
		sum.PeakDelay = max(sum.PeakDelay, r.Delay)
		sum.Requests += r.Arrived
		sum.Served += r.Served
		if r.UnderProvisioned {
			under[minute] = true
		}
		if s.o.SLO > 0 && r.Delay > s.o.SLO.Seconds() {
			slo[minute] = true
		}
		if lastDes >= 0 && r.Desired != lastDes {
			sum.ScaleEvents++
		}
		lastDes = r.Desired
		if s.o.OnTick != nil {
			s.o.OnTick(r)
		}
	}
	return s.finish(sum, under, slo), nil
}

func (s *Sim) finish(sum Summary, under, slo map[int]bool) Summary {
	sum.UnderProvisionedMinute = len(under)
	sum.SLOViolationMinutes = len(slo)
	return sum
}

// classify splits pods into Ready ones (sorted names), starting and pending counts.
// Terminating and finished pods count nowhere.
func classify(pods []*corev1.Pod) (ready []string, starting, pending int) {
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		switch {
		case podReady(p):
			ready = append(ready, p.Name)
		case p.Spec.NodeName != "":
			starting++
		default:
			pending++
		}
	}
	sort.Strings(ready)
	return ready, starting, pending
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// export updates the series: per Ready pod, and for the service. Series of pods
// that stopped being Ready are deleted, as a restarted server's would vanish.
func (s *Sim) export(r Report, ready []string, svc []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := map[string]bool{}
	perPod := 0.0
	if r.Ready > 0 {
		perPod = r.Served / float64(r.Ready)
	}
	for _, p := range ready {
		now[p] = true
		l := []string{s.o.Namespace, s.o.Deployment, p}
		s.waiting.WithLabelValues(l...).Set(r.QueuePerPod)
		s.running.WithLabelValues(l...).Set(math.Round(r.Util / 100 * float64(s.o.BatchSize)))
		s.util.WithLabelValues(l...).Set(r.Util)
		h := s.latency.WithLabelValues(l...)
		for range int(math.Round(perPod)) {
			h.Observe(r.Delay)
		}
	}
	for p := range s.exported {
		if !now[p] {
			l := []string{s.o.Namespace, s.o.Deployment, p}
			s.waiting.DeleteLabelValues(l...)
			s.running.DeleteLabelValues(l...)
			s.util.DeleteLabelValues(l...)
			s.latency.DeleteLabelValues(l...)
		}
	}
	s.exported = now
	s.arrivals.tick(r.Lambda, time.Now())
	s.offered.WithLabelValues(svc...).Set(r.Lambda)
	s.capacity.WithLabelValues(svc...).Set(r.Mu * float64(r.Ready))
	s.queue.WithLabelValues(svc...).Set(r.Queue)
	s.delay.WithLabelValues(svc...).Set(r.Delay)
	s.ready.WithLabelValues(svc...).Set(float64(r.Ready))
	s.modelTime.WithLabelValues(svc...).Set(r.ModelTime.Seconds())
}

// arrivals is the service's arrival counter. Requests arrive all through a tick, and a
// gateway counts them as they come: the counter rises continuously at the tick's rate,
// so that a scrape between two ticks (a rate over a few scrapes) sees the load rather
// than the ticks' steps.
type arrivals struct {
	desc        *prometheus.Desc
	compression float64
	period      time.Duration // model time of a tick: the counter stops rising after it

	mu     sync.Mutex
	base   float64   // requests counted up to the current tick's start
	lambda float64   // the current tick's arrival rate, model requests per model second
	since  time.Time // wall time of the current tick's start; zero before the first tick
}

// tick starts a tick of arrival rate lambda at wall time now: the previous tick's
// arrivals are all counted.
func (a *arrivals) tick(lambda float64, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.since.IsZero() {
		a.base += a.lambda * a.period.Seconds()
	}
	a.lambda, a.since = lambda, now
}

// value is the count at wall time now.
func (a *arrivals) value(now time.Time) float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.since.IsZero() {
		return 0
	}
	model := min(now.Sub(a.since).Seconds()*a.compression, a.period.Seconds())
	return a.base + a.lambda*max(0, model)
}

// Describe implements prometheus.Collector.
func (a *arrivals) Describe(ch chan<- *prometheus.Desc) { ch <- a.desc }

// Collect implements prometheus.Collector.
func (a *arrivals) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(a.desc, prometheus.CounterValue, a.value(time.Now()))
}
