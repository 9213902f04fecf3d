package engine

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/policy"
)

// sleeper idles to zero after 5 minutes without requests and wakes straight to
// ceil(activation / 4) replicas; above zero it scales on a per-pod queue.
const sleeper = `
  - name: sleeper
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: model}
    minReplicas: 0
    maxReplicas: 20
    metrics:
      - {name: queue, query: q, target: {type: AverageValue, averageValue: 5}}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 0}
    scaleToZero:
      activation: {query: a, perReplica: 4}
      idleDelay: 5m
`

// external is the HPA's own scale to zero: minReplicas 0 and an External (scalar) metric,
// desired = ceil(value / 10).
const external = `
  - name: external
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: model}
    minReplicas: 0
    maxReplicas: 20
    metrics:
      - {name: load, query: q, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 0}
`

// TestRestore: a fresh engine (a restarted controller, a new leader, a reload that renamed
// the policy) that reads the stored ScaledToZero condition decides at zero exactly as the
// engine that scaled the target there; one without it reads the zero as set by hand.
func TestRestore(t *testing.T) {
	queueIdle := policy.Sample{PerPod: map[string]float64{"p1": 0}}
	pod := []policy.Pod{{Name: "p1", Phase: policy.PodRunning, Ready: true}}
	tests := []struct {
		name string
		item string
		// up is the observation above zero that the first engine scales from, at one
		// replica; down the last one, which takes it to zero; wake the one at zero.
		up, wake policy.Observation
		idle     bool // the first engine idles (scaleToZero): its activation is 0
		stored   *Stored
		stepped  bool // the fresh engine decides once at zero before Restore
		want     int32
		reason   policy.Reason
	}{
		{
			// 50 requests/s at 4 a replica: ceil(12.5) = 13.
			name: "scaleToZero: restored, the activation wakes it to ceil(50/4)", item: sleeper, idle: true,
			stored: &Stored{ScaledToZero: true}, want: 13, reason: policy.ReasonActivated,
		},
		{
			name: "scaleToZero: no record, a zero set by hand: ScalingDisabled", item: sleeper, idle: true,
			want: 0, reason: policy.ReasonScalingDisabled,
		},
		{
			name: "scaleToZero: the record says the zero was not prescale's: ScalingDisabled", item: sleeper, idle: true,
			stored: &Stored{}, want: 0, reason: policy.ReasonScalingDisabled,
		},
		{
			name: "Restore after a Step changes nothing: the engine's own memory is newer", item: sleeper, idle: true,
			stored: &Stored{ScaledToZero: true}, stepped: true, want: 0, reason: policy.ReasonScalingDisabled,
		},
		{
			// The HPA's ScaledToZero: 35 on an External AverageValue of 10 at zero
			// replicas is ceil(35/10) = 4 (the HPA divides by one replica at zero).
			name: "minReplicas 0 with an External metric: restored, it scales up from zero", item: external,
			stored: &Stored{ScaledToZero: true}, want: 4, reason: policy.ReasonDesiredWithinRange,
		},
		{
			name: "minReplicas 0 with an External metric: no record: ScalingDisabled", item: external,
			want: 0, reason: policy.ReasonScalingDisabled,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := parse(t, tc.item)
			obs := func(spec int32) policy.Observation {
				o := policy.Observation{SpecReplicas: spec, StatusReplicas: spec}
				if spec > 0 {
					o.Pods = pod
				}
				return o
			}
			// The first engine: one replica, idle (no queue, no requests), until it writes zero.
			first := newEngine(t, p, Options{})
			var s int
			for cur := int32(1); cur > 0; s += 15 {
				if s > 3600 {
					t.Fatal("the first engine never scaled to zero")
				}
				in := Input{Observation: obs(cur), Writes: true}
				if tc.idle {
					in.Metrics = []policy.Sample{queueIdle}
					in.Activation = &policy.Sample{Value: 0}
				} else {
					in.Metrics = []policy.Sample{{Value: 0}}
				}
				d := first.Step(in, at(s)).Decision
				if d.DesiredReplicas != cur {
					first.Scaled(cur, d.DesiredReplicas, at(s))
					cur = d.DesiredReplicas
				}
			}
			if !first.ScaledToZero() {
				t.Fatal("the first engine scaled to zero but does not say so (ScaledToZero)")
			}
			wake := Input{Observation: obs(0), Writes: true}
			if tc.idle {
				wake.Metrics = []policy.Sample{{PerPod: map[string]float64{}}}
				wake.Activation = &policy.Sample{Value: 50}
			} else {
				wake.Metrics = []policy.Sample{{Value: 35}}
			}
			now := at(s + 60)

			fresh := newEngine(t, p, Options{})
			if !fresh.Fresh() {
				t.Fatal("a new engine is not Fresh")
			}
			if tc.stepped {
				fresh.Step(wake, now.Add(-15*time.Second))
			}
			if tc.stored != nil {
				fresh.Restore(*tc.stored)
			}
			got := fresh.Step(wake, now).Decision
			if got.DesiredReplicas != tc.want || got.Reason != tc.reason {
				t.Fatalf("fresh engine decided %d (%s), want %d (%s)", got.DesiredReplicas, got.Reason, tc.want, tc.reason)
			}
			if fresh.Fresh() {
				t.Error("an engine that stepped is still Fresh")
			}
			if tc.stored != nil && tc.stored.ScaledToZero && !tc.stepped {
				// Exactly as if nothing had happened: the engine that scaled to zero decides
				// the same at the same sync.
				want := first.Step(wake, now).Decision
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("the restored engine decides otherwise than the one that scaled to zero (-kept +restored):\n%s", diff)
				}
			}
		})
	}
}

// TestScalesToZero: the condition a write would set, asked before the write, is the one
// Scaled then records.
func TestScalesToZero(t *testing.T) {
	p := parse(t, external)
	e := newEngine(t, p, Options{})
	in := Input{Observation: policy.Observation{SpecReplicas: 2, StatusReplicas: 2}, Writes: true}
	in.Metrics = []policy.Sample{{Value: 0}}
	e.Step(in, t0)
	for _, c := range []struct {
		from, to int32
		want     bool
	}{{2, 0, true}, {2, 1, false}, {0, 0, false}} {
		if got := e.ScalesToZero(c.from, c.to); got != c.want {
			t.Errorf("ScalesToZero(%d, %d) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
	e.Scaled(2, 0, t0)
	if !e.ScaledToZero() {
		t.Error("after Scaled(2, 0) the engine does not say ScaledToZero")
	}
}
