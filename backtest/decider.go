package backtest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/prom"
	sandbox "github.com/prescale/prescale/sandbox/sim"
)

// decider drives a policy's engine.Engine, as prescale run's controller does: it builds the
// Observation the controller would read from the apiserver and Prometheus, and reports each
// written scale. It reuses its pods, names and per-pod maps from tick to tick, and grows them
// as the service grows: a policy's maxReplicas is a bound, not a size.
type decider struct {
	eng  *engine.Engine
	bind []Series
	in   engine.Input
	// pods holds one pod per name; the first Ready of them are the Ready pods.
	pods []policy.Pod
	// perPod holds, for each per-pod series some metric reads, one value per Ready pod; its
	// keys are pods[:keyed].
	perPod [numSeries]map[string]float64
	keyed  [numSeries]int
	// forecasts is true for a policy with a forecast; load is the series its load query
	// binds to, sampled on the last tick of each minute (tpm ticks).
	forecasts bool
	load      Series
	loadS     policy.Sample
	tpm       int
	// objective is true for a policy with an objective; its query reads the queueing
	// delay of this tick (an instant query), into latency.
	objective bool
	latency   policy.Sample
	// waits is true for a reference policy's objective with objective.waiting: the model's
	// queue (the requests not yet served at this tick) is its sample, into waiting. Other
	// policies' objective.waiting is evaluated as a query (promqlObserver), with the
	// latency, so that a minute in which nothing got its first token while requests waited
	// counts as violated (engine.Waited), as in prescale run.
	waits   bool
	waiting policy.Sample
	// activates is true for a policy with scaleToZero: its activation query reads the
	// 4-tick mean of a service series (it exists while no pod does), into activation.
	activates  bool
	activ      Series
	activation policy.Sample
	// noForecast says why a policy with a forecast runs without one: its forecaster cannot
	// be built at the backtest's load step (a season under two minutes); nil otherwise.
	noForecast error
	// pq evaluates the queries of a policy that is not the reference over the model's
	// series; nil for the reference, whose queries read the windows of bind.
	pq *promqlObserver
	// ahead is the replicas the forecast last planned over a node lead (buffer).
	ahead int32
}

// promqlObserver evaluates a policy's queries with the PromQL engine over the series of
// its model, x.
type promqlObserver struct {
	x                           *expo
	metrics                     []modelQuery
	load, objective, activation *modelQuery
	waiting                     *modelQuery          // objective.waiting
	perPod                      []map[string]float64 // one map per metric, reused
	activationPods, loadPods    map[string]float64
	waitingPods                 map[string]float64
	startupTicks, lastTick      int
}

// newDecider builds the controller of policy p on the model par, whose replicas serve mu
// requests/s each. A reference policy (Contender.Reference) reads the v1 model's
// quantities (Bind); any other has its queries evaluated by the PromQL engine over the
// model's series, and a query whose selector selects none of them is an error naming the
// query, the policy and the selector. A policy with a forecast whose forecaster cannot be
// built runs without it (noForecast says why). It starts with no history (the trace is the
// history, kept by the engine and refitted on daily), samples its load once a minute (the
// trace's resolution), and its horizon: auto is the model's start-up plus one tick plus the
// load query's lag (prom.Lag), plus the minute less one tick that a forecast made on
// a minute's last tick serves.
func newDecider(p *policy.Policy, par Params, mu float64, reference bool) (*decider, error) {
	d := &decider{in: engine.Input{Writes: true}}
	var err error
	if reference {
		err = d.bindReference(p)
	} else {
		d.pq, err = newPromqlObserver(p, par, mu)
	}
	if err != nil {
		return nil, err
	}
	d.in.Metrics = make([]policy.Sample, len(p.Metrics))
	startup := time.Duration(par.startupTicks()) * par.Tick
	opts := engine.Options{Tick: par.Tick, DefaultStartup: startup, KeepLoad: true, Pacing: par.Pacing}
	if p.Forecast != nil {
		d.forecasts = true
		opts.LoadStep = time.Minute
	}
	d.objective = p.Objective != nil
	d.waits = p.Objective != nil && p.Objective.Waiting != ""
	d.activates = p.ScaleToZero != nil
	d.tpm = par.ticksPerMinute()
	if d.eng, err = engine.New(p, opts); err != nil {
		return nil, err
	}
	d.eng.SetStartup(startup, true)
	if d.forecasts && !reference {
		// The load query is evaluated over the model's series, so it trails the model's
		// demand as it would a real one (half of rate(...[1m])'s window).
		lag, err := prom.Lag(p.Forecast.Load.Query)
		if err != nil {
			return nil, fmt.Errorf("forecast.load.query of policy %s: %w", p.Name, err)
		}
		d.eng.SetLoadLag(lag)
	}
	if d.forecasts {
		// Built now, as the first Step would build it, to learn why it cannot be.
		if _, err := d.eng.Fit(nil, nil, Epoch); err != nil {
			d.noForecast = fmt.Errorf("policy %s runs without its forecast, which cannot be built at the backtest's load step of %v: %w", p.Name, time.Minute, err)
		}
	}
	return d, nil
}

