package backtest

import (
	"container/heap"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	sandbox "github.com/prescale/prescale/sandbox/sim"
)

// The model's series (docs/backtest.md, "The model's series"): per Ready pod, what vLLM V1
// exports; per GPU, dcgm-exporter's utilization; for the service, the Gateway API
// Inference Extension's request counters. Names, types, label names and buckets are the
// simulator's (sandbox.VLLMFamilies, sandbox.DCGMFamilies, sandbox.GatewayFamilies); the values come
// from the model's state at each tick, as sandbox.Engine derives a replica's from the fluid
// queue. The model is fluid: its counters and histogram counts are fractional, where the
// simulator, which draws whole requests, carries the fractions.

// inBatch is the time a request of the mean size spends in a replica's batch (prefill and
// decode), model seconds: the sandbox's default pod, a batch of 16 at 10 requests/s. It
// sets the per-pod concurrency (mu x inBatch at full capacity, Little's law) and the
// latencies besides the queueing delay; it does not change the scores.
const inBatch = 1.6

// Label values of the model's series that the model does not otherwise name.
const (
	vllmEngine    = "0"
	podHash       = "7d9f8c6b5" // the pods' ReplicaSet hash: pods are <name>-<hash>-<5 characters>
	gpusPerNode   = 8
	dcgmContainer = "server"
)

// maxModelLen is the context length of the model's server (the simulator's default): it
// sets the token histograms' buckets, which the model does not export, and fits the
// request sizes.
const maxModelLen = 16384

// Family names the model exports, as the simulator's definitions spell them.
const (
	famRunning    = "vllm:num_requests_running"
	famWaiting    = "vllm:num_requests_waiting"
	famKV         = "vllm:kv_cache_usage_perc"
	famSuccess    = "vllm:request_success_total"
	famPrompt     = "vllm:prompt_tokens_total"
	famGeneration = "vllm:generation_tokens_total"
	famTTFT       = "vllm:time_to_first_token_seconds"
	famQueueTime  = "vllm:request_queue_time_seconds"
	famE2E        = "vllm:e2e_request_latency_seconds"
	famGPUUtil    = "DCGM_FI_DEV_GPU_UTIL"
	famRequests   = "inference_objective_request_total"
	famErrors     = "inference_objective_request_error_total"
	famReadyPods  = "inference_pool_ready_pods"
)

// metricKind is what one exported series measures, for its value at a tick.
type metricKind int

const (
	mRunning metricKind = iota
	mWaiting
	mKV
	mSuccess
	mPrompt
	mGeneration
	mTTFT // histograms: bucket, then _sum and _count
	mQueueTime
	mE2E
	mGPUUtil
	mRequests // the service's: svcLabels in this order from here
	mErrors
	mReadyPods
	numMetrics
)

// histPart says which series of a histogram: a bucket (its index), the sum or the count.
const (
	partSum   = -1
	partCount = -2
	partNone  = -3 // not a histogram
)

// modelFamily is one family of the model's exposition.
type modelFamily struct {
	sandbox.Family
	metric metricKind
	// scope says whose series: a Ready pod's (vLLM), a GPU holder's (DCGM) or the service's.
	scope scope
}

type scope int

const (
	perReadyPod scope = iota
	perGPU
	perService
)

// modelFamilies are the families the model exports, in metricKind order.
var modelFamilies = func() []modelFamily {
	v, d, g := sandbox.VLLMFamilies(maxModelLen), sandbox.DCGMFamilies(), sandbox.GatewayFamilies()
	pick := func(m map[string]sandbox.Family, name string, k metricKind, s scope) modelFamily {
		f, ok := m[name]
		if !ok {
			panic("backtest: the simulator exports no family " + name)
		}
		return modelFamily{Family: f, metric: k, scope: s}
	}
	return []modelFamily{
		pick(v, famRunning, mRunning, perReadyPod),
		pick(v, famWaiting, mWaiting, perReadyPod),
		pick(v, famKV, mKV, perReadyPod),
		pick(v, famSuccess, mSuccess, perReadyPod),
		pick(v, famPrompt, mPrompt, perReadyPod),
		pick(v, famGeneration, mGeneration, perReadyPod),
		pick(v, famTTFT, mTTFT, perReadyPod),
		pick(v, famQueueTime, mQueueTime, perReadyPod),
		pick(v, famE2E, mE2E, perReadyPod),
		pick(d, famGPUUtil, mGPUUtil, perGPU),
		pick(g, famRequests, mRequests, perService),
		pick(g, famErrors, mErrors, perService),
		pick(g, famReadyPods, mReadyPods, perService),
	}
}()

