package backtest

import (
	"strconv"
	"time"

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
}

func newDecider(p *policy.Policy) (*decider, error) {
	bind, err := Bind(p)
	if err != nil {
		return nil, err
	}
	d := &decider{p: p, bind: bind, obs: policy.Observation{Metrics: make([]policy.Sample, len(p.Metrics))}}
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

func (d *decider) desired(_ int, now time.Time, s *service, w *[numSeries]window) int32 {
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

	var dec policy.Decision
	dec, d.hist = policy.Decide(d.p, d.obs, d.hist, now)
	// A forecast floor (a later issue) joins here: the larger of dec.DesiredReplicas and
	// the forecast's proposal, within the policy's bounds.
	return dec.DesiredReplicas
}

func (d *decider) scaled(from, to int32, now time.Time) {
	d.hist = d.hist.RecordScale(d.p, from, to, now)
}
