package backtest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prescale/prescale/policy"
)

// Contender is one policy that Run scores. With Policy set it is driven through
// policy.Decide; with Policy nil it is the oracle, the model's clairvoyant formula.
type Contender struct {
	Name   string
	Policy *policy.Policy
	// Reference marks the model's own HPA (Baseline, BaselineFromZero, HPAGrid): its
	// queries bind to the quantities of the v1 model (Bind), GPU utilization as load over
	// capacity among them, rather than being evaluated over the model's series. Every
	// other policy's queries are PromQL over the series (docs/backtest.md).
	Reference bool
	// Buffer, with Params.Nodes, has the node autoscaler also provision for the
	// contender's CapacityBuffer: for a policy, what its forecast plans for over the node
	// lead beyond its horizon less what it asks for (engine.Engine.Ahead, as prescale run
	// sizes it); for the oracle, the largest need of the next start-up and node lead.
	Buffer bool
}

// Contenders returns the three policies every backtest reports, in table order: the
// HPA-equivalent baseline, configured, and the oracle.
func Contenders(configured *policy.Policy, par Params) ([]Contender, error) {
	hpa, err := Baseline(par)
	if err != nil {
		return nil, err
	}
	return buffered([]Contender{{Name: HPAName, Policy: hpa, Reference: true}, {Name: configured.Name, Policy: configured}, {Name: OracleName}}, par), nil
}

// buffered sets Buffer on the contenders after the HPA (the configured policy and the
// oracle) when the model's nodes say so (NodeModel.Buffers): the HPA's node autoscaler
// stays reactive.
func buffered(cs []Contender, par Params) []Contender {
	if par.Nodes != nil && par.Nodes.Buffers {
		for i := 1; i < len(cs); i++ {
			cs[i].Buffer = true
		}
	}
	return cs
}

// ContendersOn is Contenders for trace tr: at minReplicas 0 the baseline is the HPA's
// reactive scale-from-zero, BaselineFromZero, whose External metric's target needs the trace.
func ContendersOn(configured *policy.Policy, par Params, tr Trace) ([]Contender, error) {
	if par.MinReplicas != 0 {
		return Contenders(configured, par)
	}
	hpa, err := BaselineFromZero(par, tr)
	if err != nil {
		return nil, err
	}
	return buffered([]Contender{{Name: HPAName, Policy: hpa, Reference: true}, {Name: configured.Name, Policy: configured}, {Name: OracleName}}, par), nil
}

// Options are Run's inputs besides the trace and the contenders.
type Options struct {
	Params Params
	// Record keeps per-tick pods and per-minute violations in each PolicyResult, for Plot.
	Record bool
	// Progress, when set, is called every few thousand ticks with the ticks simulated so far
	// and the total, over all contenders.
	Progress func(done, total int)
}

// Score is one policy's outcome on a trace.
type Score struct {
	// GPUHours is the sum over ticks of (Ready + starting) x GPUsPerReplica x dt, in hours,
	// counting the pods that held GPUs while the tick's requests were served (before the
	// tick's decision): a pod costs from the tick after its creation through the tick of its
	// removal.
	GPUHours float64 `json:"gpuHours"`
	// UnderProvisionedMinutes counts minutes in which, at some tick, lambda > mu x Ready.
	UnderProvisionedMinutes int `json:"underProvisionedMinutes"`
	// SLOViolationMinutes counts minutes in which, at some tick, the queueing delay exceeded
	// the SLO.
	SLOViolationMinutes int `json:"sloViolationMinutes"`
	// ScaleEvents counts ticks at which the desired total differed from the current total.
	ScaleEvents int `json:"scaleEvents"`
	// PeakQueue is the largest queue, in requests.
	PeakQueue float64 `json:"peakQueue"`
	// IdleGPUHours is the part of GPUHours spent in the trace's minutes without requests:
	// what idling at zero saves.
	IdleGPUHours float64 `json:"idleGpuHours"`
	// ZeroHours is the time with no pod, Ready or starting, in hours.
	ZeroHours float64 `json:"zeroHours"`
	// ReturnViolationMinutes counts the SLO-violation minutes within ReturnWindow of a
	// return (Result.Returns): the first requests after an idle minute wait for a pod to
	// start when the policy idled at zero.
	ReturnViolationMinutes int `json:"returnViolationMinutes"`
	// P99QueueingDelay is the 99th percentile (nearest rank) of the per-tick queueing delay, in
	// seconds; +Inf (null in JSON) when more than 1% of ticks had a queue and no Ready pod.
	P99QueueingDelay policy.Float `json:"p99QueueingDelaySeconds"`
	// NodeHours, with Params.Nodes, is the sum over ticks of the nodes launched and not yet
	// removed (booting or Ready, empty or not) x dt, in hours; PendingPodHours the pods
	// that waited for a node. With nodes, GPUHours counts the pods placed on one.
	NodeHours       float64 `json:"nodeHours,omitempty"`
	PendingPodHours float64 `json:"pendingPodHours,omitempty"`
}

