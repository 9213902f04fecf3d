package backtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// decider drives a policy through policy.Decide, as prescale run's controller does: it
// builds the Observation the controller would read from the apiserver and Prometheus, and
// records each written scale in the history. It reuses its pods, names and per-pod maps from
// tick to tick.
type decider struct {
	p    *policy.Policy
	bind []Series
	hist policy.History
	obs  policy.Observation
	// pods holds one pod per name; the first Ready of them are the Ready pods.
	pods []policy.Pod
	// perPod holds, for each per-pod series some metric reads, one value per Ready pod; its
	// keys are pods[:keyed].
	perPod [numSeries]map[string]float64
	keyed  [numSeries]int
	// pred is the policy's forecast, nil without a forecast block; load is the series its
	// load query binds to and horizon how far ahead it predicts.
	pred    *policy.Predictor
	load    Series
	horizon time.Duration
	tpm     int
	// loads are the load samples of the last history (the policy's forecast.history), the
	// Predictor refitted on them every refitEvery, as a controller restarted daily would be.
	loads   []forecast.Sample
	history time.Duration
}

// refitEvery is how often the backtest refits a policy's forecaster on its recent load.
const refitEvery = 24 * time.Hour

// newDecider builds the controller of policy p on the model par. A policy with a forecast
// gets a Predictor with no history (the trace is the history), stepping once a minute (the
// trace's resolution), horizon auto being the model's startup plus one tick, plus the
// minute less one tick that a forecast made on a minute's last tick serves.
func newDecider(p *policy.Policy, par Params) (*decider, error) {
	bind, err := Bind(p)
	if err != nil {
		return nil, err
	}
	d := &decider{p: p, bind: bind, obs: policy.Observation{Metrics: make([]policy.Sample, len(p.Metrics))}}
	if f := p.Forecast; f != nil {
		s, ok := bindQuery(f.Load.Query)
		if !ok {
			return nil, fmt.Errorf("bind forecast load of policy %s: query %q mentions none of the model's series (%s)",
				p.Name, f.Load.Query, strings.Join(seriesNames[:], ", "))
		}
		d.load = s
		d.history = f.HistoryOrDefault()
		d.tpm = par.ticksPerMinute()
		d.horizon = f.HorizonFor(time.Duration(par.startupTicks())*par.Tick, par.Tick)
		// The load is sampled once a minute and the forecast made then serves the minute's
		// ticks, so it must reach one horizon past the last of them.
		d.horizon += time.Minute - par.Tick
		if d.pred, err = policy.NewPredictor(f, time.Minute, d.horizon, nil); err != nil {
			return nil, fmt.Errorf("forecast of policy %s: %w", p.Name, err)
		}
	}
	for _, s := range bind {
		if s.perPod() && d.perPod[s] == nil {
			d.perPod[s] = make(map[string]float64, p.MaxReplicas)
		}
	}
	d.grow(p.MaxReplicas)
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
	d.obs.Pods = d.pods[:total]
	d.obs.SpecReplicas, d.obs.StatusReplicas = total, total

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
			d.obs.Metrics[i] = policy.Sample{PerPod: d.perPod[s]}
		case ok:
			d.obs.Metrics[i] = policy.Sample{Value: v}
		default:
			d.obs.Metrics[i] = policy.Sample{Err: errNoSample}
		}
	}

	// The forecast's load is the bound series' 4-tick mean, as a rate over [1m] would be.
	var load float64
	var loadOK bool
	if d.pred != nil {
		load, loadOK = d.loadSample(w)
		// The trace is per minute: the forecast steps once a minute, on the minute's last
		// tick, whose 4-tick mean is exactly that minute's rate.
		loadOK = loadOK && (t+1)%d.tpm == 0
		if loadOK {
			d.record(now, load)
		}
		d.obs.Forecast = d.pred.Observe(load, loadOK, now, d.horizon)
	}
	var dec policy.Decision
	dec, d.hist = policy.Decide(d.p, d.obs, d.hist, now)
	if d.pred != nil {
		d.pred.Learn(dec, load, loadOK)
	}
	return dec.DesiredReplicas
}

// record refits the Predictor at the first sample of each day (Epoch-aligned), once it has
// a day of samples, on the samples of the last history before now; then it keeps now's.
func (d *decider) record(now time.Time, load float64) {
	if d.history <= 0 {
		return
	}
	if n := len(d.loads); n > 0 && now.Sub(d.loads[0].At) >= refitEvery && now.Sub(Epoch)%refitEvery < time.Minute {
		cut := now.Add(-d.history)
		i := 0
		for i < n && d.loads[i].At.Before(cut) {
			i++
		}
		d.loads = d.loads[:copy(d.loads, d.loads[i:])]
		// Not expected to fail: NewPredictor fitted with the same options. On failure the
		// forecaster stays as it was.
		_ = d.pred.Refit(d.loads)
	}
	d.loads = append(d.loads, forecast.Sample{At: now, Value: load})
}

// loadSample returns the forecast's load this tick: the 4-tick mean of its series.
func (d *decider) loadSample(w *[numSeries]window) (float64, bool) {
	return w[d.load].mean()
}

func (d *decider) scaled(from, to int32, now time.Time) {
	d.hist = d.hist.RecordScale(d.p, from, to, now)
}
