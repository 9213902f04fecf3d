package scaler

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/prescale/prescale/policy"
)

// A pass's phases do what docs/architecture.md says: observe reads (the scale, the
// queries), decide only decides (no request to any client, no query, no event: its
// decision stands in the pass), act writes and sends; and a tick times each of its four
// phases once.
func TestPassPhases(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50}) // proposal ceil(50 / 10) = 5
	var queries atomic.Int32
	cl.source.mu.Lock()
	cl.source.onSample = func() { queries.Add(1) }
	cl.source.mu.Unlock()
	requests := func() int { return len(cl.kube.Actions()) + len(cl.dyn.Actions()) + len(cl.scales.Actions()) }

	policies, targets := c.snapshot()
	p := &policies[0]
	before := requests()
	r, err := c.observe(cl.ctx, p, targets[p.Name], epoch, true)
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	if requests() == before || queries.Load() != 1 {
		t.Fatalf("observe made %d requests and %d queries, want the scale read and the load query", requests()-before, queries.Load())
	}

	before, queried := requests(), queries.Load()
	r.decide(epoch)
	if n := requests() - before; n != 0 {
		t.Errorf("decide made %d requests, want none", n)
	}
	if n := queries.Load() - queried; n != 0 {
		t.Errorf("decide made %d queries, want none", n)
	}
	if n := len(cl.events.Events); n != 0 {
		t.Errorf("decide sent %d events, want none", n)
	}
	if len(cl.writes()) != 0 {
		t.Errorf("decide wrote the scale: %v", cl.writes())
	}
	// 2 -> 3: one pod per minute (webPolicy's rate policy) towards 5.
	if got := r.res.Decision.DesiredReplicas; got != 3 {
		t.Errorf("decided %d replicas, want 3", got)
	}

	nodes, err := c.nodes.List(labelsEverything)
	c.allocate(cl.ctx, []*pass{r}, nodes, err)
	if err := r.act(cl.ctx, epoch); err != nil {
		t.Fatalf("act: %v", err)
	}
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("act's scale writes (-want +got):\n%s", diff)
	}
	select {
	case e := <-cl.events.Events:
		if !strings.HasPrefix(e, "Normal SuccessfulRescale New size: 3;") {
			t.Errorf("act's event %q, want SuccessfulRescale to 3", e)
		}
	default:
		t.Error("act sent no event, want SuccessfulRescale")
	}

	cl.tickAt(c, 15*time.Second)
	for _, phase := range []string{phaseObserve, phaseDecide, tickPhaseAllocate, phaseAct} {
		var m dto.Metric
		if err := cl.metrics.TickPhaseDuration.WithLabelValues(phase).(prometheus.Histogram).Write(&m); err != nil {
			t.Fatal(err)
		}
		if n := m.GetHistogram().GetSampleCount(); n != 1 {
			t.Errorf("tick phase %s timed %d times in one tick, want once", phase, n)
		}
	}
}
