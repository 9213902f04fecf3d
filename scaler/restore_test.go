package scaler

import (
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clienttesting "k8s.io/client-go/testing"

	"github.com/prescale/prescale/policy"
)

var deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}

// storedZero returns whether the decision record on default/web says scaledToZero, and
// whether it has one at all.
func (cl *cluster) storedZero() (zeroed, found bool) {
	cl.t.Helper()
	u, err := cl.dyn.Resource(deploymentsGVR).Namespace("default").Get(cl.ctx, "web", metav1.GetOptions{})
	if err != nil {
		cl.t.Fatalf("get default/web: %v", err)
	}
	text, ok := u.GetAnnotations()[DecisionAnnotation]
	if !ok {
		return false, false
	}
	var r struct {
		ScaledToZero bool `json:"scaledToZero"`
	}
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		cl.t.Fatalf("decision record %q: %v", text, err)
	}
	return r.ScaledToZero, true
}

// TestRestartAtZeroWakes: a target that prescale scaled to zero still wakes on its
// activation signal after prescale restarts, after another instance takes the lease, and
// after a reload renames the policy: each is a fresh engine, which reads the ScaledToZero
// condition from the decision record on the target. A zero set by hand (no record saying
// prescale set it) stays at zero, ScalingDisabled, as with the HPA.
func TestRestartAtZeroWakes(t *testing.T) {
	cl := newCluster(t, 2)
	cl.source.set("gateway", policy.Sample{Value: 0})
	// When the scale to zero is written, the record on the target must already say so.
	var storedAtWrite []bool
	cl.scales.PrependReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if s := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale); s.Spec.Replicas == 0 {
			zeroed, _ := cl.storedZero()
			storedAtWrite = append(storedAtWrite, zeroed)
		}
		return false, nil, nil
	})
	// As on a real API server, a record written on the Deployment changes its
	// resourceVersion, which is the scale's: a scale write carrying the version read before
	// the record is a Conflict.
	cl.dyn.PrependReactor("patch", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
		cl.scaleTo(cl.replicas())
		return false, nil, nil
	})
	first := cl.controller(zeroPolicy, options())
	lead(first)
	for _, at := range []time.Duration{0, 30 * time.Second} {
		cl.tickAt(first, at)
		if zeroed, _ := cl.storedZero(); zeroed {
			t.Fatalf("at %s, above zero: the record says scaledToZero", at)
		}
	}
	cl.tickAt(first, 60*time.Second)
	if got := cl.replicas(); got != 0 {
		t.Fatalf("idle 60 s: %d replicas, want 0", got)
	}
	if len(storedAtWrite) != 1 || !storedAtWrite[0] {
		t.Fatalf("when the scale to zero was written the record said scaledToZero %v, want [true]", storedAtWrite)
	}
	cl.tickAt(first, 75*time.Second)
	if zeroed, _ := cl.storedZero(); !zeroed {
		t.Fatal("at zero after a tick: the record no longer says scaledToZero")
	}

	// A restart, a new leader (the same: an instance whose engine did not see the
	// scale-down) and a reload that renames the policy each wake the target at 90
	// requests/s to ceil(90 / 20) = 5.
	renamed := strings.Replace(zeroPolicy, "name: web\n", "name: web-renamed\n", 1)
	for _, tc := range []struct {
		name string
		file string
	}{{"restarted", zeroPolicy}, {"renamed by a reload", renamed}} {
		t.Run(tc.name, func(t *testing.T) {
			cl.scaleTo(0)
			cl.source.set("gateway", policy.Sample{Value: 0})
			var c *Controller
			if tc.file == zeroPolicy {
				c = cl.controller(zeroPolicy, options())
			} else {
				c = first
				f, err := policy.Parse(strings.NewReader(tc.file))
				if err != nil {
					t.Fatal(err)
				}
				c.SetPolicies(f.Policies)
			}
			lead(c)
			cl.tickAt(c, 90*time.Second) // idle at zero: stays there, and keeps the record
			if got := cl.replicas(); got != 0 {
				t.Fatalf("idle at zero: %d replicas, want 0", got)
			}
			if st := c.Status()[0]; st.Reason != policy.ReasonScaledToZero {
				t.Errorf("idle at zero after the fresh start: reason %s, want %s", st.Reason, policy.ReasonScaledToZero)
			}
			cl.source.set("gateway", policy.Sample{Value: 90})
			cl.tickAt(c, 105*time.Second)
			if got := cl.replicas(); got != 5 {
				t.Fatalf("gateway at 90/s after a fresh start: %d replicas, want 5 (reason %s)", got, c.Status()[0].Reason)
			}
			// Woken: the record no longer says scaledToZero, so a later zero set by hand reads
			// as one.
			if zeroed, _ := cl.storedZero(); zeroed {
				t.Error("woken: the record still says scaledToZero")
			}
			// Put it back to zero through prescale for the next case.
			cl.source.set("gateway", policy.Sample{Value: 0})
			cl.source.set("load", policy.Sample{Value: 0})
			for at := 120 * time.Second; cl.replicas() != 0; at += 15 * time.Second {
				if at > 10*time.Minute {
					t.Fatal("never idled back to zero")
				}
				cl.tickAt(c, at)
			}
		})
	}
}

