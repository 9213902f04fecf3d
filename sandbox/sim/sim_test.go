package sim

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func pod(name string, node string, ready bool) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: map[string]string{"app": "llm"}},
		Spec:       corev1.PodSpec{NodeName: node},
	}
	if ready {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	}
	return p
}

func TestSimExportsOnlyReadyPods(t *testing.T) {
	replicas := int32(4)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "llm"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "llm"}},
		},
	}
	client := fake.NewClientset(dep,
		pod("ready-a", "n0", true), pod("ready-b", "n1", true),
		pod("starting", "n1", false), pod("pending", "", false))
	var reports []Report
	s, err := New(client, Options{
		Namespace: "ns", Deployment: "llm", Load: Trace{1200}, Mu: 20,
		Tick: 15 * time.Second, Compression: 15000, Duration: 30 * time.Second, BatchSize: 10,
		OnTick: func(r Report) { reports = append(reports, r) },
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := s.Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	// 1200 req/min = 20 req/s over 2 Ready pods of 20 req/s: 50% busy, no queue.
	last := reports[len(reports)-1]
	if last.Ready != 2 || last.Starting != 1 || last.Pending != 1 || last.Desired != 4 || last.Util != 50 {
		t.Errorf("last report = %+v, want 2 ready, 1 starting, 1 pending, desired 4, util 50", last)
	}
	// 2 ticks x 15 s x 3 pods holding GPUs (Ready + starting) = 1.5 replica-minutes.
	if sum.Ticks != 2 || sum.ReplicaMinutes != 1.5 || sum.UnderProvisionedMinute != 0 {
		t.Errorf("summary = %+v, want 2 ticks, 1.5 replica-minutes, 0 under-provisioned", sum)
	}

	// The arrival counter rises through the last tick (1 ms of real time): wait it out.
	time.Sleep(5 * time.Millisecond)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	for _, want := range []string{
		`DCGM_FI_DEV_GPU_UTIL{namespace="ns",pod="ready-a",service="llm"} 50`,
		`vllm:num_requests_waiting{namespace="ns",pod="ready-b",service="llm"} 0`,
		`vllm:num_requests_running{namespace="ns",pod="ready-a",service="llm"} 5`,
		`vllm:e2e_request_latency_seconds_count{namespace="ns",pod="ready-a",service="llm"}`,
		`inference_requests_total{namespace="ns",service="llm"} 600`, // 20 req/s x 30 s
		`prescale_sim_capacity_requests_per_second{namespace="ns",service="llm"} 40`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, absent := range []string{`pod="starting"`, `pod="pending"`} {
		if strings.Contains(text, absent) {
			t.Errorf("metrics export a pod that is not Ready: %s", absent)
		}
	}
}

func TestArrivalsRiseThroughTheTick(t *testing.T) {
	// 10x: a 15 s tick lasts 1.5 s of real time.
	a := &arrivals{compression: 10, period: 15 * time.Second}
	t0 := time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)
	if v := a.value(t0); v != 0 {
		t.Errorf("before the first tick: %v, want 0", v)
	}
	a.tick(20, t0) // 20 req/s: 300 requests over the tick
	for _, c := range []struct {
		after time.Duration
		want  float64
	}{
		{0, 0},
		{750 * time.Millisecond, 150}, // half the tick
		{1500 * time.Millisecond, 300},
		{10 * time.Second, 300}, // a late next tick: no more than the tick's arrivals
	} {
		if got := a.value(t0.Add(c.after)); got != c.want {
			t.Errorf("%s into the tick: %v, want %v", c.after, got, c.want)
		}
	}
	a.tick(40, t0.Add(2*time.Second)) // the next tick counts the first one whole
	if got := a.value(t0.Add(2*time.Second + 750*time.Millisecond)); got != 300+300 {
		t.Errorf("half into the second tick: %v, want 600", got)
	}
}
