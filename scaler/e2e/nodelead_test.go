//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/scaler"
)

// karpenterSandbox starts a sandbox of its own with Karpenter's kwok provider (its nodes
// Ready o.NodeDelay after their creation), down at the test's end; prescale is built by
// the shared sandbox's start.
func karpenterSandbox(t *testing.T, o sandbox.KarpenterOptions) (context.Context, *sandbox.State, kubernetes.Interface) {
	t.Helper()
	sharedSandbox(t)
	_, ctx := ktesting.NewTestContext(t)
	st, err := sandbox.Up(ctx, sandbox.Options{BinDir: world.bin, StateDir: t.TempDir(), Karpenter: &o})
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
	return ctx, st, kube
}

// Beside a real node autoscaler (Karpenter's kwok provider, its nodes Ready 20 s after
// their creation), prescale measures the node pool's lead time: a GPU pod that fits no node
// makes Karpenter launch one, and prescale_node_lead_time_seconds{nodepool} reads the
// node's creation-to-Ready time.
func TestNodeLeadTimeBesideKarpenter(t *testing.T) {
	const nodeDelay = 20 * time.Second
	ctx, st, kube := karpenterSandbox(t, sandbox.KarpenterOptions{NodeDelay: nodeDelay})
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

// Beside Karpenter (a NodePool of 16 GPUs at most, its nodes Ready 20 s after creation,
// none at first), prescale reads what the NodePool can still add and grants pods beyond
// what fits out of it, with no Pending allowance: a surge to 6 replicas of 1 GPU is
// granted at once, the record saying how many fit now and how many go on nodes the NodePool
// adds and when; Karpenter launches the nodes and every pod becomes Ready. Without the
// NodePool's growth, the allowance of 0 would hold the policy at the pods that fit.
func TestGrowthBesideKarpenter(t *testing.T) {
	const nodeDelay = 20 * time.Second
	ctx, st, kube := karpenterSandbox(t, sandbox.KarpenterOptions{NodeDelay: nodeDelay})
	w := sandbox.Workload{Namespace: "e2e-growth", Name: "llm", Replicas: 1, GPUs: 1}
	if err := w.Apply(ctx, kube); err != nil {
		t.Fatal(err)
	}
	e := newLoadExporter(t)
	e.set(w.Namespace, 10) // 1 replica
	p := startPrometheusOn(t, e.addr)
	in := startPrescale(t, "growth", poolConfig(p.URL(), w.Namespace)+poolPolicy("llm", w, 8, "{}"), "--kubeconfig", st.Kubeconfig)
	testutil.Eventually(t, 30*time.Second, "prescale reading the NodePools", func() error {
		if !in.logContains("Reading Karpenter's NodePools") {
			return fmt.Errorf("not in its log")
		}
		return nil
	})
	ready := func() int32 {
		d, err := kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
		if err != nil {
			return -1
		}
		return d.Status.ReadyReplicas
	}
	// The first pod: on the node Karpenter launches for it.
	testutil.Eventually(t, nodeDelay+2*time.Minute, "the first pod Ready", func() error {
		if n := ready(); n != 1 {
			return fmt.Errorf("%d Ready", n)
		}
		return nil
	})
	e.set(w.Namespace, 60) // 6 replicas
	var capacity *scaler.CapacityStatus
	testutil.Eventually(t, 30*time.Second, "6 replicas granted, some on nodes the NodePool adds", func() error {
		capacity = in.status(t)["llm"].Capacity
		if capacity == nil || capacity.Granted != 6 || capacity.Provisioning == 0 {
			return fmt.Errorf("capacity %+v", capacity)
		}
		return nil
	})
	if !strings.Contains(capacity.Message, "on nodes NodePool "+sandbox.KarpenterNodePool+" can add") {
		t.Errorf("capacity message %q does not name the NodePool", capacity.Message)
	}
	t.Logf("the grant: %s", capacity.Message)
	if v, ok := in.metric("prescale_pool_growth_gpus", map[string]string{"pool": "nvidia.com/gpu"}); !ok || v <= 0 || v > 16 {
		t.Errorf("prescale_pool_growth_gpus = %v (present %v), want 1 to 16", v, ok)
	}
	testutil.Eventually(t, nodeDelay+3*time.Minute, "6 pods Ready on the nodes Karpenter launched", func() error {
		if n := ready(); n != 6 {
			return fmt.Errorf("%d Ready", n)
		}
		return nil
	})
}