// PolicyResult is one contender's score and, when recorded, its series.
type PolicyResult struct {
	Name string `json:"name"`
	Score
	// Ready and Total are the Ready and the Ready + starting pods at each tick, as served.
	Ready, Total []int32 `json:"-"`
	// Queue is the queue at the end of each tick's serving.
	Queue []float64 `json:"-"`
	// Violation marks each SLO-violation minute.
	Violation []bool `json:"-"`
}

// Result is a backtest of one trace.
type Result struct {
	// Mu is the per-replica capacity, requests/s at 100% busy.
	Mu      float64 `json:"muRequestsPerSecond"`
	Minutes int     `json:"minutes"`
	Ticks   int     `json:"ticks"`
	// Returns counts the minutes with requests that follow a minute without.
	Returns  int            `json:"returns"`
	Policies []PolicyResult `json:"policies"`
	// Nodes is the model's nodes (Params.Nodes), nil without; NodeLeadSeconds and
	// ConsolidateAfterSeconds are its durations.
	Nodes                   *NodeModel `json:"nodes,omitempty"`
	NodeLeadSeconds         float64    `json:"nodeLeadSeconds,omitempty"`
	ConsolidateAfterSeconds float64    `json:"consolidateAfterSeconds,omitempty"`
	// Warnings say what the run did other than the policies say: a policy that runs
	// without its forecast, which cannot be built at the backtest's load step, and why.
	Warnings []string `json:"warnings,omitempty"`
}

// ReturnWindow is how long after a return its SLO-violation minutes count as the return's
// (Score.ReturnViolationMinutes): a start-up, and the time to drain what queued meanwhile.
const ReturnWindow = 30 * time.Minute

// Policy returns the result of the contender named name, and false if there is none.
func (r *Result) Policy(name string) (*PolicyResult, bool) {
	for i := range r.Policies {
		if r.Policies[i].Name == name {
			return &r.Policies[i], true
		}
	}
	return nil, false
}

// ErrNoRequests is Run's error for a trace whose every minute is 0 (or that has none).
var ErrNoRequests = errors.New("no minute has requests: the model scales its capacity to the peak minute")

// smallestNormal is the smallest normal float64, 2^-1022.
const smallestNormal = 0x1p-1022

// CheckTrace returns an error when the model par cannot simulate tr: a trace without
// requests (ErrNoRequests), a minute whose requests are not a number in 0..MaxRequests, or a
// peak so small that a replica's capacity at the target utilization (peak / 60 /
// PeakReplicas requests/s) is not a normal float64. par must be valid. A trace that passes
// gives finite numbers everywhere: the queue holds at most the trace's requests.
func (par Params) CheckTrace(tr Trace) error {
	for m, v := range tr {
		if !(v >= 0 && v <= MaxRequests) {
			return fmt.Errorf("minute %d: %v requests: want a number in 0..%g", m, v, MaxRequests)
		}
	}
	if len(tr) == 0 || tr.Peak() <= 0 {
		return ErrNoRequests
	}
	if mu := par.Mu(tr); math.IsInf(mu, 0) || !(mu*par.TargetUtilization >= smallestNormal) {
		return fmt.Errorf("a peak of %g requests a minute is too small for the model: %d replicas at %g utilization serve it at %g requests/s each",
			tr.Peak(), par.PeakReplicas, par.TargetUtilization, mu)
	}
	return nil
}

