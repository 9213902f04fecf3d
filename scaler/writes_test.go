package scaler

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/prescale/prescale/policy"
)

// Another writer changes the scale between the tick's read and its write: the update, made
// from the old replicas, fails with a Conflict. prescale drops that decision (it does not
// write it over the other writer's change, record it, or report a rescale) and decides
// again from the fresh scale at the next tick.
func TestScaleConflict(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50}) // proposal ceil(50 / 10) = 5
	four := int32(4)
	cl.set(func(cl *cluster) { cl.raceTo = &four })

	// Read 2, decided 2 + 1 = 3; meanwhile another writer set 4: 3 is stale.
	events := cl.tickAt(c, 0)
	if got := cl.writes(); len(got) != 0 {
		t.Errorf("after the conflict the server accepted writes %v, want none", got)
	}
	if got := cl.replicas(); got != 4 {
		t.Errorf("after the conflict spec.replicas = %d, want 4, the other writer's", got)
	}
	if got := cl.scaleUpdates(); got != 1 {
		t.Errorf("%d scale updates attempted, want 1 (no retry of a decision made from a stale scale)", got)
	}
	if len(events) != 0 {
		t.Errorf("events after the conflict: %q, want none", events)
	}
	if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", "conflict")); got != 1 {
		t.Errorf(`prescale_scales_total{result="conflict"} = %v, want 1`, got)
	}
	for _, result := range []string{"ok", "error"} {
		if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", result)); got != 0 {
			t.Errorf(`prescale_scales_total{result=%q} = %v, want 0`, result, got)
		}
	}
	if got := cl.logged("another writer"); got != 1 {
		t.Errorf("the conflict was logged %d times, want once", got)
	}

	// 15 s: decided from 4. No scale-up of prescale's in the period (the other writer's
	// change is not prescale's while it leads), so the limit is 4 + 1 = 5 = the proposal.
	events = cl.tickAt(c, 15*time.Second)
	if diff := cmp.Diff([]int32{5}, cl.writes()); diff != "" {
		t.Errorf("accepted scale writes (-want +got):\n%s", diff)
	}
	if st := c.Status()[0]; count(st.Current) != "4" || count(st.Desired) != "5" {
		t.Errorf("the next tick decided %s -> %s, want 4 -> 5", count(st.Current), count(st.Desired))
	}
	if len(events) != 1 || !strings.HasPrefix(events[0], "Normal SuccessfulRescale New size: 5;") {
		t.Errorf("events of the next tick: %q, want one SuccessfulRescale to 5", events)
	}
}

// A scale write that fails is reported (a FailedRescale warning, prescale_errors_total
// {kind="scale_write"}) and not recorded: the next tick decides the same scale-up again,
// not limited by the rate policy as if it had happened.
func TestFailedScaleWrite(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{name: "internal error", err: apierrors.NewInternalError(errors.New("etcdserver: request timed out"))},
		{name: "forbidden", err: apierrors.NewForbidden(deployments, "web", errors.New(`cannot update resource "deployments/scale"`))},
		{name: "server error", err: apierrors.NewGenericServerResponse(http.StatusServiceUnavailable, "update", deployments, "web", "", 0, true)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			c := cl.controller(webPolicy, options())
			lead(c)
			// load 50: proposal 5, limited to 2 + 1 = 3.
			cl.source.set("load", policy.Sample{Value: 50})
			cl.set(func(cl *cluster) { cl.updateErr = tc.err })

			events := cl.tickAt(c, 0)
			if got := reasons(events); !cmp.Equal(got, []string{"Warning FailedRescale"}) || !strings.HasPrefix(events[0], "Warning FailedRescale New size: 3;") {
				t.Errorf("events after the failed write: %q, want one FailedRescale warning for 3", events)
			}
			if got := testutil.ToFloat64(cl.metrics.Errors.WithLabelValues("scale_write")); got != 1 {
				t.Errorf(`prescale_errors_total{kind="scale_write"} = %v, want 1`, got)
			}
			if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", "error")); got != 1 {
				t.Errorf(`prescale_scales_total{result="error"} = %v, want 1`, got)
			}

			// The server accepts writes again. Still 2 replicas, no scale-up in the
			// period: the limit is 2 + 1 = 3 again (2 + 0 had the failed write counted).
			cl.set(func(cl *cluster) { cl.updateErr = nil })
			events = cl.tickAt(c, 15*time.Second)
			if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
				t.Errorf("accepted scale writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"Normal SuccessfulRescale"}, reasons(events)); diff != "" {
				t.Errorf("events after the retry (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", "ok")); got != 1 {
				t.Errorf(`prescale_scales_total{result="ok"} = %v, want 1`, got)
			}
		})
	}
}
