package scaler

import (
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/prescale/prescale/engine"
)

// DefaultStartup is the pods' start-up time that horizon: auto assumes until one of the
// target's pods has been measured.
const DefaultStartup = engine.DefaultStartup

// startupWindow is how many of the latest measured start-ups the p90 is taken over.
const startupWindow = 20

// maxStartup bounds a measured start-up: a pod whose Ready condition last changed later
// than this after its creation became Ready again after a probe failure, and its
// creation-to-Ready time says nothing about a start-up.
const maxStartup = time.Hour

// startups measures the creation-to-Ready times of a target's pods: each pod once, when
// it is first seen Ready, over the last startupWindow pods.
type startups struct {
	seen map[types.UID]bool // pods measured (or not measurable), among the current ones
	ring [startupWindow]time.Duration
	next int
	n    int
}

// observe measures the pods not measured yet that are Ready, and forgets the pods that
// are gone.
func (s *startups) observe(pods []*corev1.Pod) {
	samples := make([]leadSample, len(pods))
	for i, p := range pods {
		d, ready, ok := startupOf(p)
		samples[i] = leadSample{uid: p.UID, d: d, ready: ready, ok: ok}
	}
	s.observeSamples(samples)
}

// leadSample is one object's creation-to-Ready time: ready is whether it is Ready now, ok
// whether d is a start-up (startupOf, nodeLeadOf).
type leadSample struct {
	uid       types.UID
	d         time.Duration
	ready, ok bool
}

// observeSamples measures the objects not measured yet that are Ready, and forgets the
// objects that are gone: samples are every current one.
func (s *startups) observeSamples(samples []leadSample) {
	if s.seen == nil {
		s.seen = map[types.UID]bool{}
	}
	current := make(map[types.UID]bool, len(samples))
	for _, m := range samples {
		current[m.uid] = true
		if s.seen[m.uid] {
			continue
		}
		if !m.ready {
			continue // measured once Ready
		}
		s.seen[m.uid] = true
		if m.ok {
			s.ring[s.next] = m.d
			s.next = (s.next + 1) % startupWindow
			s.n = min(s.n+1, startupWindow)
		}
	}
	for uid := range s.seen {
		if !current[uid] {
			delete(s.seen, uid)
		}
	}
}

// p90 returns the p90 of the measured start-ups, false before the first.
func (s *startups) p90() (time.Duration, bool) { return p90(s.ring[:s.n]) }

// startupOf returns a pod's creation-to-Ready time: ready is whether its Ready condition
// is True; ok whether the time is a start-up (both timestamps set, within 0..maxStartup).
func startupOf(p *corev1.Pod) (d time.Duration, ready, ok bool) {
	if p.DeletionTimestamp != nil {
		return 0, false, false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return readyLead(p.CreationTimestamp, c.Status, c.LastTransitionTime)
		}
	}
	return 0, false, false
}

// readyLead is the creation-to-Ready time of an object created at created whose Ready
// condition has status, last changed at since: ready is whether status is True; ok
// whether the time is a start-up (both timestamps set, within 0..maxStartup).
func readyLead(created metav1.Time, status corev1.ConditionStatus, since metav1.Time) (d time.Duration, ready, ok bool) {
	if status != corev1.ConditionTrue {
		return 0, false, false
	}
	if since.IsZero() || created.IsZero() {
		return 0, true, false
	}
	d = since.Sub(created.Time)
	return d, true, d >= 0 && d <= maxStartup
}

// p90 is the nearest-rank 90th percentile of ds: the smallest value at least 90 % of ds
// are at or below, the ceil(0.9 n)-th smallest. False for no values.
func p90(ds []time.Duration) (time.Duration, bool) {
	n := len(ds)
	if n == 0 {
		return 0, false
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := (9*n + 9) / 10 // ceil(0.9 n) in integers
	return sorted[rank-1], true
}
