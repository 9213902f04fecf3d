package sim

import (
	"cmp"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Server names the exposition of the simulated pods.
type Server string

const (
	// ServerPrescale is the simulator's own dialect (the default): vllm:* gauges, a
	// histogram of queueing delay and DCGM_FI_DEV_GPU_UTIL = load/capacity, labelled
	// namespace, service and pod, beside inference_requests_total and prescale_sim_*.
	ServerPrescale Server = "prescale"
	ServerVLLM     Server = "vllm"   // vLLM V1 (testdata/upstream/vllm.txt)
	ServerTGI      Server = "tgi"    // Text Generation Inference v3 (tgi.txt)
	ServerSGLang   Server = "sglang" // SGLang (sglang.txt)
	ServerTriton   Server = "triton" // Triton Inference Server (triton.txt)
)

// Servers are the valid Server values.
var Servers = []Server{ServerPrescale, ServerVLLM, ServerTGI, ServerSGLang, ServerTriton}

// podTarget is the target labels a PodMonitor or ServiceMonitor scrape adds to a server's
// own series; the sandbox serves every pod on one endpoint, so the simulator adds them.
var podTarget = []string{"namespace", "service", "pod"}

// podTick is one tick of one Ready replica, as the imitations turn it into series.
type podTick struct {
	dt           float64 // model seconds
	occ          Occupancy
	step         float64   // the engine's step time, model seconds
	prefillRatio float64   // prompt tokens prefilled in one step's time
	arrived      []Request // requests that arrived at the replica
	served       []done    // requests that finished on it
	steps        float64   // engine steps it ran
	prefills     float64   // steps that admitted new requests (each a prefill batch)
	gpu          string    // the UUID of its GPU
	// carry returns the whole part of x plus what earlier ticks left under key, and keeps
	// the fraction (replica.whole): counts of steps and batches stay integers.
	carry func(key string, x float64) float64
}

// done is a finished request.
type done struct {
	Request
	Latency
}

// tokens returns the prompt and output tokens of the finished requests.
func (t *podTick) tokens() (prompt, output float64) {
	for _, d := range t.served {
		prompt += float64(d.Prompt)
		output += float64(d.Output)
	}
	return prompt, output
}

// imitation is one server's exposition.
type imitation interface {
	families() []*family
	// start creates the series a server has from its start, before any request.
	start(s *series, gpu string)
	// tick records one tick of the replica.
	tick(s *series, t *podTick)
}

// replica is one Ready pod's simulated server.
type replica struct {
	s     *series
	carry map[string]float64 // fractions of whole events, carried to the next tick
}

// whole adds x to the fraction carried under key and returns the whole part, keeping the
// rest: counts of requests and steps stay integers and add up over ticks.
func (r *replica) whole(key string, x float64) float64 {
	v := r.carry[key] + x
	n := math.Floor(v)
	r.carry[key] = v - n
	return n
}

// exposition is a Sim's series in a server mode: an imitated server per Ready pod, and
// beside them the dcgm-exporter and gateway imitations when on.
type exposition struct {
	o        Options
	engine   Engine
	lengths  Lengths
	rng      *rand.Rand
	server   imitation
	comp     *component
	replicas map[string]*replica
	gpus     gpus
	dcgm     *dcgmExporter // nil when off
	gateway  *gateway      // nil when off
}

// holder is a scheduled pod, which holds a GPU whether Ready or not.
type holder struct {
	namespace, pod, node, container string
}

// tick turns one tick of the fluid model into series. ready are the Ready pods (sorted),
// holders the pods holding a GPU, now the wall time (for the gateway's arrival counters).
func (e *exposition) tick(r Report, ready []string, holders []holder, now time.Time) {
	dt := e.o.Tick.Seconds()
	at := r.ModelTime.Seconds()
	occ := e.engine.Occupancy(r.Tick, r.Ready)
	step := e.engine.StepTime()
	e.gpus.update(holders)
	var perPodArrived, perPodServed float64
	if r.Ready > 0 {
		perPodArrived = r.Arrived / float64(r.Ready)
		perPodServed = r.Served / float64(r.Ready)
	}
	var all []done
	live := map[string]bool{}
	for _, p := range ready {
		live[p] = true
		rep := e.replicas[p]
		if rep == nil {
			rep = &replica{s: newSeries(float64(now.UnixNano()) / 1e9), carry: map[string]float64{}}
			e.server.start(rep.s, e.gpus.uuid(p))
			e.replicas[p] = rep
		}
		rep.s.at = at
		t := &podTick{dt: dt, occ: occ, step: step, prefillRatio: e.engine.PrefillRatio, gpu: e.gpus.uuid(p), carry: rep.whole}
		for range int(rep.whole("arrived", perPodArrived)) {
			t.arrived = append(t.arrived, e.draw())
		}
		for range int(rep.whole("served", perPodServed)) {
			req := e.draw()
			t.served = append(t.served, done{Request: req, Latency: e.engine.Latency(r.Delay, req)})
		}
		t.steps = occ.Busy * dt / step
		if n := float64(len(t.served)); t.steps > 0 && n > 0 {
			// n requests join at random steps: the steps that admit at least one.
			t.prefills = t.steps * -math.Expm1(-n/t.steps)
		}
		e.server.tick(rep.s, t)
		all = append(all, t.served...)
	}
	for p := range e.replicas {
		if !live[p] {
			delete(e.replicas, p) // a pod that stops being Ready loses its server's series
		}
	}
	if e.dcgm != nil {
		busy := map[string]Occupancy{}
		for _, p := range ready {
			busy[p] = occ
		}
		e.dcgm.tick(r.ModelTime, dt, e.gpus, holders, busy)
	}
	if e.gateway != nil {
		e.gateway.tick(r, occ, all, now)
	}
}

func (e *exposition) draw() Request { return e.lengths[e.rng.IntN(len(e.lengths))] }

// gpus assigns each scheduled pod a GPU of its node, the lowest free index, for as long as
// the pod holds it.
type gpus struct {
	byPod map[string]gpu
}

type gpu struct {
	node  string
	index int
}

func (g *gpus) update(holders []holder) {
	if g.byPod == nil {
		g.byPod = map[string]gpu{}
	}
	keep := map[string]bool{}
	for _, h := range holders {
		keep[h.pod] = true
	}
	for p := range g.byPod {
		if !keep[p] {
			delete(g.byPod, p)
		}
	}
	used := map[gpu]bool{}
	for _, x := range g.byPod {
		used[x] = true
	}
	hs := slices.Clone(holders)
	sort.Slice(hs, func(i, j int) bool { return hs[i].pod < hs[j].pod })
	for _, h := range hs {
		if x, ok := g.byPod[h.pod]; ok && x.node == h.node {
			continue
		}
		x := gpu{node: h.node}
		for used[x] {
			x.index++
		}
		used[x] = true
		g.byPod[h.pod] = x
	}
}

// uuid is the GPU's UUID as NVML prints it, derived from its node and index so that it
// is the same in every series (dcgm-exporter's UUID, Triton's gpu_uuid); "" for a pod
// without a GPU.
func (g *gpus) uuid(pod string) string {
	x, ok := g.byPod[pod]
	if !ok {
		return ""
	}
	return x.uuid()
}

func (x gpu) uuid() string {
	h := fnv.New128a()
	fmt.Fprintf(h, "%s/%d", x.node, x.index)
	b := h.Sum(nil)
	return fmt.Sprintf("GPU-%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// defaultMaxModelLen is the context length of the server modes without Options.MaxModelLen.
const defaultMaxModelLen = 16384

// defaultPrefillRatio is Engine.PrefillRatio without Options.PrefillRatio: a prompt of 100
// tokens prefills in the time of one decode step.
const defaultPrefillRatio = 100

// defaultDCGMInterval is dcgm-exporter's default --collect-interval.
const defaultDCGMInterval = 30 * time.Second

// validateServer reports every problem of the server-mode options.
func validateServer(o Options) []error {
	var errs []error
	if !slices.Contains(Servers, o.Server) && o.Server != "" {
		errs = append(errs, fmt.Errorf("server: must be one of %v, got %q", Servers, o.Server))
	}
	legacy := o.Server == "" || o.Server == ServerPrescale
	if legacy && o.DCGM {
		errs = append(errs, errors.New("dcgm: needs a server mode (vllm, tgi, sglang, triton); the prescale dialect exports its own DCGM_FI_DEV_GPU_UTIL"))
	}
	if legacy && o.Gateway {
		errs = append(errs, errors.New("gateway: needs a server mode (vllm, tgi, sglang, triton)"))
	}
	if o.DCGMInterval < 0 {
		errs = append(errs, fmt.Errorf("dcgmInterval: must be >= 0, got %v", o.DCGMInterval))
	}
	if o.MaxModelLen != 0 && o.MaxModelLen < 2 {
		errs = append(errs, fmt.Errorf("maxModelLen: must be >= 2 (a prompt and an output token), got %d", o.MaxModelLen))
	}
	if o.PrefillRatio < 0 || math.IsNaN(o.PrefillRatio) || math.IsInf(o.PrefillRatio, 0) {
		errs = append(errs, fmt.Errorf("prefillRatio: must be a number >= 0, got %v", o.PrefillRatio))
	}
	if o.KVCacheTokens < 0 || math.IsNaN(o.KVCacheTokens) || math.IsInf(o.KVCacheTokens, 0) {
		errs = append(errs, fmt.Errorf("kvCacheTokens: must be a number >= 0, got %v", o.KVCacheTokens))
	}
	if o.Lengths != nil && len(o.Lengths) == 0 {
		errs = append(errs, errors.New("lengths: must hold a request, or be nil for the default"))
	}
	return errs
}

// newServerSim builds a Sim in a server mode; o is valid.
func newServerSim(client kubernetes.Interface, o Options) (*Sim, error) {
	model := cmp.Or(o.Model, o.Deployment)
	maxLen := cmp.Or(o.MaxModelLen, defaultMaxModelLen)
	lengths := o.Lengths
	if lengths == nil {
		lengths = DefaultLengths()
	}
	lengths = lengths.fit(maxLen)
	prompt, output, _ := lengths.Mean()
	eng := Engine{Batch: o.BatchSize, Mu: o.Mu, Prompt: prompt, Output: output,
		PrefillRatio: cmp.Or(o.PrefillRatio, defaultPrefillRatio),
		KVTokens:     cmp.Or(o.KVCacheTokens, math.Round(float64(o.BatchSize)*(prompt+output)))}
	var srv imitation
	switch o.Server {
	case ServerVLLM:
		srv = newVLLM(model, maxLen, eng.KVTokens)
	case ServerTGI:
		srv = newTGI(maxLen, eng.KVTokens)
	case ServerSGLang:
		srv = newSGLang(model, o.BatchSize, eng.KVTokens)
	case ServerTriton:
		srv = newTriton(model)
	}
	s := &Sim{o: o, client: client, registry: prometheus.NewRegistry(), exported: map[string]bool{}}
	s.expo = &exposition{
		o: o, engine: eng, lengths: lengths, rng: rand.New(rand.NewPCG(o.Seed, 0x5eed)),
		server: srv, comp: newComponent(srv.families(), podTarget...), replicas: map[string]*replica{},
	}
	if o.DCGM {
		s.expo.dcgm = newDCGM(cmp.Or(o.DCGMInterval, defaultDCGMInterval), o.BatchSize)
	}
	if o.Gateway {
		s.expo.gateway = newGateway(o.Namespace, model, o.Deployment, o.Compression, o.Tick)
	}
	if err := s.registry.Register(serverCollector{s}); err != nil {
		return nil, fmt.Errorf("register the %s series: %w", o.Server, err)
	}
	return s, nil
}

// exportServers updates the server mode's series for one tick.
func (s *Sim) exportServers(r Report, ready []string, holders []holder, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expo.tick(r, ready, holders, now)
}

// serverCollector collects a server-mode Sim's series under its lock.
type serverCollector struct{ s *Sim }

// Describe implements prometheus.Collector.
func (c serverCollector) Describe(ch chan<- *prometheus.Desc) {
	e := c.s.expo
	e.comp.describe(ch)
	if e.dcgm != nil {
		e.dcgm.comp.describe(ch)
	}
	if e.gateway != nil {
		e.gateway.comp.describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (c serverCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	e := c.s.expo
	for _, p := range sortedKeys(e.replicas) {
		e.comp.collect(ch, e.replicas[p].s, e.o.Namespace, e.o.Deployment, p)
	}
	if e.dcgm != nil {
		e.dcgm.comp.collect(ch, e.dcgm.s)
	}
	if e.gateway != nil {
		e.gateway.collect(ch, time.Now())
	}
}

// gpuHolders returns the pods that hold a GPU: scheduled, not terminating or finished,
// Ready or not. The container is the first that requests a GPU, else the first.
func gpuHolders(pods []*corev1.Pod) []holder {
	var hs []holder
	for _, p := range pods {
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		h := holder{namespace: p.Namespace, pod: p.Name, node: p.Spec.NodeName}
		for i, c := range p.Spec.Containers {
			if _, ok := c.Resources.Limits["nvidia.com/gpu"]; ok || i == 0 {
				h.container = c.Name
				if ok {
					break
				}
			}
		}
		hs = append(hs, h)
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].pod < hs[j].pod })
	return hs
}
