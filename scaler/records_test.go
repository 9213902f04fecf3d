package scaler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clienttesting "k8s.io/client-go/testing"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// gatedWriter writes to the cluster, but each annotation only once gate is closed (or
// fails with its context).
type gatedWriter struct {
	Writer
	gate chan struct{}
}

func (w gatedWriter) Annotate(ctx context.Context, gvr schema.GroupVersionResource, ref policy.TargetRef, text string) error {
	select {
	case <-w.gate:
		return w.Writer.Annotate(ctx, gvr, ref, text)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestRecordsAfterTheTick: the decision records are written after the tick, so neither a
// tick's scale writes nor the next tick wait for them; while a target's record is being
// written, no tick computes another for it (a record never overwrites a newer one), and the
// first tick after it is written writes the newest.
func TestRecordsAfterTheTick(t *testing.T) {
	cl := newCluster(t, 2)
	gate := make(chan struct{})
	cl.writer = gatedWriter{Writer: kubeWriter{scales: cl.scales, dynamic: cl.dyn, recorder: cl.events, manager: "prescale"}, gate: gate}
	c := cl.controller(webPolicy, options())
	lease, lose := context.WithCancel(context.Background())
	defer lose()
	c.lease.Store(&leaseHold{ctx: lease})
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, 1 pod per 60 s: 3
	tick := func(at time.Duration) chan struct{} {
		done := make(chan struct{})
		cl.clock.SetTime(epoch.Add(at))
		go func() { c.Tick(cl.ctx); close(done) }()
		return done
	}
	for _, at := range []time.Duration{0, time.Minute} {
		select {
		case <-tick(at):
		case <-time.After(30 * time.Second):
			t.Fatalf("the tick at %s waited for a decision record", at)
		}
	}
	if diff := cmp.Diff([]int32{3, 4}, cl.writes()); diff != "" {
		t.Errorf("scale writes of the two ticks (-want +got):\n%s", diff)
	}
	if n := len(records(cl)); n != 0 {
		t.Errorf("%d records written before the gate opened", n)
	}
	close(gate)
	c.awaitRecords()
	if got := records(cl); len(got) != 1 || !strings.Contains(got[0], `\"desired\":3`) {
		t.Errorf("records %q, want the first tick's only (desired 3): the second tick's waits for it", got)
	}
	<-tick(2 * time.Minute)
	c.awaitRecords()
	if got := records(cl); len(got) != 2 || !strings.Contains(got[1], `\"desired\":5`) {
		t.Errorf("records %q, want the third tick's second (desired 5)", got)
	}

}

// TestRecordsGivenUpWithTheLease: a decision record still pending when the lease is lost
// is never written.
func TestRecordsGivenUpWithTheLease(t *testing.T) {
	cl := newCluster(t, 2)
	cl.writer = gatedWriter{Writer: kubeWriter{scales: cl.scales, dynamic: cl.dyn, recorder: cl.events, manager: "prescale"},
		gate: make(chan struct{})} // never open
	c := cl.controller(webPolicy, options())
	lease, lose := context.WithCancel(context.Background())
	c.lease.Store(&leaseHold{ctx: lease})
	cl.source.set("load", policy.Sample{Value: 50})
	c.Tick(cl.ctx)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("scale writes of the tick (-want +got):\n%s", diff)
	}
	lose()
	done := make(chan struct{})
	go func() { c.awaitRecords(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the pending record was not given up when the lease was lost")
	}
	for _, a := range cl.dyn.Actions() {
		if a.GetVerb() == "patch" {
			t.Errorf("written after the lease was lost: %v", a)
		}
	}
}

// TestRecordRefresh: a decision record whose gist is unchanged (only the metric's value
// moved, within the tolerance: the target holds) is rewritten only every recordRefresh; a
// changed decision is written at once.
func TestRecordRefresh(t *testing.T) {
	cl := newCluster(t, 5)
	c := cl.controller(webPolicy, options())
	lead(c)
	at := time.Duration(0)
	for i, load := range []float64{50, 52, 49, 51, 50} { // 5 replicas of 10: within the tolerance
		cl.source.set("load", policy.Sample{Value: load})
		cl.tickAt(c, at)
		if n := len(records(cl)); n != 1 {
			t.Fatalf("tick %d at %s (load %v): %d records written, want the first only", i, at, load, n)
		}
		at += time.Minute
	}
	cl.source.set("load", policy.Sample{Value: 52})
	cl.tickAt(c, recordRefresh)
	if got := records(cl); len(got) != 2 || !strings.Contains(got[1], `\"value\":10.4`) {
		t.Fatalf("after %s: records %q, want the second with the value 52 / 5 pods", recordRefresh, got)
	}
	cl.source.set("load", policy.Sample{Value: 80}) // desired 8, 1 pod per 60 s: 6
	cl.tickAt(c, recordRefresh+time.Minute)
	if got := records(cl); len(got) != 3 || !strings.Contains(got[2], `\"desired\":6`) {
		t.Fatalf("a scale-up: records %q, want the third at once, desired 6", got)
	}
}

// TestRecordsDue: every record whose gist changed is written; of the refreshes, the n
// that waited longest (first records since the start, then the oldest), by name on a tie.
func TestRecordsDue(t *testing.T) {
	write := func(context.Context) error { return nil }
	at := func(d time.Duration) *policyState { return &policyState{recordAt: epoch.Add(d)} }
	run := func(name string, tg *policyState, refresh bool) *pass {
		return &pass{p: &policy.Policy{Name: name}, t: tg, record: write, refresh: refresh}
	}
	runs := []*pass{
		run("changed", at(time.Minute), false),
		run("old", at(0), true),
		run("newer", at(time.Minute), true),
		run("first-b", &policyState{}, true),
		nil,                                              // its sync failed
		{p: &policy.Policy{Name: "unchanged"}, t: at(0)}, // nothing to write
		run("first-a", &policyState{}, true),
	}
	names := func(idx []int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, runs[i].p.Name)
		}
		return out
	}
	for n, want := range map[int][]string{
		1: {"changed", "first-a"},
		3: {"changed", "first-a", "first-b", "old"},
		9: {"changed", "first-a", "first-b", "old", "newer"},
	} {
		if diff := cmp.Diff(want, names(recordsDue(runs, n))); diff != "" {
			t.Errorf("n = %d (-want +got):\n%s", n, diff)
		}
	}
	// Every record refreshed within recordRefresh (5 minutes), at least one a tick.
	for _, tc := range []struct {
		policies int
		interval time.Duration
		want     int
	}{{1000, 15 * time.Second, 50}, {1000, 5 * time.Second, 17}, {10, 15 * time.Second, 1}, {0, 15 * time.Second, 1}} {
		if got := refreshesPerTick(tc.policies, tc.interval); got != tc.want {
			t.Errorf("refreshesPerTick(%d, %s) = %d, want %d", tc.policies, tc.interval, got, tc.want)
		}
	}
}