// Run replays tr through the model once per contender, tick by tick, and scores each. It
// returns an error for invalid parameters, a trace that CheckTrace refuses, a duplicate name, a
// policy metric that binds to none of the model's series, or a policy that asks for more
// than ReplicasLimit replicas.
func Run(tr Trace, cs []Contender, opt Options) (Result, error) {
	par := opt.Params
	if err := par.Validate(); err != nil {
		return Result{}, fmt.Errorf("model parameters: %w", err)
	}
	if err := par.CheckTrace(tr); err != nil {
		return Result{}, fmt.Errorf("trace: %w", err)
	}
	e := newEnv(par, tr)
	res := Result{Mu: e.mu, Minutes: len(tr), Ticks: e.ticks, Returns: e.returns, Policies: make([]PolicyResult, len(cs))}
	if n := par.Nodes; n != nil {
		res.Nodes, res.NodeLeadSeconds, res.ConsolidateAfterSeconds = n, n.Lead.Seconds(), n.ConsolidateAfter.Seconds()
	}

	ctls := make([]controller, len(cs))
	for i, c := range cs {
		if slices.ContainsFunc(cs[:i], func(o Contender) bool { return o.Name == c.Name }) {
			return Result{}, fmt.Errorf("contender %q given twice", c.Name)
		}
		if c.Policy == nil {
			ctls[i] = e.oracle()
			continue
		}
		d, err := newDecider(c.Policy, par, e.mu, c.Reference)
		if err != nil {
			return Result{}, err
		}
		if d.noForecast != nil {
			res.Warnings = append(res.Warnings, d.noForecast.Error())
		}
		ctls[i] = d
	}
	for i := range cs {
		var err error
		if res.Policies[i], err = e.simulate(cs[i].Name, ctls[i], cs[i].Buffer, opt, i*e.ticks, len(cs)*e.ticks); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// newEnv returns the simulation of trace tr on the model par.
func newEnv(par Params, tr Trace) *env {
	e := &env{par: par, tr: tr, mu: par.Mu(tr), tpm: par.ticksPerMinute(), startup: par.startupTicks()}
	e.ticks = len(tr) * e.tpm
	e.delays = make([]float64, e.ticks)
	e.atReturn = make([]bool, len(tr))
	for m := 1; m < len(tr); m++ {
		if tr[m] > 0 && tr[m-1] == 0 {
			e.returns++
			for k := m; k < min(len(tr), m+int(ReturnWindow/time.Minute)); k++ {
				e.atReturn[k] = true
			}
		}
	}
	return e
}

// env is what every contender's simulation of one trace shares.
type env struct {
	par     Params
	tr      Trace
	mu      float64
	tpm     int // ticks per minute
	startup int // ticks from creation to Ready
	ticks   int
	delays  []float64 // scratch: one contender's per-tick queueing delay
	// atReturn marks the minutes within ReturnWindow of a return; returns counts them.
	atReturn []bool
	returns  int
}

// lambda returns the arrival rate at tick t, requests/s.
func (e *env) lambda(t int) float64 { return e.tr[t/e.tpm] / 60 }

// replicasFor returns the replicas that serve lambda at the target utilization, rounded up
// but not past a float64 rounding error (the peak needs exactly PeakReplicas), at least
// MinReplicas.
func (e *env) replicasFor(lambda float64) int32 {
	return max(e.par.MinReplicas, e.serving(lambda))
}

// serving is replicasFor without MinReplicas.
func (e *env) serving(lambda float64) int32 {
	x := lambda / (e.mu * e.par.TargetUtilization)
	return max(0, int32(math.Ceil(x-1e-9)))
}

// need returns the replicas that tick t's load needs at the target utilization: the demand
// the trace carries.
func (e *env) need(t int) int32 { return e.serving(e.lambda(t)) }

// service is the simulated workload: Ready pods, starting pods, Pending pods and the queue.
type service struct {
	ready int32
	// starting holds the tick at which each starting pod becomes Ready, oldest first.
	starting []int
	// pending counts the pods waiting for a node (Params.Nodes; 0 without).
	pending int32
	queue   float64
	// served is the last tick's serving.
	served tickInput
}

// total is the replicas asked for: Ready, starting and Pending.
func (s *service) total() int32 { return s.ready + int32(len(s.starting)) + s.pending }

// placed is the pods on a node, which hold its GPUs: Ready and starting.
func (s *service) placed() int32 { return s.ready + int32(len(s.starting)) }

// promote makes the starting pods whose ready tick is <= t Ready.
func (s *service) promote(t int) {
	n := 0
	for n < len(s.starting) && s.starting[n] <= t {
		n++
	}
	if n > 0 {
		s.ready += int32(n)
		s.starting = s.starting[:copy(s.starting, s.starting[n:])]
	}
}

// scale sets the total to want: new pods are Ready at tick readyAt, or Pending with pend
// (they wait for a node); removals take Pending pods first, then starting pods, newest
// first, then Ready pods.
func (s *service) scale(want int32, readyAt int, pend bool) {
	if pend && s.total() < want {
		s.pending += want - s.total()
	}
	for s.total() < want {
		s.starting = append(s.starting, readyAt)
	}
	for s.total() > want {
		if s.pending > 0 {
			s.pending--
		} else if n := len(s.starting); n > 0 {
			s.starting = s.starting[:n-1]
		} else {
			s.ready--
		}
	}
}

// window holds the last 4 ticks of a series; NaN marks a tick without a sample.
type window [4]float64

func newWindow() window { return window{math.NaN(), math.NaN(), math.NaN(), math.NaN()} }

// push adds tick t's value.
func (w *window) push(t int, v float64) { w[t%len(w)] = v }

// last is tick t's value.
func (w *window) last(t int) float64 { return w[t%len(w)] }

// mean is avg_over_time over the last 4 ticks: the mean of the samples present, and false
// when there are none.
func (w *window) mean() (float64, bool) {
	var sum float64
	n := 0
	for _, v := range w {
		if !math.IsNaN(v) {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}

// controller is one policy's control loop: at each tick it returns the desired total.
type controller interface {
	// desired returns the total replicas wanted at tick t (instant now), having seen the
	// service and the metric windows of this tick.
	desired(t int, now time.Time, s *service, w *[numSeries]window) int32
	// scaled tells the controller that its change from `from` to `to` was written at now.
	scaled(from, to int32, now time.Time)
}

// simulate replays the whole trace under ctl and scores it; with Params.Nodes and buffer,
// its node autoscaler provisions for ctl's buffer too. progressBase and progressTotal place
// this contender's ticks in Options.Progress. It returns an error when ctl sets a total
// over ReplicasLimit: the service holds memory per replica.
func (e *env) simulate(name string, ctl controller, buffer bool, opt Options, progressBase, progressTotal int) (PolicyResult, error) {
	m := e.newSim(name, ctl, opt)
	for t := range e.ticks {
		m.serve(t)
		want, now := m.decide(t)
		if err := m.actuate(t, want, now); err != nil {
			return PolicyResult{}, err
		}
		if m.n != nil {
			// The scheduler places the new pods on free Ready nodes at once; the node
			// autoscaler then provisions for the rest.
			m.n.place(&m.s, t+e.startup)
			var b int32
			if bc, ok := ctl.(bufferer); ok && buffer {
				// The lead as the model boots a node: whole ticks, at least one.
				b = bc.buffer(t, time.Duration(max(1, m.n.lead))*e.par.Tick, m.s.total())
			}
			m.n.autoscale(t, m.s.total()+b, m.s.placed())
		}
		if opt.Progress != nil && (t+1)%4096 == 0 {
			opt.Progress(progressBase+t+1, progressTotal)
		}
	}
	if opt.Progress != nil {
		opt.Progress(progressBase+e.ticks, progressTotal)
	}
	return m.finish(), nil
}

// sim is one contender's replay of one trace, a tick at a time: serve, decide, actuate.
type sim struct {
	e    *env
	name string
	ctl  controller
	opt  Options
	res  PolicyResult
	s    service
	w    [numSeries]window
	// podTicks sums the pods held at each tick, idlePodTicks those in minutes without
	// requests, zeroTicks the ticks without a pod; lastUnder and lastViolation are the last
	// minutes counted.
	podTicks, idlePodTicks   float64
	zeroTicks                int
	lastUnder, lastViolation int
	// n is the nodes (Params.Nodes), nil without; pendingTicks sums the Pending pods.
	n            *nodes
	pendingTicks float64
}

// bufferer is a controller that sizes a CapacityBuffer (Contender.Buffer).
type bufferer interface {
	// buffer returns the replicas to provision nodes for beyond the total asked for at tick
	// t, for nodes that take lead to be Ready.
	buffer(t int, lead time.Duration, total int32) int32
}

// nodes is the service's nodes and the reactive node autoscaler (NodeModel).
type nodes struct {
	slots int32 // pods a node holds
	ready int32 // Ready nodes
	// booting holds the tick at which each booting node is Ready, oldest first.
	booting           []int
	lead, consolidate int // ticks
	// surplusSince is the tick since which there have been more nodes than needed, -1
	// while there are not.
	surplusSince int
	nodeTicks    float64
}

func newNodes(par Params, pods int32) *nodes {
	n := &nodes{slots: par.Nodes.slots(par.GPUsPerReplica), surplusSince: -1,
		lead:        int((par.Nodes.Lead + par.Tick - 1) / par.Tick),
		consolidate: int((par.Nodes.ConsolidateAfter + par.Tick - 1) / par.Tick)}
	n.ready = n.hold(pods)
	return n
}

// hold returns the nodes that pods need, packed.
func (n *nodes) hold(pods int32) int32 { return (pods + n.slots - 1) / n.slots }

// promote makes the booting nodes whose ready tick is <= t Ready.
func (n *nodes) promote(t int) {
	k := 0
	for k < len(n.booting) && n.booting[k] <= t {
		k++
	}
	n.ready += int32(k)
	n.booting = n.booting[:copy(n.booting, n.booting[k:])]
}

// autoscale is the node autoscaler's pass at tick t, after the decision: it launches the
// nodes that demand (the pods asked for and the buffer) needs beyond the Ready and booting
// ones, Ready lead later, and removes surplus Ready nodes that no placed pod needs once they
// have been surplus for consolidate.
func (n *nodes) autoscale(t int, demand, placed int32) {
	need, have := n.hold(demand), n.ready+int32(len(n.booting))
	for ; have < need; have++ {
		n.booting = append(n.booting, t+max(1, n.lead))
	}
	if have == need {
		n.surplusSince = -1
		return
	}
	if n.surplusSince < 0 {
		n.surplusSince = t
	}
	if t-n.surplusSince >= n.consolidate {
		n.ready -= min(have-need, n.ready-n.hold(placed))
		n.surplusSince = -1
	}
}

// place starts the Pending pods that the Ready nodes have room for, Ready at readyAt.
func (n *nodes) place(s *service, readyAt int) {
	k := min(s.pending, max(0, n.ready*n.slots-s.placed()))
	s.pending -= k
	for range k {
		s.starting = append(s.starting, readyAt)
	}
}

func (e *env) newSim(name string, ctl controller, opt Options) *sim {
	m := &sim{e: e, name: name, ctl: ctl, opt: opt, res: PolicyResult{Name: name}, lastUnder: -1, lastViolation: -1}
	if opt.Record {
		m.res.Ready, m.res.Total, m.res.Queue = make([]int32, e.ticks), make([]int32, e.ticks), make([]float64, e.ticks)
		m.res.Violation = make([]bool, len(e.tr))
	}
	m.s = service{ready: e.replicasFor(e.lambda(0))}
	if _, ok := ctl.(*decider); ok {
		// A policy starts with a replica even where the load needs none: at zero, a fresh
		// engine (as a fresh HPA) reads the target as turned off and never scales it.
		m.s.ready = max(m.s.ready, 1)
	}
	if e.par.Nodes != nil {
		m.n = newNodes(e.par, m.s.ready) // the nodes of the first pods
	}
	for i := range m.w {
		m.w[i] = newWindow()
	}
	return m
}

// serve runs tick t up to its decision: the starting pods whose time has come become
// Ready, the tick's requests are served, and its metrics emitted and scored.
func (m *sim) serve(t int) {
	e, s, w, res := m.e, &m.s, &m.w, &m.res
	dt := e.par.Tick.Seconds()
	// 1. Nodes whose ready time has come become Ready and take Pending pods; starting pods
	// whose ready time has come become Ready.
	if n := m.n; n != nil {
		n.promote(t)
		n.place(s, t+e.startup)
		n.nodeTicks += float64(n.ready) + float64(len(n.booting))
		m.pendingTicks += float64(s.pending)
	}
	s.promote(t)
	// 2. Serve.
	lambda := e.lambda(t)
	ready := float64(s.ready)
	capacity := e.mu * ready * dt
	served := min(s.queue+lambda*dt, capacity)
	s.queue = s.queue + lambda*dt - served
	// 3. Emit this tick's metrics.
	util, perPod, delay := 100.0, math.NaN(), 0.0
	if s.ready > 0 {
		util = 100 * served / capacity
		perPod = s.queue / ready
		delay = s.queue / (e.mu * ready)
	} else if s.queue > 0 {
		delay = math.Inf(1)
	}
	w[GPUUtil].push(t, util)
	w[QueueDepth].push(t, perPod)
	w[QueueingDelay].push(t, delay)
	w[ArrivalRate].push(t, lambda)

	total := s.total()
	m.podTicks += float64(s.placed())
	minute := t / e.tpm
	if e.tr[minute] == 0 {
		m.idlePodTicks += float64(s.placed())
	}
	if total == 0 {
		m.zeroTicks++
	}
	if lambda > e.mu*ready && m.lastUnder != minute {
		m.lastUnder = minute
		res.UnderProvisionedMinutes++
	}
	if delay > e.par.SLO.Seconds() && m.lastViolation != minute {
		m.lastViolation = minute
		res.SLOViolationMinutes++
		if e.atReturn[minute] {
			res.ReturnViolationMinutes++
		}
		if m.opt.Record {
			res.Violation[minute] = true
		}
	}
	res.PeakQueue = max(res.PeakQueue, s.queue)
	s.served = tickInput{lambda: lambda, served: served, queue: s.queue, delay: delay}
	e.delays[t] = delay
	if m.opt.Record {
		res.Ready[t], res.Total[t], res.Queue[t] = s.ready, total, s.queue
	}
}

// decide returns the total the controller wants at tick t, and the tick's instant.
func (m *sim) decide(t int) (int32, time.Time) {
	now := Epoch.Add(time.Duration(t) * m.e.par.Tick)
	return m.ctl.desired(t, now, &m.s, &m.w), now
}

// actuate sets the total to want at tick t (instant now).
func (m *sim) actuate(t int, want int32, now time.Time) error {
	total := m.s.total()
	if want == total {
		return nil
	}
	if err := m.bound(t, want); err != nil {
		return err
	}
	m.res.ScaleEvents++
	m.s.scale(want, t+m.e.startup, m.n != nil)
	m.ctl.scaled(total, want, now)
	return nil
}

// bound returns an error when want, asked for at tick t, is over ReplicasLimit.
func (m *sim) bound(t int, want int32) error {
	if want > ReplicasLimit {
		return fmt.Errorf("policy %s wants %d replicas at minute %d: the model simulates at most %d", m.name, want, t/m.e.tpm, ReplicasLimit)
	}
	return nil
}

// finish scores the replay: its GPU-hours (idle ones too), time at zero and p99 queueing
// delay.
func (m *sim) finish() PolicyResult {
	e := m.e
	dt := e.par.Tick.Seconds()
	m.res.GPUHours = m.podTicks * e.par.GPUsPerReplica * dt / 3600
	m.res.IdleGPUHours = m.idlePodTicks * e.par.GPUsPerReplica * dt / 3600
	m.res.ZeroHours = float64(m.zeroTicks) * dt / 3600
	if m.n != nil {
		m.res.NodeHours = m.n.nodeTicks * dt / 3600
		m.res.PendingPodHours = m.pendingTicks * dt / 3600
	}
	slices.Sort(e.delays)
	m.res.P99QueueingDelay = policy.Float(e.delays[int(math.Ceil(0.99*float64(e.ticks)))-1])
	return m.res
}

// oracle is the model's clairvoyant policy: at each tick the total that serves the largest
// arrival rate of the next startup + dt seconds at the target utilization.
type oracle struct {
	need []int32
	tick time.Duration
}

func (e *env) oracle() *oracle {
	o := &oracle{need: make([]int32, e.ticks), tick: e.par.Tick}
	last := len(e.tr) - 1
	for t := range e.ticks {
		// Ticks t .. t+startup cover the next startup + dt seconds; lambda is constant
		// within a minute, so the largest is that of the minutes they touch.
		var peak float64
		for m := t / e.tpm; m <= min((t+e.startup)/e.tpm, last); m++ {
			peak = max(peak, e.tr[m])
		}
		o.need[t] = e.replicasFor(peak / 60)
	}
	return o
}

func (o *oracle) desired(t int, _ time.Time, _ *service, _ *[numSeries]window) int32 {
	return o.need[t]
}

// buffer is the oracle's CapacityBuffer: the largest need of the ticks a pod placed on a
// node launched now would serve first (lead later, then its start-up), beyond total.
func (o *oracle) buffer(t int, lead time.Duration, total int32) int32 {
	end := min(len(o.need)-1, t+int((lead+o.tick-1)/o.tick))
	var most int32
	for k := t; k <= end; k++ {
		most = max(most, o.need[k])
	}
	return max(0, most-total)
}

func (o *oracle) scaled(int32, int32, time.Time) {}