// exportedNames returns every series name the model exports (a histogram's _bucket, _sum
// and _count), sorted.
func exportedNames() []string {
	var names []string
	for _, f := range modelFamilies {
		if f.Type == "histogram" {
			names = append(names, f.Name+"_bucket", f.Name+"_sum", f.Name+"_count")
		} else {
			names = append(names, f.Name)
		}
	}
	sort.Strings(names)
	return names
}

// hist is a histogram's cumulative state: per bucket (le-cumulative, +Inf last), sum.
type hist struct {
	le  []float64
	sum float64
}

func (h *hist) observe(buckets []float64, v, n float64) {
	if n == 0 {
		return
	}
	for i := sort.SearchFloat64s(buckets, v); i < len(h.le); i++ { // le is inclusive
		h.le[i] += n
	}
	h.sum += v * n
}

func (h *hist) copyFrom(o *hist) { copy(h.le, o.le); h.sum = o.sum }

// cumulative are the counters of one Ready pod that has been Ready since tick 0: a pod's
// counters are these less their values on the tick before it became Ready.
type cumulative struct {
	success, prompt, generation float64
	hists                       [3]hist // TTFT, queue time, e2e
}

func newCumulative() cumulative {
	var c cumulative
	for i := range c.hists {
		c.hists[i].le = make([]float64, len(modelFamilies[mTTFT+metricKind(i)].Buckets)+1)
	}
	return c
}

func (c *cumulative) copyFrom(o *cumulative) {
	c.success, c.prompt, c.generation = o.success, o.prompt, o.generation
	for i := range c.hists {
		c.hists[i].copyFrom(&o.hists[i])
	}
}

// tickState is the model's state at one tick, as the series read it.
type tickState struct {
	tick int
	// ready is the Ready pods, as the pool's endpoint picker counts them.
	ready int
	// Per Ready pod (the fluid model shares the load evenly): the gauges.
	running, waiting, kv float64
	cum                  cumulative
	dcgm                 dcgmCollection
	gw                   gateway
}

// dcgmCollection is dcgm-exporter's last collection: its tick, and the Ready pods'
// utilization then (percent, a duty cycle).
type dcgmCollection struct {
	at   int
	util float64
}

// gateway are the gateway's counters, and whether each has counted a request yet (its
// series appear with their first request).
type gateway struct {
	requests, errors       float64
	requestsSeen, errsSeen bool
}

// modelPod is one pod of the model, from its creation to its removal.
type modelPod struct {
	name         string
	created      int // the tick of the decision that created it; it holds a GPU from the next
	readyAt      int // the first tick it is Ready
	removed      int // the tick of the decision that removed it; -1 while it lives
	base         cumulative
	node, gpu    int // its GPU: node index and GPU index on the node
	labelsByKind [numMetrics][]labels.Labels
}

func (p *modelPod) ready(t int) bool   { return p.readyAt <= t && (p.removed < 0 || t <= p.removed) }
func (p *modelPod) holding(t int) bool { return p.created < t && (p.removed < 0 || t <= p.removed) }

