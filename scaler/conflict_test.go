package scaler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/prescale/prescale/policy"
)

// An HPA on the same workload (here KEDA's, owned by a ScaledObject) and prescale not in
// dry-run: prescale writes nothing, says why once (a Warning event), in the metric and in
// the status; once the HPA is gone it writes again.
func TestConflictingAutoscaler(t *testing.T) {
	cl := newCluster(t, 2)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "keda-hpa-web",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "web", UID: "u1"}}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    10,
		},
	}
	if _, err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Create(cl.ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := cl.controller(webPolicy, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, limited to 2 + 1 = 3

	events := cl.tickAt(c, 0)
	want := "Warning ConflictingAutoscaler HorizontalPodAutoscaler default/keda-hpa-web (KEDA ScaledObject web) also scales Deployment default/web"
	if len(events) != 1 || !strings.HasPrefix(events[0], want) {
		t.Errorf("events: %q, want one starting %q", events, want)
	}
	if events = cl.tickAt(c, 15*time.Second); len(events) != 0 {
		t.Errorf("events at the second tick: %q, want none (the warning is sent on change)", events)
	}
	if diff := cmp.Diff([]string{"kube: create horizontalpodautoscalers/"}, cl.writeActions()); diff != "" {
		t.Errorf("writes while the HPA targets the workload, besides the test's HPA (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(cl.metrics.ConflictingAutoscaler.WithLabelValues("web")); got != 1 {
		t.Errorf("prescale_conflicting_autoscaler = %v, want 1", got)
	}
	if st := c.Status()[0]; !strings.Contains(st.NotWriting, "keda-hpa-web") || count(st.Desired) != "3" {
		t.Errorf("status: notWriting %q, desired %s; want the HPA named, and the decision (3) still made", st.NotWriting, count(st.Desired))
	}

	// The HPA is deleted: once the informer has seen it, prescale writes 3.
	if err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Delete(cl.ctx, "keda-hpa-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for at := 30 * time.Second; len(cl.writes()) == 0; at += 15 * time.Second {
		if time.Now().After(deadline) {
			t.Fatal("no scale write 10 s after the HPA was deleted")
		}
		cl.tickAt(c, at)
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("scale writes after the HPA left (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(cl.metrics.ConflictingAutoscaler.WithLabelValues("web")); got != 0 {
		t.Errorf("prescale_conflicting_autoscaler = %v after the HPA left, want 0", got)
	}
	if st := c.Status()[0]; st.NotWriting != "" {
		t.Errorf("status notWriting %q after the HPA left, want none", st.NotWriting)
	}
}

// sharedPolicies are webPolicy and a canary's: Deployment default/canary scaled on the same
// load, from 1 replica, up by as many pods as it wants.
const sharedPolicies = webPolicy + `  - name: canary
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: canary}
    maxReplicas: 10
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleUp:
        stabilizationWindowSeconds: 0
        policies: [{type: Pods, value: 10, periodSeconds: 60}]
`

// Two policies whose targets' selectors overlap: the canary's pod carries app=web, so
// web's selector (app=web) selects it as well as the canary's (app=web,track=canary). As
// the HPA refuses two HPAs over the same pods (AmbiguousSelector), neither scales, though
// a load of 50 asks web for 3 (2 + 1 a minute) and the canary for ceil(50 / 10) = 5: each
// says why once (a Warning event naming the other policy), in its status and in its
// decision record. Once the canary's pods and selector no longer overlap web's, both scale.
func TestAmbiguousSelector(t *testing.T) {
	cl := newCluster(t, 2)
	canary := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "canary", UID: "uid-c", ResourceVersion: "1"},
		Spec:       autoscalingv1.ScaleSpec{Replicas: 1},
		Status:     autoscalingv1.ScaleStatus{Replicas: 1, Selector: "app=web,track=canary"},
	}
	var canaryWrites []int32
	cl.scales.PrependReactor("get", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.(clienttesting.GetAction).GetName() != "canary" {
			return false, nil, nil
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return true, canary.DeepCopy(), nil
	})
	cl.scales.PrependReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		s := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		if s.Name != "canary" {
			return false, nil, nil
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		canaryWrites = append(canaryWrites, s.Spec.Replicas)
		canary.Spec.Replicas, canary.ResourceVersion = s.Spec.Replicas, canary.ResourceVersion+"1"
		return true, canary.DeepCopy(), nil
	})
	var objects []runtime.Object
	for _, name := range []string{"web", "canary"} {
		d := &unstructured.Unstructured{}
		d.SetAPIVersion("apps/v1")
		d.SetKind("Deployment")
		d.SetNamespace("default")
		d.SetName(name)
		objects = append(objects, d)
	}
	cl.dyn = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objects...)
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	for _, p := range []*corev1.Pod{pod("web-1", map[string]string{"app": "web"}),
		pod("canary-1", map[string]string{"app": "web", "track": "canary"})} {
		if _, err := cl.kube.CoreV1().Pods("default").Create(cl.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c := cl.controller(sharedPolicies, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50})

	events := cl.tickAt(c, 0)
	var ambiguous []string
	for _, e := range events {
		if strings.HasPrefix(e, "Warning AmbiguousSelector ") {
			ambiguous = append(ambiguous, e)
		}
	}
	// One on each target, each naming the other policy.
	if len(ambiguous) != 2 || !strings.Contains(strings.Join(ambiguous, "\n"), "policy canary") ||
		!strings.Contains(strings.Join(ambiguous, "\n"), "policy web") {
		t.Errorf("AmbiguousSelector events: %q, want one naming policy canary and one naming policy web (all events %q)", ambiguous, events)
	}
	if events := cl.tickAt(c, 15*time.Second); len(events) != 0 {
		t.Errorf("events at the second tick: %q, want none (the warning is sent on change)", events)
	}
	if n := cl.scaleUpdates(); n != 0 {
		t.Errorf("%d scale updates (web %v, canary %v) while the selectors overlap, want none", n, cl.writes(), canaryWrites)
	}
	for _, st := range c.Status() {
		if st.Reason != "AmbiguousSelector" || st.Desired == nil || st.Current == nil || *st.Desired != *st.Current {
			t.Errorf("status of %s: %v -> %v (%s), want the current replicas held (AmbiguousSelector)", st.Policy, st.Current, st.Desired, st.Reason)
		}
	}
	var table strings.Builder
	WriteStatusTable(&table, c.Status())
	for _, want := range []string{"canary: not scaling: ", "web: not scaling: "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("status table:\n%s\nwant a line starting %q", table.String(), want)
		}
	}
	recs := records(cl)
	// Each a merge patch whose annotation is the record's JSON, quoted.
	const held = `\"reason\":\"AmbiguousSelector\"`
	if len(recs) != 2 || !strings.Contains(recs[0], held) || !strings.Contains(recs[1], held) {
		t.Errorf("decision records: %q, want both with reason AmbiguousSelector", recs)
	}

	// The canary is relabelled apart: once the informer has seen it, both scale.
	if _, err := cl.kube.CoreV1().Pods("default").Update(cl.ctx, pod("canary-1", map[string]string{"app": "canary", "track": "canary"}),
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cl.set(func(*cluster) { canary.Status.Selector = "app=canary,track=canary" })
	deadline := time.Now().Add(10 * time.Second)
	for at := 30 * time.Second; len(cl.writes()) == 0; at += 15 * time.Second {
		if time.Now().After(deadline) {
			t.Fatal("no scale write 10 s after the selectors stopped overlapping")
		}
		cl.tickAt(c, at)
		time.Sleep(10 * time.Millisecond)
	}
	cl.set(func(*cluster) {
		if diff := cmp.Diff([]int32{3}, cl.written); diff != "" {
			t.Errorf("web's scale writes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int32{5}, canaryWrites); diff != "" {
			t.Errorf("canary's scale writes (-want +got):\n%s", diff)
		}
	})
	table.Reset()
	WriteStatusTable(&table, c.Status())
	if strings.Contains(table.String(), "not scaling") {
		t.Errorf("status table after the overlap ended:\n%s\nwant no 'not scaling' line", table.String())
	}
}

// In dry-run an HPA beside prescale is the point: no warning, no conflict.
func TestDryRunBesideAnHPAIsNoConflict(t *testing.T) {
	cl := newCluster(t, 2)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    10,
		},
	}
	if _, err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Create(cl.ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := options()
	opts.DryRun = true
	c := cl.controller(webPolicy, opts)
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50})
	if events := cl.tickAt(c, 0); len(events) != 0 {
		t.Errorf("events in dry-run beside an HPA: %q, want none", events)
	}
	if got := testutil.ToFloat64(cl.metrics.ConflictingAutoscaler.WithLabelValues("web")); got != 0 {
		t.Errorf("prescale_conflicting_autoscaler = %v in dry-run, want 0", got)
	}
}
