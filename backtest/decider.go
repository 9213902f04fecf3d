package backtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
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
	// waits is true for an objective with objective.waiting: the model's queue (the
	// requests not yet served at this tick) is its sample, into waiting, whatever the query
	// says. The model always has a latency, so the rule it feeds (engine.Waited) never
	// decides a minute here; it is passed as prescale run would.
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
}

// newDecider builds the controller of policy p on the model par. A policy with a forecast
// whose forecaster cannot be built runs without it (noForecast says why). It starts with
// no history (the trace is the history, kept by the engine and refitted on
// daily), samples its load once a minute (the trace's resolution), and its horizon: auto
// is the model's start-up plus one tick, plus the minute less one tick that a forecast
// made on a minute's last tick serves.
func newDecider(p *policy.Policy, par Params) (*decider, error) {
	bind, err := Bind(p)
	if err != nil {
		return nil, err
	}
	d := &decider{bind: bind, in: engine.Input{Writes: true}}
	d.in.Metrics = make([]policy.Sample, len(p.Metrics))
	startup := time.Duration(par.startupTicks()) * par.Tick
	opts := engine.Options{Tick: par.Tick, DefaultStartup: startup, KeepLoad: true}
	if f := p.Forecast; f != nil {
		s, ok := bindQuery(f.Load.Query)
		if !ok {
			return nil, fmt.Errorf("bind forecast load of policy %s: query %q mentions none of the model's series (%s)",
				p.Name, f.Load.Query, strings.Join(seriesNames[:], ", "))
		}
		d.forecasts, d.load, d.tpm = true, s, par.ticksPerMinute()
		opts.LoadStep = time.Minute
	}
	if o := p.Objective; o != nil {
		if s, ok := bindQuery(o.Query); !ok || s != QueueingDelay {
			return nil, fmt.Errorf("bind objective of policy %s: query %q must read the queueing delay (%s), the latency the model's SLO bounds",
				p.Name, o.Query, seriesNames[QueueingDelay])
		}
		d.objective, d.waits = true, o.Waiting != ""
	}
	if z := p.ScaleToZero; z != nil {
		s, ok := bindQuery(z.Activation.Query)
		if !ok || s.perPod() {
			return nil, fmt.Errorf("bind scaleToZero.activation of policy %s: query %q must read a series of the service (%s or %s), which exists while no pod does",
				p.Name, z.Activation.Query, seriesNames[QueueingDelay], seriesNames[ArrivalRate])
		}
		d.activates, d.activ = true, s
	}
	if d.eng, err = engine.New(p, opts); err != nil {
		return nil, err
	}
	d.eng.SetStartup(startup, true)
	if d.forecasts {
		// Built now, as the first Step would build it, to learn why it cannot be.
		if _, err := d.eng.Fit(nil, nil, Epoch); err != nil {
			d.noForecast = fmt.Errorf("policy %s runs without its forecast, which cannot be built at the backtest's load step of %v: %w", p.Name, time.Minute, err)
		}
	}
	for _, s := range bind {
		if s.perPod() && d.perPod[s] == nil {
			d.perPod[s] = map[string]float64{}
		}
	}
	return d, nil
}

// grow makes sure there are at least n pods.
func (d *decider) grow(n int32) {
	for i := int32(len(d.pods)); i < n; i++ {
		d.pods = append(d.pods, policy.Pod{Name: "model-" + strconv.Itoa(int(i)), Phase: policy.PodRunning})
	}
}

func (d *decider) desired(t int, now time.Time, s *service, w *[numSeries]window) int32 {
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
	return d.eng.Step(*in, now).Decision.DesiredReplicas
}

func (d *decider) scaled(from, to int32, now time.Time) {
	d.eng.Scaled(from, to, now)
}