// expo is the model's exposition for one policy's run: the per-tick states of the last
// window ticks, and the pods that lived in them.
type expo struct {
	dt                  float64 // seconds
	tickMS              int64
	namespace, workload string
	mu                  float64
	eng                 sandbox.Engine // latencies of the mean request
	meanReq             sandbox.Request
	prompt, output      float64 // mean tokens
	kvTokens            float64
	dcgmEvery           int // ticks between dcgm-exporter's collections
	// ring holds the states of ticks now-len(ring)+1 .. now.
	ring []tickState
	now  int
	// pods are the live pods (Ready first, in the order they became Ready, then starting,
	// oldest first), dead the removed ones still in the window.
	ready, starting, dead []*modelPod
	serial                int
	gpus                  gpuSlots
	svcLabels             [numMetrics - mRequests]labels.Labels // the service's series, from mRequests
	cur                   cumulative                            // the cumulative counters at now
	gw                    gateway
	dcgm                  dcgmCollection
	memo                  map[*labels.Matcher]map[string]bool // regular expressions' answers, by matcher and value
	buf                   []floatSample                       // the samples of an evaluation's Selects
	series                []modelSeries                       // the series of an evaluation's Selects
}

// newExpo returns the exposition of a workload namespace/workload on model par with
// per-replica capacity mu, keeping window ticks.
func newExpo(par Params, mu float64, namespace, workload string, window int) *expo {
	lengths := sandbox.DefaultLengths()
	prompt, output, _ := lengths.Mean()
	req := sandbox.Request{Prompt: min(int(math.Round(prompt)), maxModelLen-1), Output: int(math.Round(output))}
	// A replica that admits one request at a time at 1/inBatch requests/s has the step
	// time of any batch whose requests stay inBatch seconds: Engine.Latency needs no more.
	eng := sandbox.Engine{Batch: 1, Mu: 1 / inBatch, Prompt: float64(req.Prompt), Output: float64(req.Output), PrefillRatio: sandbox.DefaultPrefillRatio}
	x := &expo{
		dt: par.Tick.Seconds(), tickMS: par.Tick.Milliseconds(), namespace: namespace, workload: workload,
		mu: mu, eng: eng, meanReq: req, prompt: float64(req.Prompt), output: float64(req.Output),
		// The simulator's default KV cache: a full batch (mu x inBatch requests) of the mean size.
		kvTokens:  mu * inBatch * float64(req.Prompt+req.Output),
		dcgmEvery: max(1, int(math.Ceil(sandbox.DefaultDCGMInterval.Seconds()/par.Tick.Seconds()))),
		ring:      make([]tickState, max(window, 1)),
		now:       -1,
		cur:       newCumulative(),
	}
	for i := range x.ring {
		x.ring[i].cum = newCumulative()
	}
	x.svcLabels = serviceLabels(namespace, workload)
	return x
}

// serviceLabels returns the label sets of the service's series: the gateway's requests and
// errors counters and its pool's Ready pods (the pool named after the workload).
func serviceLabels(namespace, workload string) [numMetrics - mRequests]labels.Labels {
	lv := func(f modelFamily, own ...string) labels.Labels {
		b := labels.NewScratchBuilder(len(f.Labels) + 2)
		b.Add(model.MetricNameLabel, f.Name)
		for i, l := range f.Labels {
			b.Add(l, own[i])
		}
		b.Add("namespace", namespace)
		b.Sort()
		return b.Labels()
	}
	return [numMetrics - mRequests]labels.Labels{
		lv(modelFamilies[mRequests], workload, workload, "0"),
		lv(modelFamilies[mErrors], workload, workload, "ServiceUnavailable"),
		lv(modelFamilies[mReadyPods], workload),
	}
}

// state returns tick t's state; t must be within the window.
func (x *expo) state(t int) *tickState { return &x.ring[t%len(x.ring)] }

// inWindow reports whether tick t's state is kept.
func (x *expo) inWindow(t int) bool { return t >= 0 && t <= x.now && t > x.now-len(x.ring) }

// tickInput is what one tick of the model did, as sim.serve computed it.
type tickInput struct {
	lambda, served, queue, delay float64
}

