//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// storedZero reads the scaledToZero of the decision record on the workload, and whether it
// has a record.
func storedZero(t testing.TB, w sandbox.Workload) (zeroed, found bool) {
	t.Helper()
	text, ok := deployment(t, w).Annotations["prescale.io/decision"]
	if !ok {
		return false, false
	}
	var r struct {
		ScaledToZero bool `json:"scaledToZero"`
	}
	if err := json.Unmarshal([]byte(text), &r); err != nil {
		t.Fatalf("decision record %q: %v", text, err)
	}
	return r.ScaledToZero, true
}

// idleToZero sets the activation signal idle and waits for prescale to take w to zero, and
// for the record on w to say it did.
func idleToZero(t *testing.T, e *exporter, w sandbox.Workload) {
	t.Helper()
	e.setLoad(0)
	eventually(t, 30*time.Second, "prescale to take the target to zero", func() bool { return specReplicas(t, w) == 0 })
	eventually(t, 10*time.Second, "the record on the target to say scaledToZero", func() bool {
		zeroed, _ := storedZero(t, w)
		return zeroed
	})
}

// holdsZero checks for d that w stays at zero.
func holdsZero(t *testing.T, w sandbox.Workload, d time.Duration, why string) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if got := specReplicas(t, w); got != 0 {
			t.Fatalf("%s: scaled to %d, want 0 held", why, got)
		}
	}
}

// A target that prescale scaled to zero wakes on its activation signal after prescale is
// restarted, and after the instance that scaled it loses its lease to a follower that never
// saw the scale-down: the new engine reads the ScaledToZero condition from the decision
// record on the target, as the HPA reads its own from its status. 35 requests/s at 10 a
// replica wake it to ceil(35 / 10) = 4.
func TestScaleToZeroSurvivesRestart(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(0)
	cfg := zeroConfig(p.URL(), w, "")
	wake := func(what string) {
		t.Helper()
		e.setLoad(35)
		eventually(t, 20*time.Second, what, func() bool { return specReplicas(t, w) != 0 })
		if got := specReplicas(t, w); got != 4 {
			t.Errorf("%s: woke to %d replicas, want ceil(35 / 10) = 4", what, got)
		}
		eventually(t, 10*time.Second, "the record to drop scaledToZero once woken", func() bool {
			zeroed, found := storedZero(t, w)
			return found && !zeroed
		})
	}

	t.Run("restart", func(t *testing.T) {
		a := startPrescale(t, "restart-a", cfg)
		idleToZero(t, e, w)
		a.terminate()
		a2 := startPrescale(t, "restart-a2", cfg)
		// The new instance at the idle zero holds it, and says it is prescale's zero.
		eventually(t, 20*time.Second, "the new instance to decide at zero", func() bool {
			return a2.logContains(`reason="ScaledToZero"`)
		})
		if a2.logContains(`reason="ScalingDisabled"`) {
			t.Error("the restarted instance read prescale's zero as set by hand (ScalingDisabled)")
		}
		wake("the wake-up after a restart")
		a2.terminate()
	})

	t.Run("leader lost", func(t *testing.T) {
		e.setLoad(0)
		a := startPrescale(t, "lease-a", cfg)
		b := startPrescale(t, "lease-b", cfg) // a plain follower: decides nothing until it leads
		idleToZero(t, e, w)
		// Whichever leads, kill it: the other takes the lease with a fresh engine.
		leader, follower := a, b
		if v, _ := b.metric("prescale_leader", nil); v == 1 {
			leader, follower = b, a
		}
		leader.kill()
		eventually(t, 20*time.Second, "the follower to lead", func() bool {
			v, _ := follower.metric("prescale_leader", nil)
			return v == 1
		})
		wake("the wake-up by the new leader")
		follower.terminate()
	})
}

// A target scaled to zero by hand stays at zero whatever its activation signal says, as with
// the HPA (ScalingDisabled), while prescale runs and after it restarts.
func TestZeroByHandStaysAtZero(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(0)
	e.setLoad(35)
	cfg := zeroConfig(p.URL(), w, "")
	a := startPrescale(t, "hand-a", cfg)
	eventually(t, 20*time.Second, "prescale to scale on the signal (4)", func() bool { return specReplicas(t, w) == 4 })

	_, kube := sharedSandbox(t)
	// As kubectl scale would be retried: prescale writes its decision record on the target
	// after its scale, so a scale read just before may be a version behind.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s, err := kube.AppsV1().Deployments(w.Namespace).GetScale(context.Background(), w.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = 0
		_, err = kube.AppsV1().Deployments(w.Namespace).UpdateScale(context.Background(), w.Name, s, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("scale to zero by hand: %v", err)
	}
	testutil.Eventually(t, 20*time.Second, "prescale to read the zero as set by hand", func() error {
		if !a.logContains(`reason="ScalingDisabled"`) {
			return fmt.Errorf("no ScalingDisabled decision in %s", a.logPath)
		}
		return nil
	})
	holdsZero(t, w, 5*time.Second, "a zero set by hand, the signal at 35/s")
	if zeroed, _ := storedZero(t, w); zeroed {
		t.Error("a zero set by hand: the record says scaledToZero")
	}
	a.terminate()
	a2 := startPrescale(t, "hand-a2", cfg)
	testutil.Eventually(t, 20*time.Second, "the restarted instance to read the zero as set by hand", func() error {
		if !a2.logContains(`reason="ScalingDisabled"`) {
			return fmt.Errorf("no ScalingDisabled decision in %s", a2.logPath)
		}
		return nil
	})
	holdsZero(t, w, 5*time.Second, "a zero set by hand after a restart, the signal at 35/s")
}
