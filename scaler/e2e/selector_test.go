//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// Two policies whose targets' selectors overlap, on the real API server: a canary
// Deployment whose pods carry the stable one's label (app.kubernetes.io/name=llm) beside
// their own (track=canary), so that the stable Deployment's selector selects the canary's
// pod too. A queue of 20 a pod (target 5) asks both to scale up; as the HPA does for two
// HPAs over the same pods, prescale refuses: an AmbiguousSelector warning on each target
// naming the other policy, both held in /status, and no scale write at all.
func TestAmbiguousSelector(t *testing.T) {
	_, kube := sharedSandbox(t)
	w := workload(t, "llm", 1, 1, 0)
	canary := sandbox.Workload{Namespace: w.Namespace, Name: "llm-canary", Replicas: 1, GPUs: 1}
	d := canary.Deployment()
	labels := map[string]string{"app.kubernetes.io/name": "llm", "track": "canary"}
	d.Labels, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels = labels, labels, labels
	ctx := context.Background()
	if _, err := kube.AppsV1().Deployments(w.Namespace).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Both pods Ready before prescale starts, so that its first tick sees them: the queue
	// is exported for each Ready pod of app.kubernetes.io/name=llm, the canary's included.
	testutil.Eventually(t, 60*time.Second, "the pods of both Deployments Ready", func() error {
		pods, err := kube.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=llm"})
		if err != nil {
			return err
		}
		n := 0
		for i := range pods.Items {
			if ready(&pods.Items[i]) {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d of 2 pods Ready", n)
		}
		return nil
	})
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(20) // per pod, target 5: without the overlap both would scale up
	waitValue(t, p, fmt.Sprintf("count(vllm:num_requests_waiting{namespace=%q})", w.Namespace), 2)

	started := time.Now()
	cfg := config(p.URL(), w, "") + fmt.Sprintf(`  - name: llm-canary
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: llm-canary}
    minReplicas: 1
    maxReplicas: 12
    metrics:
      - name: queue
        query: sum by (pod) (vllm:num_requests_waiting{namespace=%q})
        target: {type: AverageValue, averageValue: 5}
`, w.Namespace, w.Namespace)
	in := startPrescale(t, "a", cfg)
	testutil.Eventually(t, 60*time.Second, "an AmbiguousSelector warning on each target naming the other policy", func() error {
		got := events(t, w, "AmbiguousSelector")
		all := strings.Join(got, "\n")
		if len(got) != 2 || !strings.Contains(all, "also selected by the target of policy llm-canary") ||
			!strings.Contains(all, "also selected by the target of policy llm ") {
			return fmt.Errorf("events %q", got)
		}
		return nil
	})
	// Five ticks more: still no write.
	time.Sleep(5 * time.Second)
	st := in.status(t)
	for _, name := range []string{"llm", "llm-canary"} {
		s := st[name]
		if s.Reason != "AmbiguousSelector" || s.Desired == nil || *s.Desired != 1 || !strings.Contains(s.NotScaling, "also selected by") {
			t.Errorf("status of %s: desired %v, reason %s, notScaling %q; want 1 held, AmbiguousSelector, and why",
				name, s.Desired, s.Reason, s.NotScaling)
		}
	}
	if writes := auditedScaleWrites(t, w.Namespace, started); len(writes) != 0 {
		t.Errorf("scale writes while the selectors overlap: %+v, want none", writes)
	}
	for _, name := range []string{"llm", "llm-canary"} {
		if got := specReplicas(t, sandbox.Workload{Namespace: w.Namespace, Name: name}); got != 1 {
			t.Errorf("%s at %d replicas, want 1", name, got)
		}
	}
}
