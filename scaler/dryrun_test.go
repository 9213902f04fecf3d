package scaler

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prescale/prescale/policy"
)

// In dry-run prescale writes nothing, and counts another writer's change of spec.replicas
// in its rate policies as if it had been its own, so that its decisions are those it would
// have made in that writer's place.
func TestDryRunAdoptsAnotherWritersChange(t *testing.T) {
	cl := newCluster(t, 2)
	opts := options()
	opts.DryRun = true
	c := cl.controller(webPolicy, opts)
	// A leader: only dry-run keeps it from writing. Load 50: proposal ceil(50 / 10) = 5
	// throughout.
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50})

	steps := []struct {
		at          time.Duration
		otherWriter int32 // > 0: another writer sets spec.replicas to this before the tick
		missing     bool  // the load query fails (a leader would warn FailedGetMetric)
		want        int32
		reason      policy.Reason
	}{
		// 2 + 1 pod per 60 s = 3, not written.
		{at: 0, want: 3, reason: policy.ReasonScaleUpLimit},
		// Another writer scales 2 -> 3, seen at 15 s: the period started at 3 - 1 = 2
		// replicas, so the limit stays 2 + 1 = 3 (not 3 + 1 = 4, as without the change).
		{at: 15 * time.Second, otherWriter: 3, want: 3, reason: policy.ReasonScaleUpLimit},
		// 74 s: the change at 15 s is still within the period (74 - 60 = 14 < 15).
		{at: 74 * time.Second, want: 3, reason: policy.ReasonScaleUpLimit},
		// 75 s: it is not (a change exactly one period old no longer counts): 3 + 1 = 4.
		{at: 75 * time.Second, want: 4, reason: policy.ReasonScaleUpLimit},
		// The load is missing: the current 3 are held.
		{at: 90 * time.Second, missing: true, want: 3, reason: policy.ReasonFailedGetMetric},
	}
	var events []string
	for _, s := range steps {
		if s.otherWriter > 0 {
			cl.scaleTo(s.otherWriter)
		}
		if s.missing {
			cl.source.set("load", policy.Sample{Err: errors.New("empty result")})
		}
		events = append(events, cl.tickAt(c, s.at)...)
		st := c.Status()[0]
		if count(st.Desired) != fmt.Sprint(s.want) || st.Reason != s.reason {
			t.Errorf("at %s: decided %s (%s), want %d (%s)", s.at, count(st.Desired), st.Reason, s.want, s.reason)
		}
	}
	if got := cl.writeActions(); len(got) != 0 {
		t.Errorf("dry-run wrote: %q", got)
	}
	if len(events) != 0 {
		t.Errorf("dry-run recorded events: %q", events)
	}
	if got := cl.replicas(); got != 3 {
		t.Errorf("spec.replicas = %d, want 3, the other writer's", got)
	}
}

// The global dry-run is live: SetDryRun (a reload of dryRun) stops the writes from the next
// tick, a policy's own dryRun still overrides it, and turning it off writes again.
func TestSetDryRun(t *testing.T) {
	tests := []struct {
		name string
		// policyDryRun is the policy's own dryRun line, if any.
		policyDryRun string
		// wantWrites are the accepted scale writes of the ticks at 0 (global dry-run off),
		// 60 s (on) and 120 s (off again).
		wantWrites []int32
		// wantGauge is prescale_dry_run while it is on.
		wantGauge float64
	}{
		// Load 50: proposal 5, 1 pod per 60 s: 2 -> 3 at 0, 3 -> 4 due at 60 s and held by
		// the dry-run, 3 -> 4 at 120 s.
		{name: "a policy without its own dryRun stops writing", wantWrites: []int32{3, 4}, wantGauge: 1},
		// The policy's dryRun: false overrides the global switch: 3 at 0, 4 at 60 s, 5 at 120 s.
		{name: "a policy's dryRun: false overrides it", policyDryRun: "    dryRun: false\n", wantWrites: []int32{3, 4, 5}, wantGauge: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			c := cl.controller(webPolicy+tc.policyDryRun, options())
			lead(c)
			cl.source.set("load", policy.Sample{Value: 50})
			if got := testutil.ToFloat64(cl.metrics.DryRun); got != 0 {
				t.Errorf("prescale_dry_run at start = %v, want 0", got)
			}
			cl.tickAt(c, 0)

			c.SetDryRun(true)
			if got := testutil.ToFloat64(cl.metrics.DryRun); got != tc.wantGauge {
				t.Errorf("prescale_dry_run after SetDryRun(true) = %v, want %v", got, tc.wantGauge)
			}
			before := len(cl.writeActions())
			cl.tickAt(c, 60*time.Second)
			if tc.policyDryRun == "" {
				if got := cl.writeActions()[before:]; len(got) != 0 {
					t.Errorf("the tick after SetDryRun(true) wrote: %q", got)
				}
			}

			c.SetDryRun(false)
			cl.tickAt(c, 120*time.Second)
			if diff := cmp.Diff(tc.wantWrites, cl.writes()); diff != "" {
				t.Errorf("accepted scale writes (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(cl.metrics.DryRun); got != 0 {
				t.Errorf("prescale_dry_run after SetDryRun(false) = %v, want 0", got)
			}
		})
	}
}

func TestScorecard(t *testing.T) {
	var s scorecard
	s.add(WhoPrescale, 4, 5, 15) // short: 4 < 5
	s.add(WhoPrescale, 6, 5, 15)
	s.add(WhoHPA, 5, 5, 15) // exactly what was asked: not short
	if s.replicaSeconds[WhoPrescale] != 150 || s.shortSeconds[WhoPrescale] != 15 {
		t.Errorf("prescale: %v replica-seconds, %v short; want 150 and 15", s.replicaSeconds[WhoPrescale], s.shortSeconds[WhoPrescale])
	}
	if s.replicaSeconds[WhoHPA] != 75 || s.shortSeconds[WhoHPA] != 0 {
		t.Errorf("hpa: %v replica-seconds, %v short; want 75 and 0", s.replicaSeconds[WhoHPA], s.shortSeconds[WhoHPA])
	}
}