// TestRecordMayWait: a record may wait for a refresh slot when only its values moved, or
// when it is the target's first since the start and a plain hold; a scale, a grant below
// what was wanted, or a changed gist is written at once.
// A record's gist leaves out what moves every minute without a change worth a write: the
// objective's quantile, counts and pacing. A violated minute changes it.
func TestRecordGistOfTheObjective(t *testing.T) {
	dec := policy.Decision{DesiredReplicas: 3}
	hold, window := 1800.0, int32(150)
	st := ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, Quantile: 0.9, Minutes: 100, ViolatedMinutes: 1,
		Tightness: 0.5, BankMinutes: 2.5, EpisodeMinutes: 5, HoldSeconds: &hold, ScaleDownWindowSeconds: &window, TargetScale: 1.125}
	later := st
	hold2, window2 := 1750.0, int32(146)
	later.Quantile, later.Minutes, later.Tightness, later.BankMinutes = 0.8999, 101, 0.486, 2.57
	later.HoldSeconds, later.ScaleDownWindowSeconds, later.TargetScale = &hold2, &window2, 1.1285
	if a, b := recordGist(dec, nil, &st, nil, false), recordGist(dec, nil, &later, nil, false); a != b {
		t.Errorf("a minute of pacing changed the gist:\n%s\n%s", a, b)
	}
	violated := later
	violated.ViolatedMinutes, violated.Tightness, violated.BankMinutes = 2, 1, -0.4
	if a, b := recordGist(dec, nil, &st, nil, false), recordGist(dec, nil, &violated, nil, false); a == b {
		t.Errorf("a violated minute left the gist as it was: %s", a)
	}
}

func TestRecordMayWait(t *testing.T) {
	hold := policy.Decision{Time: epoch, CurrentReplicas: 3, DesiredReplicas: 3, Reason: policy.ReasonDesiredWithinRange}
	up := hold
	up.DesiredReplicas, up.Reason = 4, policy.ReasonScaleUpLimit
	limited := &alloc.Grant{Policy: "web", Wanted: 4, Granted: 3}
	before := withValue(hold, 5)
	full := &alloc.Grant{Policy: "web", Wanted: 3, Granted: 3}
	for _, tc := range []struct {
		name  string
		last  *policy.Decision // the record written before, 10 minutes earlier; nil: none
		dec   policy.Decision
		grant *alloc.Grant
		want  bool
	}{
		{"first, a hold", nil, hold, nil, true},
		{"first, a hold granted in full", nil, hold, full, true},
		{"first, a scale-up", nil, up, nil, false},
		{"first, a hold below what was wanted", nil, hold, limited, false},
		{"values moved", &before, withValue(hold, 7), nil, true},
		{"a scale-up after a hold", &hold, up, nil, false},
	} {
		eng, err := engine.New(&policy.Policy{Name: "web"}, engine.Options{Tick: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		tg := &policyState{eng: eng}
		if tc.last != nil {
			tg.recordGist, tg.recordAt = recordGist(*tc.last, nil, nil, nil, false), epoch.Add(-10*time.Minute)
		}
		write, refresh := (&pass{t: tg}).recordFor(tc.dec, nil, nil, tc.grant)
		if write == nil || refresh != tc.want {
			t.Errorf("%s: write %v, may wait %v, want %v", tc.name, write != nil, refresh, tc.want)
		}
	}
}

// withValue is d with one metric of value v.
func withValue(d policy.Decision, v float64) policy.Decision {
	d.Metrics = []policy.MetricResult{{Name: "load", Value: policy.Float(v), Target: 10, Proposal: d.DesiredReplicas}}
	return d
}

// records are the decision records patched onto the target, in order.
func records(cl *cluster) []string {
	var out []string
	for _, a := range cl.dyn.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}