// TestZeroByHandStaysDisabled: at a zero prescale did not set (no record, a record that
// says otherwise, or one that cannot be read), a fresh engine does not wake the target
// however high the activation signal: ScalingDisabled, as the HPA without its ScaledToZero
// condition. The unreadable record says so in an event.
func TestZeroByHandStaysDisabled(t *testing.T) {
	for _, tc := range []struct {
		name      string
		record    *string
		wantEvent string
	}{
		{name: "no record"},
		{name: "a record of a decision above zero", record: ptr(`{"current":3,"desired":3,"reason":"DesiredWithinRange","proposal":3}`)},
		{name: "an unreadable record", record: ptr(`{not json`), wantEvent: ReasonDecisionRecordUnreadable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 0)
			if tc.record != nil {
				patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{DecisionAnnotation: *tc.record}}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cl.dyn.Resource(deploymentsGVR).Namespace("default").Patch(cl.ctx, "web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			cl.source.set("gateway", policy.Sample{Value: 90})
			c := cl.controller(zeroPolicy, options())
			lead(c)
			events := cl.tickAt(c, 0)
			events = append(events, cl.tickAt(c, 15*time.Second)...)
			if got := cl.replicas(); got != 0 {
				t.Fatalf("a zero set by hand, gateway at 90/s: %d replicas, want 0", got)
			}
			if st := c.Status()[0]; st.Reason != policy.ReasonScalingDisabled {
				t.Errorf("reason %s, want %s", st.Reason, policy.ReasonScalingDisabled)
			}
			if got := containsReason(events, ReasonDecisionRecordUnreadable); got != (tc.wantEvent != "") {
				t.Errorf("events %v: %s sent %v, want %v", events, ReasonDecisionRecordUnreadable, got, tc.wantEvent != "")
			}
		})
	}
}

// TestZeroWaitsForItsRecord: a scale to zero whose record cannot be stored is not written
// (the zero would be lost at the next restart); it is written at the first tick after the
// record is.
func TestZeroWaitsForItsRecord(t *testing.T) {
	cl := newCluster(t, 2)
	cl.source.set("gateway", policy.Sample{Value: 0})
	var failing atomic.Bool
	failing.Store(true)
	cl.dyn.PrependReactor("patch", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
		if failing.Load() {
			return true, nil, errors.New("etcdserver: request timed out")
		}
		return false, nil, nil
	})
	c := cl.controller(zeroPolicy, options())
	lead(c)
	cl.tickAt(c, 0)
	cl.tickAt(c, 30*time.Second)
	cl.tickAt(c, 60*time.Second)
	if got := cl.replicas(); got != 1 {
		t.Fatalf("idle 60 s with the record failing: %d replicas, want 1 (the zero waits for its record)", got)
	}
	if got := testutil.ToFloat64(cl.metrics.Errors.WithLabelValues("annotation_write")); got == 0 {
		t.Error("the failed record is not counted in prescale_errors_total{kind=\"annotation_write\"}")
	}
	failing.Store(false)
	cl.tickAt(c, 75*time.Second)
	if got := cl.replicas(); got != 0 {
		t.Fatalf("the record written: %d replicas, want 0", got)
	}
	if zeroed, _ := cl.storedZero(); !zeroed {
		t.Error("at zero: the record does not say scaledToZero")
	}
}
