package scaler

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prescale/prescale/policy"
)

// A follower (a hot standby's ticks while another instance leads) decides and writes
// nothing: no scale, annotation or event, on any client, and no counter that only the
// leader counts. Each case is run as the leader too, to show that it would have written.
func TestFollowerNeverWrites(t *testing.T) {
	tests := []struct {
		name string
		// before changes the world before the tick at 0, between before the tick at 15 s
		before, between func(cl *cluster)
		// leaderEvents are the events the same ticks record as the leader
		leaderEvents []string
	}{
		{
			// load 50: proposal 5, limited to 3.
			name:         "a scale-up is due",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Value: 50}) },
			leaderEvents: []string{"Normal SuccessfulRescale"},
		},
		{
			name:         "the metric is missing",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Err: errors.New("empty result")}) },
			leaderEvents: []string{"Warning FailedGetMetric"},
		},
		{
			// load 20 at 2 replicas: ratio 20 / (10 x 2) = 1, within tolerance: no rescale.
			name:         "the target is recreated",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Value: 20}) },
			between:      func(cl *cluster) { cl.recreate("uid-2", 2) },
			leaderEvents: []string{"Normal TargetRecreated"},
		},
		{
			// Load 20 at 3 replicas: 20 / (10 x 3) = 0.67, proposal ceil(20 / 10) = 2; the
			// scale-down window holds nothing above 2, so the leader scales 3 -> 2.
			name:         "another writer scales",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Value: 20}) },
			between:      func(cl *cluster) { cl.scaleTo(3) },
			leaderEvents: []string{"Normal SuccessfulRescale"},
		},
	}
	for _, tc := range tests {
		for _, leading := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/leading=%v", tc.name, leading), func(t *testing.T) {
				cl := newCluster(t, 2)
				c := cl.controller(webPolicy, options())
				if leading {
					lead(c)
				}
				tc.before(cl)
				events := cl.tickAt(c, 0)
				if tc.between != nil {
					tc.between(cl)
				}
				events = append(events, cl.tickAt(c, 15*time.Second)...)
				writes := cl.writeActions()
				if leading {
					// The leader annotates its decision, at least.
					if len(writes) == 0 {
						t.Errorf("the leader wrote nothing: the case does not test a follower")
					}
					if diff := cmp.Diff(tc.leaderEvents, reasons(events)); diff != "" {
						t.Errorf("the leader's events (-want +got):\n%s", diff)
					}
					return
				}
				if len(writes) != 0 {
					t.Errorf("a follower wrote: %q", writes)
				}
				if len(events) != 0 {
					t.Errorf("a follower recorded events: %q", events)
				}
				for _, m := range []struct {
					name string
					c    prometheus.Collector
				}{{"prescale_scales_total", cl.metrics.Scales}, {"prescale_decisions_total", cl.metrics.Decisions}} {
					if n := testutil.CollectAndCount(m.c); n != 0 {
						t.Errorf("a follower counted %d series of %s", n, m.name)
					}
				}
				// A follower queries, and counts its query errors; it has no write errors.
				for _, kind := range []string{"scale_write", "annotation_write"} {
					if got := testutil.ToFloat64(cl.metrics.Errors.WithLabelValues(kind)); got != 0 {
						t.Errorf("a follower counted prescale_errors_total{kind=%q} = %v", kind, got)
					}
				}
				if st := c.Status()[0]; !st.Synced {
					t.Errorf("a follower did not decide: status %+v", st)
				}
			})
		}
	}
}

// The right to write is the lease's context, read as the tick begins: a lease lost in the
// middle of a tick (its context cancelled by a failed renewal, as client-go's elector does
// before OnStoppedLeading) writes nothing from then on, in that tick or later; and a Lead
// that starts after its lease was already lost grants nothing.
func TestLeaseLostMidTickWritesNothing(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lease, lose := context.WithCancel(context.Background())
	defer lose()
	c.lease.Store(&leaseHold{ctx: lease})           // as Lead stores it
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, 1 pod per 60 s
	cl.tickAt(c, 0)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Fatalf("writes while holding the lease (-want +got):\n%s", diff)
	}
	before := len(cl.writeActions())

	// The renewal fails while the tick queries Prometheus, after it read that it leads.
	cl.source.mu.Lock()
	cl.source.onSample = lose
	cl.source.mu.Unlock()
	cl.tickAt(c, 60*time.Second)
	cl.tickAt(c, 120*time.Second)
	if got := cl.writeActions()[before:]; len(got) != 0 {
		t.Errorf("writes after the lease was lost mid-tick: %q, want none", got)
	}
	if c.Leading() {
		t.Error("Leading() after the lease was lost, want false")
	}

	// The elector's OnStartedLeading goroutine may run after the lease it was given is
	// already lost: that Lead must grant nothing.
	done := make(chan struct{})
	go func() { c.Lead(lease); close(done) }()
	<-done
	if c.Leading() {
		t.Error("Leading() after a Lead on a lost lease, want false")
	}
	cl.tickAt(c, 180*time.Second)
	if got := cl.writeActions()[before:]; len(got) != 0 {
		t.Errorf("writes after a Lead on a lost lease: %q, want none", got)
	}
}
