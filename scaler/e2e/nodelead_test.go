//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// Beside a real node autoscaler (Karpenter's kwok provider, its nodes Ready 20 s after
// their creation), prescale measures the node pool's lead time: a GPU pod that fits no node
// makes Karpenter launch one, and prescale_node_lead_time_seconds{nodepool} reads the
// node's creation-to-Ready time.
func TestNodeLeadTimeBesideKarpenter(t *testing.T) {
	const nodeDelay = 20 * time.Second
	sharedSandbox(t) // builds prescale; the policy runs on the Karpenter sandbox below
	_, ctx := ktesting.NewTestContext(t)
	st, err := sandbox.Up(ctx, sandbox.Options{BinDir: world.bin, StateDir: t.TempDir(),
		Karpenter: &sandbox.KarpenterOptions{NodeDelay: nodeDelay}})
	if err != nil {
		t.Fatalf("sandbox with Karpenter: %v", err)
	}
	t.Cleanup(func() {
		if err := sandbox.Down(context.Background(), st.Dir); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	kube, err := st.Client()
	if err != nil {
		t.Fatal(err)
	}
	w := sandbox.Workload{Namespace: "e2e-node-lead", Name: "llm", Replicas: 1, GPUs: 1}
	if err := w.Apply(ctx, kube); err != nil {
		t.Fatal(err)
	}
	// In dry-run: the measurement needs no write. The later --kubeconfig wins over the
	// shared sandbox's.
	in := startPrescale(t, "node-lead", config(st.PrometheusURL, w, "dryRun: true"), "--kubeconfig", st.Kubeconfig)
	var lead float64
	testutil.Eventually(t, nodeDelay+2*time.Minute, "prescale_node_lead_time_seconds of the pool", func() error {
		v, ok := in.metric("prescale_node_lead_time_seconds", map[string]string{"nodepool": sandbox.KarpenterNodePool})
		if !ok {
			return fmt.Errorf("no series yet")
		}
		lead = v
		return nil
	})
	// The node is Ready nodeDelay after its creation (kwok's stage, to the second).
	if lead < nodeDelay.Seconds() || lead > nodeDelay.Seconds()+15 {
		t.Errorf("node lead time %.1f s, want %s to %s", lead, nodeDelay, nodeDelay+15*time.Second)
	}
	t.Logf("node lead time measured: %.1f s (node delay %s)", lead, nodeDelay)
}