// bindReference binds the queries of the reference policy p to the v1 model's
// quantities.
func (d *decider) bindReference(p *policy.Policy) error {
	bind, err := Bind(p)
	if err != nil {
		return err
	}
	d.bind = bind
	if f := p.Forecast; f != nil {
		s, ok := bindQuery(f.Load.Query)
		if !ok {
			return fmt.Errorf("bind forecast load of policy %s: query %q mentions none of the model's series (%s)",
				p.Name, f.Load.Query, strings.Join(seriesNames[:], ", "))
		}
		d.load = s
	}
	if o := p.Objective; o != nil {
		if s, ok := bindQuery(o.Query); !ok || s != QueueingDelay {
			return fmt.Errorf("bind objective of policy %s: query %q must read the queueing delay (%s), the latency the model's SLO bounds",
				p.Name, o.Query, seriesNames[QueueingDelay])
		}
	}
	if z := p.ScaleToZero; z != nil {
		s, ok := bindQuery(z.Activation.Query)
		if !ok || s.perPod() {
			return fmt.Errorf("bind scaleToZero.activation of policy %s: query %q must read a series of the service (%s or %s), which exists while no pod does",
				p.Name, z.Activation.Query, seriesNames[QueueingDelay], seriesNames[ArrivalRate])
		}
		d.activ = s
	}
	for _, s := range bind {
		if s.perPod() && d.perPod[s] == nil {
			d.perPod[s] = map[string]float64{}
		}
	}
	return nil
}