// advance records tick t (the next tick) of the service s, after its serving: the pods
// whose time has come are Ready (the oldest starting first, as service.promote), and the
// tick's requests are observed.
func (x *expo) advance(t int, s *service, in tickInput) {
	x.now = t
	for len(x.starting) > 0 && x.starting[0].readyAt <= t {
		p := x.starting[0]
		x.starting = x.starting[1:]
		p.base = newCumulative()
		p.base.copyFrom(&x.cur) // its counters start at 0 on its first Ready tick
		x.ready = append(x.ready, p)
	}
	x.dead = slices.DeleteFunc(x.dead, func(p *modelPod) bool { return p.removed+1 < t-len(x.ring)+1 })

	st := x.state(t)
	st.tick, st.ready = t, int(s.ready)
	ready := float64(s.ready)
	st.running, st.waiting, st.kv = 0, 0, 0
	var busy float64
	if s.ready > 0 {
		perPod := in.served / ready
		// Little's law: the requests in a pod's batch are its served rate times inBatch.
		running := perPod / x.dt * inBatch
		st.running = math.Round(running) // vLLM's gauges count whole requests
		st.waiting = math.Round(in.queue / ready)
		st.kv = min(1, running*(x.prompt+x.output/2)/x.kvTokens)
		busy = 1 - math.Exp(-running) // sandbox.Engine.Occupancy's duty cycle
		lat := x.eng.Latency(in.delay, x.meanReq)
		x.cur.success += perPod
		x.cur.prompt += perPod * x.prompt
		x.cur.generation += perPod * x.output
		for i, v := range [3]float64{lat.TTFT(), lat.Queue, lat.E2E()} {
			x.cur.hists[i].observe(modelFamilies[mTTFT+metricKind(i)].Buckets, v, perPod)
		}
	}
	st.cum.copyFrom(&x.cur)
	// The gateway counts a request when it arrives, as an error when no pod is Ready.
	if arrived := in.lambda * x.dt; s.ready > 0 {
		x.gw.requests += arrived
		x.gw.requestsSeen = x.gw.requestsSeen || arrived > 0
	} else {
		x.gw.errors += arrived
		x.gw.errsSeen = x.gw.errsSeen || arrived > 0
	}
	st.gw = x.gw
	// dcgm-exporter collects every interval and serves its last collection in between.
	if t%x.dcgmEvery == 0 {
		x.dcgm = dcgmCollection{at: t, util: math.Round(100 * busy)}
	}
	st.dcgm = x.dcgm
}

// scaled mirrors service.scale at tick t: new pods become Ready at readyAt; removals take
// starting pods first, newest first, then the Ready pod that became Ready last.
func (x *expo) scaled(t int, want int32, readyAt int) {
	for int32(len(x.ready)+len(x.starting)) < want {
		x.starting = append(x.starting, x.newPod(t, readyAt))
	}
	for int32(len(x.ready)+len(x.starting)) > want {
		var p *modelPod
		if n := len(x.starting); n > 0 {
			p, x.starting = x.starting[n-1], x.starting[:n-1]
		} else {
			n := len(x.ready)
			p, x.ready = x.ready[n-1], x.ready[:n-1]
		}
		p.removed = t
		x.gpus.release(p.node*gpusPerNode + p.gpu)
		x.dead = append(x.dead, p)
	}
}

// initial adds the n pods Ready at the start of the run.
func (x *expo) initial(n int32) {
	for range n {
		p := x.newPod(-1, 0)
		p.base = newCumulative()
		x.ready = append(x.ready, p)
	}
}

// newPod returns a pod created at tick t, Ready at readyAt, on the lowest free GPU.
func (x *expo) newPod(t, readyAt int) *modelPod {
	g := x.gpus.take()
	p := &modelPod{name: podName(x.workload, x.serial), created: t, readyAt: readyAt, removed: -1, node: g / gpusPerNode, gpu: g % gpusPerNode}
	x.serial++
	return p
}

// gpuSlots hands out GPU slots (node x gpusPerNode + index), the lowest free first.
type gpuSlots struct {
	next int
	free []int // freed slots below next, a min-heap
}

func (g *gpuSlots) take() int {
	if len(g.free) == 0 {
		g.next++
		return g.next - 1
	}
	return heap.Pop((*intHeap)(&g.free)).(int)
}

func (g *gpuSlots) release(slot int) { heap.Push((*intHeap)(&g.free), slot) }

type intHeap []int

func (h intHeap) Len() int           { return len(h) }
func (h intHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h intHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *intHeap) Push(v any)        { *h = append(*h, v.(int)) }
func (h *intHeap) Pop() any {
	old := *h
	v := old[len(old)-1]
	*h = old[:len(old)-1]
	return v
}

