package scaler

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// poolNode is a node of pool (label label) created at created, Ready since ready (zero:
// not Ready yet).
func poolNode(name, label, pool string, created, ready time.Time) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name),
		CreationTimestamp: metav1.NewTime(created)}}
	if label != "" {
		n.Labels = map[string]string{label: pool}
	}
	cond := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(created)}
	if !ready.IsZero() {
		cond.Status, cond.LastTransitionTime = corev1.ConditionTrue, metav1.NewTime(ready)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, cond}
	return n
}

// Each pool's lead time is the p90 of its nodes' creation-to-Ready times, each node counted
// once when first seen Ready; nodes in no pool, not Ready yet, or Ready again long after
// their creation do not count, and a pool whose nodes are gone keeps its lead time.
func TestNodeLeads(t *testing.T) {
	at := func(min float64) time.Time { return epoch.Add(time.Duration(min * float64(time.Minute))) }
	l := nodeLeads{}
	l.observe([]*corev1.Node{
		poolNode("k1", "karpenter.sh/nodepool", "gpu", at(0), at(9)),
		poolNode("k2", "karpenter.sh/nodepool", "gpu", at(1), time.Time{}), // booting
		poolNode("g1", "cloud.google.com/gke-nodepool", "a100", at(0), at(6)),
		poolNode("s1", "", "", at(0), at(1)),                                 // no pool
		poolNode("old", "eks.amazonaws.com/nodegroup", "ng", at(0), at(180)), // Ready again 3 h later
	})
	if diff := cmp.Diff(map[string]time.Duration{"gpu": 9 * time.Minute, "a100": 6 * time.Minute}, l.p90()); diff != "" {
		t.Errorf("after the first look (-want +got):\n%s", diff)
	}
	// k2 Ready after 11 minutes; k1 seen again is not counted twice; g1 is gone.
	l.observe([]*corev1.Node{
		poolNode("k1", "karpenter.sh/nodepool", "gpu", at(0), at(9)),
		poolNode("k2", "karpenter.sh/nodepool", "gpu", at(1), at(12)),
	})
	if diff := cmp.Diff(map[string]time.Duration{"gpu": 11 * time.Minute, "a100": 6 * time.Minute}, l.p90()); diff != "" {
		t.Errorf("after k2 became Ready (-want +got):\n%s", diff)
	}
	if n := l["gpu"].n; n != 2 {
		t.Errorf("pool gpu measured %d nodes, want 2 (k1 once)", n)
	}
}

// A tick measures the node pools and exports prescale_node_lead_time_seconds.
func TestTickExportsNodeLeadTime(t *testing.T) {
	cl := newCluster(t, 2)
	node := poolNode("k1", "karpenter.sh/nodepool", "gpu", epoch.Add(-10*time.Minute), epoch.Add(-2*time.Minute))
	if _, err := cl.kube.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := cl.controller(webPolicy, options())
	lead(c)
	cl.tickAt(c, 0)
	if got := testutil.ToFloat64(cl.metrics.NodeLeadTime.WithLabelValues("gpu")); got != 480 {
		t.Errorf("prescale_node_lead_time_seconds{nodepool=gpu} = %v, want 480", got)
	}
}