// newPromqlObserver checks p's queries against the series of its model and keeps the
// window of ticks the longest of them reads.
func newPromqlObserver(p *policy.Policy, par Params, mu float64) (*promqlObserver, error) {
	o := &promqlObserver{startupTicks: par.startupTicks()}
	var errs []error
	check := func(what, q string) *modelQuery {
		mq, err := checkQuery(p, what, q)
		errs = append(errs, err)
		return &mq
	}
	for _, m := range p.Metrics {
		o.metrics = append(o.metrics, *check("metric "+m.Name, m.Query))
		o.perPod = append(o.perPod, map[string]float64{})
	}
	if f := p.Forecast; f != nil {
		o.load, o.loadPods = check("forecast.load", f.Load.Query), map[string]float64{}
	}
	if ob := p.Objective; ob != nil {
		o.objective = check("objective", ob.Query)
		if ob.Waiting != "" {
			o.waiting, o.waitingPods = check("objective.waiting", ob.Waiting), map[string]float64{}
		}
	}
	if z := p.ScaleToZero; z != nil {
		o.activation, o.activationPods = check("scaleToZero.activation", z.Activation.Query), map[string]float64{}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var reach time.Duration
	for _, q := range append(slices.Clone(o.metrics), derefs(o.load, o.objective, o.activation, o.waiting)...) {
		reach = max(reach, q.reach)
	}
	// The ticks within reach of the evaluation, the one before them (a stale marker needs
	// it), and dcgm-exporter's collection interval.
	window := int(reach/par.Tick) + 2 + int(sandbox.DefaultDCGMInterval/par.Tick)
	o.x = newExpo(par, mu, p.Target.Namespace, p.Target.Name, window)
	return o, nil
}

func derefs(qs ...*modelQuery) []modelQuery {
	var out []modelQuery
	for _, q := range qs {
		if q != nil {
			out = append(out, *q)
		}
	}
	return out
}

// grow makes sure there are at least n pods.
func (d *decider) grow(n int32) {
	for i := int32(len(d.pods)); i < n; i++ {
		d.pods = append(d.pods, policy.Pod{Name: "model-" + strconv.Itoa(int(i)), Phase: policy.PodRunning})
	}
}

func (d *decider) desired(t int, now time.Time, s *service, w *[numSeries]window) int32 {
	if d.pq != nil {
		d.pq.observe(t, now, s, d)
	} else {
		d.observeReference(t, s, w)
	}
	return d.eng.Step(d.in, now).Decision.DesiredReplicas
}

// observeReference fills the input of tick t from the v1 model's windows.
func (d *decider) observeReference(t int, s *service, w *[numSeries]window) {
	total, ready := s.total(), int(s.ready)
	// Ready pods, then starting ones: Running, not Ready, without samples (the HPA's
	// missing pods). spec.replicas and status.replicas are the total the policy last set.
	d.grow(total)
	for i := range d.pods[:total] {
		d.pods[i].Ready = i < ready
	}
	in := &d.in
	in.Pods = d.pods[:total]
	in.SpecReplicas, in.StatusReplicas = total, total

	// Per-pod series: every Ready pod reports the series' 4-tick mean.
	for ser, m := range d.perPod {
		if m == nil {
			continue
		}
		v, ok := w[ser].mean()
		keys := ready
		if !ok {
			keys = 0 // no sample in the window: no pod has one
		}
		for ; d.keyed[ser] > keys; d.keyed[ser]-- {
			delete(m, d.pods[d.keyed[ser]-1].Name)
		}
		for i := range keys {
			m[d.pods[i].Name] = v
		}
		d.keyed[ser] = keys
	}
	for i, s := range d.bind {
		switch v, ok := w[s].mean(); {
		case s.perPod():
			in.Metrics[i] = policy.Sample{PerPod: d.perPod[s]}
		case ok:
			in.Metrics[i] = policy.Sample{Value: v}
		default:
			in.Metrics[i] = policy.Sample{Err: errNoSample}
		}
	}

	// The trace is per minute: the load is sampled once a minute, on the minute's last
	// tick, whose 4-tick mean (as a rate over [1m] would be) is exactly that minute's rate.
	in.Load = nil
	if d.forecasts && (t+1)%d.tpm == 0 {
		d.loadS = policy.Sample{Err: errNoSample}
		if v, ok := w[d.load].mean(); ok {
			d.loadS = policy.Sample{Value: v}
		}
		in.Load = &d.loadS
	}
	in.Latency = nil
	if d.objective {
		d.latency = policy.Sample{Value: w[QueueingDelay].last(t)}
		in.Latency = &d.latency
	}
	in.Waiting = nil
	if d.waits {
		d.waiting = policy.Sample{Value: s.queue}
		in.Waiting = &d.waiting
	}
	in.Activation = nil
	if d.activates {
		d.activation = policy.Sample{Err: errNoSample}
		if v, ok := w[d.activ].mean(); ok {
			d.activation = policy.Sample{Value: v}
		}
		in.Activation = &d.activation
	}
}

// observe records tick t in the model's series and fills d's input from the policy's
// queries, evaluated at now: the metrics and the activation at every tick (every sync, as
// prescale run queries them), the load and the objective on the last tick of each minute.
// The objective counts minutes: its query, a quantile over the last minute, read at each
// minute's end sees each request once (and the trace's load changes once a minute); read
// at every tick it would cost four evaluations of every bucket of every pod a minute.
func (o *promqlObserver) observe(t int, now time.Time, s *service, d *decider) {
	x := o.x
	if x.now < 0 {
		x.initial(s.ready)
	}
	x.advance(t, s, s.served)
	o.lastTick = t
	// The pods as the apiserver lists them: Ready ones, then starting ones (Running, not
	// Ready, without samples: the HPA's missing pods).
	total := len(x.ready) + len(x.starting)
	d.grow(int32(total))
	for i, p := range x.ready {
		d.pods[i].Name, d.pods[i].Ready = p.name, true
	}
	for i, p := range x.starting {
		d.pods[len(x.ready)+i].Name, d.pods[len(x.ready)+i].Ready = p.name, false
	}
	in := &d.in
	in.Pods = d.pods[:total]
	in.SpecReplicas, in.StatusReplicas = int32(total), int32(total)
	for i := range o.metrics {
		in.Metrics[i] = x.sample(&o.metrics[i], now, o.perPod[i], false)
	}
	in.Load = nil
	if o.load != nil && (t+1)%d.tpm == 0 {
		d.loadS = x.sample(o.load, now, o.loadPods, false)
		if d.loadS.PerPod != nil {
			d.loadS = policy.Sample{Err: fmt.Errorf("want one series, got one per pod: %w", errShape)}
		}
		in.Load = &d.loadS
	}
	in.Latency, in.Waiting = nil, nil
	if o.objective != nil && (t+1)%d.tpm == 0 {
		d.latency = x.sample(o.objective, now, nil, true)
		in.Latency = &d.latency
		if o.waiting != nil { // read with the latency, as prescale run reads it each sync
			d.waiting = x.sample(o.waiting, now, o.waitingPods, false)
			in.Waiting = &d.waiting
		}
	}
	in.Activation = nil
	if o.activation != nil {
		d.activation = x.sample(o.activation, now, o.activationPods, false)
		in.Activation = &d.activation
	}
}

func (d *decider) scaled(from, to int32, now time.Time) {
	if o := d.pq; o != nil {
		o.x.scaled(o.lastTick, to, o.lastTick+o.startupTicks)
	}
	d.eng.Scaled(from, to, now)
}

// buffer is the policy's CapacityBuffer, as prescale run sizes it (scaler's bufferSize):
// what its forecast plans for over lead beyond its horizon, less the total it asks for; 0
// while the forecast is gated off; while it is not known (warming up, its load missing),
// what it last planned, as prescale run leaves the buffer as it is.
func (d *decider) buffer(_ int, lead time.Duration, total int32) int32 {
	switch ahead, state := d.eng.Ahead(lead); state {
	case engine.AheadKnown:
		d.ahead = ahead
	case engine.AheadOff:
		d.ahead = 0
	}
	return max(0, d.ahead-total)
}
