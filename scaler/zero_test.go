package scaler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/prescale/prescale/policy"
)

// zeroPolicy is webPolicy at minReplicas 0 with scaleToZero on the query gateway: 20
// requests/s per replica, idle delay 60 s.
const zeroPolicy = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    minReplicas: 0
    maxReplicas: 10
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 0}
    scaleToZero:
      activation: {query: gateway, perReplica: 20}
      idleDelay: 60s
`

// TestScaleToZeroController: at 2 replicas with no load and an idle gateway the target
// goes to zero once the gateway has been idle for 60 s; a missing gateway sample holds
// zero and says so; 90 requests/s wake it straight to ceil(90 / 20) = 5 replicas (the
// scale-up policy would allow 4 from zero).
func TestScaleToZeroController(t *testing.T) {
	cl := newCluster(t, 2)
	cl.source.set("gateway", policy.Sample{Value: 0})
	c := cl.controller(zeroPolicy, options())
	lead(c)
	// Idle from the tick at 0 s: the floor of one replica until 60 s.
	cl.tickAt(c, 0)
	cl.tickAt(c, 30*time.Second)
	if got := cl.replicas(); got != 1 {
		t.Fatalf("idle 30 s of 60: %d replicas, want 1", got)
	}
	if got := testutil.ToFloat64(cl.metrics.IdleSeconds.WithLabelValues("web")); got != 30 {
		t.Errorf("prescale_scale_to_zero_idle_seconds = %v, want 30", got)
	}
	cl.tickAt(c, 60*time.Second)
	if got := cl.replicas(); got != 0 {
		t.Fatalf("idle 60 s: %d replicas, want 0", got)
	}
	cl.tickAt(c, 75*time.Second) // at zero: the metrics are not evaluated
	if n := testutil.CollectAndCount(cl.metrics.MetricValue); n != 0 {
		t.Errorf("at zero: %d prescale_metric_value series, want none (stale)", n)
	}
	st := c.Status()[0]
	if st.Zero == nil || st.Zero.Reason != policy.ReasonScaledToZero || st.Reason != policy.ReasonScaledToZero {
		t.Errorf("status at zero: reason %s, zero %+v", st.Reason, st.Zero)
	}
	// The load metric has no pod to read at zero: missing, as it would be.
	cl.source.set("load", policy.Sample{Err: errors.New("no series")})
	cl.source.set("gateway", policy.Sample{Err: errors.New("stale")})
	events := cl.tickAt(c, 90*time.Second)
	if got := cl.replicas(); got != 0 {
		t.Fatalf("gateway missing at zero: %d replicas, want 0", got)
	}
	if !containsReason(events, ReasonActivationMissing) {
		t.Errorf("gateway missing: events %v, want %s", events, ReasonActivationMissing)
	}
	cl.source.set("gateway", policy.Sample{Value: 90})
	events = cl.tickAt(c, 120*time.Second)
	if got := cl.replicas(); got != 5 {
		t.Fatalf("gateway at 90/s: %d replicas, want 5", got)
	}
	if !containsReason(events, ReasonSuccessfulRescale) {
		t.Errorf("wake-up: events %v, want %s", events, ReasonSuccessfulRescale)
	}
}

func containsReason(events []string, reason string) bool {
	for _, e := range events {
		if strings.Contains(e, " "+reason+" ") {
			return true
		}
	}
	return false
}

// TestWakeFromZeroIsAllocated: a target at zero has no pod to read what its pods request,
// so the GPU allocation reads the workload's spec.template. Waking to 5 replicas of 2 GPUs
// on a node with 4 free is granted the 2 that fit; a template that requests no GPU is not
// arbitrated; a workload that cannot be read is granted no scale-up, and says why.
func TestWakeFromZeroIsAllocated(t *testing.T) {
	for _, tc := range []struct {
		name     string
		workload *unstructured.Unstructured
		getFails bool // reading the workload fails once it is at zero
		want     int32
		message  string // in the CapacityLimited event; "" for none
	}{
		{name: "template of 2 GPUs", workload: deploymentWithTemplate(t, gpuPod("", "", 2)), want: 2,
			message: "wanted 5, granted 2"},
		{name: "template without GPUs", workload: deploymentWithTemplate(t, &corev1.Pod{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "server"}}}}), want: 5},
		// Readable while it goes to zero (its record is stored on it first), unreadable
		// when it wakes.
		{name: "workload unreadable", workload: deploymentWithTemplate(t, gpuPod("", "", 2)), getFails: true, want: 0,
			message: `wanted 5, granted 0: get Deployment default/web for its pod template`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			var objects []runtime.Object
			if tc.workload != nil {
				objects = append(objects, tc.workload)
			}
			cl.dyn = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objects...)
			if _, err := cl.kube.CoreV1().Nodes().Create(cl.ctx, gpuNode("gpu-0", 4), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			cl.source.set("gateway", policy.Sample{Value: 0})
			opts := DefaultOptions()
			opts.Capacity.PendingAllowance = 0
			opts.WatchTargets = false
			c := cl.controller(zeroPolicy, opts)
			lead(c)
			// Idle to zero (a scale-down: nothing to allocate), then woken.
			cl.tickAt(c, 0)
			cl.tickAt(c, 60*time.Second)
			if got := cl.replicas(); got != 0 {
				t.Fatalf("idle 60 s: %d replicas, want 0", got)
			}
			if tc.getFails {
				cl.dyn.PrependReactor("get", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
					return true, nil, errors.New("connection refused")
				})
			}
			cl.source.set("gateway", policy.Sample{Value: 90}) // ceil(90 / 20) = 5 replicas
			events := cl.tickAt(c, 90*time.Second)
			if got := cl.replicas(); got != tc.want {
				t.Fatalf("woke to %d replicas, want %d (events %q)", got, tc.want, events)
			}
			var limited []string
			for _, e := range events {
				if strings.HasPrefix(e, corev1.EventTypeWarning+" "+ReasonCapacityLimited+" ") {
					limited = append(limited, e)
				}
			}
			switch {
			case tc.message == "" && len(limited) > 0:
				t.Errorf("CapacityLimited events %q, want none", limited)
			case tc.message != "" && (len(limited) != 1 || !strings.Contains(limited[0], tc.message)):
				t.Errorf("CapacityLimited events %q, want one saying %q", limited, tc.message)
			}
		})
	}
}

// deploymentWithTemplate is Deployment default/web whose pod template is pod's spec.
func deploymentWithTemplate(t *testing.T, pod *corev1.Pod) *unstructured.Unstructured {
	t.Helper()
	d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec:       appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: pod.Spec}}}
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}