// podName is the name of a Deployment's pod: <workload>-<ReplicaSet hash>-<5 characters>,
// the characters the serial in base 36.
func podName(workload string, serial int) string {
	s := strconv.FormatInt(int64(serial), 36)
	if len(s) < 5 {
		s = "00000"[len(s):] + s
	}
	return workload + "-" + podHash + "-" + s
}

// nodeName is the name of the node of index i.
func nodeName(i int) string { return "node-" + strconv.Itoa(i) }

// podLabels returns the label sets of pod p's series of family f: one, or a histogram's
// buckets (+Inf last), sum and count. They are built once per pod and family.
func (x *expo) podLabels(p *modelPod, f *modelFamily) []labels.Labels {
	if ls := p.labelsByKind[f.metric]; ls != nil {
		return ls
	}
	var own []string
	switch f.scope {
	case perReadyPod:
		for _, l := range f.Labels {
			switch l {
			case "model_name":
				own = append(own, x.workload)
			case "engine":
				own = append(own, vllmEngine)
			case "finished_reason":
				own = append(own, "stop")
			default:
				panic(fmt.Sprintf("backtest: no value for label %s of %s", l, f.Name))
			}
		}
	case perGPU:
		own = sandbox.DCGMLabelValues(nodeName(p.node), p.gpu, dcgmContainer, x.namespace, p.name)
	}
	build := func(name string, extra ...string) labels.Labels {
		b := labels.NewScratchBuilder(len(f.Labels) + 4)
		b.Add(model.MetricNameLabel, name)
		for i, l := range f.Labels {
			b.Add(l, own[i])
		}
		if f.scope == perReadyPod {
			for i, l := range sandbox.PodTargetLabels() {
				b.Add(l, [...]string{x.namespace, x.workload, p.name}[i])
			}
		}
		for i := 0; i+1 < len(extra); i += 2 {
			b.Add(extra[i], extra[i+1])
		}
		b.Sort()
		return b.Labels()
	}
	var ls []labels.Labels
	if f.Type == "histogram" {
		for _, le := range f.Buckets {
			ls = append(ls, build(f.Name+"_bucket", "le", formatLE(le)))
		}
		ls = append(ls, build(f.Name+"_bucket", "le", "+Inf"), build(f.Name+"_sum"), build(f.Name+"_count"))
	} else {
		ls = append(ls, build(f.Name))
	}
	p.labelsByKind[f.metric] = ls
	return ls
}

// formatLE writes a bucket bound as client_golang's exposition does.
func formatLE(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// value returns the value at tick t of pod p's series of family f (part: a bucket index,
// partSum, partCount or partNone), and false when the series has no sample then.
func (x *expo) value(f *modelFamily, p *modelPod, part int, t int) (float64, bool) {
	st := x.state(t)
	switch f.scope {
	case perReadyPod:
		if !p.ready(t) {
			return 0, false
		}
	case perGPU:
		at := st.dcgm.at
		if !p.holding(at) {
			return 0, false
		}
		if !p.ready(at) {
			return 0, true // loading its model: no kernel runs
		}
		return st.dcgm.util, true
	case perService:
		switch f.metric {
		case mRequests:
			return st.gw.requests, st.gw.requestsSeen
		case mErrors:
			return st.gw.errors, st.gw.errsSeen
		}
		return float64(st.ready), true // set at every refresh, 0 included
	}
	c, b := &st.cum, &p.base
	switch f.metric {
	case mRunning:
		return st.running, true
	case mWaiting:
		return st.waiting, true
	case mKV:
		return st.kv, true
	case mSuccess:
		return c.success - b.success, true
	case mPrompt:
		return c.prompt - b.prompt, true
	case mGeneration:
		return c.generation - b.generation, true
	}
	h, hb := &c.hists[f.metric-mTTFT], &b.hists[f.metric-mTTFT]
	switch part {
	case partSum:
		return h.sum - hb.sum, true
	case partCount:
		n := len(h.le) - 1
		return h.le[n] - hb.le[n], true
	}
	return h.le[part] - hb.le[part], true
}
