package sim

import (
	"math"
	"time"
)

// State is what the fluid queue carries from one tick to the next.
type State struct {
	Queue float64 // requests waiting
}

// Tick is the outcome of one tick of the fluid queue model.
type Tick struct {
	Arrived  float64 // requests that arrived during the tick
	Served   float64 // requests served during the tick
	Capacity float64 // requests the Ready pods could serve during the tick
	Queue    float64 // requests waiting at the end of the tick

	// Util is the GPU utilization of each Ready pod, percent (100 with no Ready pod).
	Util float64
	// QueuePerPod is the queue depth per Ready pod; with none it is the whole queue.
	QueuePerPod float64
	// Delay is the queueing delay Queue / (mu * ready) in seconds; +Inf with a queue
	// and no Ready pod.
	Delay float64
	// UnderProvisioned is true when the arrival rate exceeds the capacity.
	UnderProvisioned bool
}

// Step advances the fluid queue of the backtest model by one tick of length dt:
// lambda requests/s arrive, ready pods each serve up to mu requests/s.
func Step(s State, lambda, mu float64, ready int, dt time.Duration) (State, Tick) {
	sec := dt.Seconds()
	arrived := lambda * sec
	capacity := mu * float64(ready) * sec
	served := min(s.Queue+arrived, capacity)
	q := s.Queue + arrived - served
	t := Tick{
		Arrived:          arrived,
		Served:           served,
		Capacity:         capacity,
		Queue:            q,
		Util:             100,
		QueuePerPod:      q,
		UnderProvisioned: lambda > mu*float64(ready),
	}
	switch {
	case ready > 0:
		t.Util = 100 * served / capacity
		t.QueuePerPod = q / float64(ready)
		t.Delay = q / (mu * float64(ready))
	case q > 0:
		t.Delay = math.Inf(1)
	}
	return State{Queue: q}, t
}

// Mu is the per-replica capacity in requests/s such that the peak minute of a load
// needs peakReplicas replicas at targetUtilization (0..1).
func Mu(peakPerMinute float64, peakReplicas int, targetUtilization float64) float64 {
	return peakPerMinute / 60 / (float64(peakReplicas) * targetUtilization)
}
