package sim

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestServerModesKeepTheirUnits serves one overloaded tick in each mode and reads the queue
// time of its requests in the server's own unit. 60 requests/s on two pods of 20/s for
// 15 s: 600 are served, 300 per pod, and 300 wait, a queueing delay of 300/40 = 7.5 s.
func TestServerModesKeepTheirUnits(t *testing.T) {
	pod := map[string]string{"pod": "llm-a"}
	cases := []struct {
		mode       Server
		sum, count string
		field      func(*dto.Metric) float64
		want       float64 // mean queue time of a request, in the server's unit
	}{
		{ServerVLLM, "vllm:request_queue_time_seconds", "", histSum, 7.5},
		{ServerTGI, "tgi_request_queue_duration", "", histSum, 7.5},
		{ServerSGLang, "sglang:queue_time_seconds", "", histSum, 7.5},
		// Triton adds whole microseconds per request.
		{ServerTriton, "nv_inference_queue_duration_us", "nv_inference_request_success", value, 7.5e6},
	}
	for _, c := range cases {
		t.Run(string(c.mode), func(t *testing.T) {
			s := newServerTestSim(t, c.mode)
			drive(s, phase{ticks: 1, lambda: 60, ready: []string{"llm-a", "llm-b"}})
			e := parseExposition(t, scrape(t, s))
			sum, ok := sampleValue(e, c.sum, pod, c.field)
			if !ok {
				t.Fatalf("no %s", c.sum)
			}
			var n float64
			if c.count == "" {
				n, _ = sampleValue(e, c.sum, pod, histCount)
			} else {
				n, _ = sampleValue(e, c.count, pod, value)
			}
			if n != 300 || math.Abs(sum/n-c.want) > 1e-6*c.want {
				t.Errorf("%s: %v requests, mean %v; want 300 requests, mean %v", c.sum, n, sum/n, c.want)
			}
		})
	}
	t.Run("triton's first response in milliseconds", func(t *testing.T) {
		s := newServerTestSim(t, ServerTriton)
		drive(s, phase{ticks: 1, lambda: 60, ready: []string{"llm-a", "llm-b"}})
		e := parseExposition(t, scrape(t, s))
		sum, _ := sampleValue(e, "nv_inference_first_response_histogram_ms", pod, histSum)
		n, _ := sampleValue(e, "nv_inference_first_response_histogram_ms", pod, histCount)
		// 7.5 s of queue and a prefill of well under a second: 7500..8500 ms.
		if mean := sum / n; mean < 7500 || mean > 8500 {
			t.Errorf("mean time to first response %v ms, want 7500..8500", mean)
		}
	})
}

// TestServerModesLatency reads the latency histograms of vLLM below and above capacity:
// below, requests wait for nothing and the first token comes before the last; above, every
// request has waited.
func TestServerModesLatency(t *testing.T) {
	pod := map[string]string{"pod": "llm-a"}
	mean := func(e scraped, name string) float64 {
		sum, _ := sampleValue(e, name, pod, histSum)
		n, _ := sampleValue(e, name, pod, histCount)
		return sum / n
	}
	below := newServerTestSim(t, ServerVLLM)
	drive(below, phase{ticks: 2, lambda: 20, ready: []string{"llm-a", "llm-b"}})
	e := parseExposition(t, scrape(t, below))
	if q := mean(e, "vllm:request_queue_time_seconds"); q != 0 {
		t.Errorf("below capacity: mean queue time %v, want 0", q)
	}
	ttft, e2e := mean(e, "vllm:time_to_first_token_seconds"), mean(e, "vllm:e2e_request_latency_seconds")
	// A mean request spends Batch/Mu = 0.8 s in the batch.
	if !(ttft < e2e) || math.Abs(e2e-0.8) > 0.1 {
		t.Errorf("below capacity: mean TTFT %v, end-to-end %v; want TTFT below end-to-end, and end-to-end about 0.8 s", ttft, e2e)
	}
	above := newServerTestSim(t, ServerVLLM)
	drive(above, phase{ticks: 2, lambda: 60, ready: []string{"llm-a", "llm-b"}})
	e = parseExposition(t, scrape(t, above))
	// Queue times of 7.5 s and then 15 s, as many requests in each tick.
	if q := mean(e, "vllm:request_queue_time_seconds"); math.Abs(q-11.25) > 1e-9 {
		t.Errorf("above capacity: mean queue time %v, want 11.25", q)
	}
	if w, _ := sampleValue(e, "vllm:num_requests_waiting", pod, value); w != 300 {
		t.Errorf("above capacity: %v waiting, want 600/2 = 300", w)
	}
	if kv, _ := sampleValue(e, "vllm:kv_cache_usage_perc", pod, value); kv <= 0 || kv > 1 {
		t.Errorf("above capacity: KV usage %v, want in (0, 1]", kv)
	}
}

// TestDCGMExporter checks dcgm-exporter's collection interval and duty cycle: at half the
// capacity (8 of a batch of 16 running) the GPU is busy 1 - e^-8, which reads 100, where
// the prescale dialect's load/capacity reads 50; a pod still loading its model reads 0.
func TestDCGMExporter(t *testing.T) {
	util := func(s *Sim, p string) (float64, bool) {
		return sampleValue(parseExposition(t, scrape(t, s)), "DCGM_FI_DEV_GPU_UTIL", map[string]string{"pod": p}, value)
	}
	s := newServerTestSim(t, ServerVLLM)
	d := &driver{s: s}
	ab := []string{"llm-a", "llm-b"}
	d.run(phase{ticks: 1, lambda: 20, ready: ab})
	if u, _ := util(s, "llm-a"); u != 100 {
		t.Errorf("at half the capacity: %v, want 100", u)
	}
	if u, ok := util(s, "llm-c"); !ok || u != 0 {
		t.Errorf("a pod loading its model: %v (exported %v), want 0", u, ok)
	}
	// 1.25 requests/s on 2 pods: half a request running per pod, busy 1 - e^-0.5 = 39 %.
	// The next tick is 15 s after the collection at 0 s: the exporter still serves 100.
	d.run(phase{ticks: 1, lambda: 1.25, ready: ab})
	if u, _ := util(s, "llm-a"); u != 100 {
		t.Errorf("15 s after the last collection: %v, want the collection's 100", u)
	}
	d.run(phase{ticks: 1, lambda: 1.25, ready: ab})
	if u, _ := util(s, "llm-a"); u != 39 {
		t.Errorf("at the next collection: %v, want 39", u)
	}
	want := map[string]string{"gpu": "0", "Hostname": "n0", "pod": "llm-a", "namespace": "ns", "container": "server",
		"modelName": gpuModelName, "device": "nvidia0"}
	if _, ok := sampleValue(parseExposition(t, scrape(t, s)), "DCGM_FI_DEV_GPU_UTIL", want, value); !ok {
		t.Errorf("no DCGM_FI_DEV_GPU_UTIL with the labels %v", want)
	}
}

// TestGateway checks the endpoint picker's counters: with no Ready pod a request is an
// error (no endpoint), with one it is dispatched; both count at arrival, and a counter
// appears with its first request.
func TestGateway(t *testing.T) {
	s := newServerTestSim(t, ServerVLLM)
	d := &driver{s: s}
	total := func(name string) (float64, bool) {
		return sampleValue(parseExposition(t, scrape(t, s)), name, map[string]string{"model_name": "llm"}, value)
	}
	d.run(phase{ticks: 1, lambda: 0})
	if _, ok := total("inference_objective_request_total"); ok {
		t.Error("inference_objective_request_total before any request, want none")
	}
	if n, ok := sampleValue(parseExposition(t, scrape(t, s)), "inference_pool_ready_pods", map[string]string{"name": "llm"}, value); !ok || n != 0 {
		t.Errorf("inference_pool_ready_pods with no pod = %v (exported %v), want 0", n, ok)
	}
	// 2/s for 15 s with no pod: 30 requests the picker cannot place.
	d.run(phase{ticks: 1, lambda: 2})
	time.Sleep(5 * time.Millisecond) // the counters rise through the tick: 1 ms at 15000x
	if n, ok := total("inference_objective_request_error_total"); !ok || n != 30 {
		t.Errorf("errors with no pod = %v (exported %v), want 30", n, ok)
	}
	if _, ok := total("inference_objective_request_total"); ok {
		t.Error("inference_objective_request_total with no pod dispatched, want none yet")
	}
	// 4/s for 15 s with two pods: 60 dispatched, counted as they arrive, not as they finish.
	d.run(phase{ticks: 1, lambda: 4, ready: []string{"llm-a", "llm-b"}})
	time.Sleep(5 * time.Millisecond)
	if n, _ := total("inference_objective_request_total"); n != 60 {
		t.Errorf("dispatched = %v, want 60", n)
	}
}

func TestServerModeOptions(t *testing.T) {
	base := Options{Namespace: "ns", Deployment: "llm", Load: Trace{1}, Mu: 1, Tick: time.Second, Compression: 1, BatchSize: 1}
	cases := []struct {
		name    string
		change  func(*Options)
		wantErr []string
	}{
		{name: "an unknown server", change: func(o *Options) { o.Server = "ollama" },
			wantErr: []string{`server: must be one of [prescale vllm tgi sglang triton], got "ollama"`}},
		{name: "dcgm and gateway need a server mode", change: func(o *Options) { o.DCGM, o.Gateway = true, true },
			wantErr: []string{"dcgm: needs a server mode", "gateway: needs a server mode"}},
		{name: "every bad number at once", change: func(o *Options) {
			o.Server, o.MaxModelLen, o.PrefillRatio, o.KVCacheTokens, o.DCGMInterval = ServerVLLM, 1, -1, math.NaN(), -time.Second
			o.Lengths = Lengths{}
		}, wantErr: []string{"maxModelLen: must be >= 2", "prefillRatio: must be a number >= 0, got -1",
			"kvCacheTokens: must be a number >= 0, got NaN", "dcgmInterval: must be >= 0", "lengths: must hold a request"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base
			c.change(&o)
			_, err := New(fake.NewClientset(), o)
			if err == nil {
				t.Fatal("New: no error")
			}
			for _, w := range c.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error = %v, want one containing %q", err, w)
				}
			}
		})
	}
	for _, mode := range []Server{"", ServerPrescale} {
		o := base
		o.Server = mode
		s, err := New(fake.NewClientset(), o)
		if err != nil || s.expo != nil {
			t.Errorf("server %q: err %v, server mode %v; want the prescale dialect", mode, err, s != nil && s.expo != nil)
		}
	}
}

// TestSimRunsAServerMode runs a vLLM-mode Sim against a fake cluster, as
// TestSimExportsOnlyReadyPods does the prescale dialect: Ready pods export vLLM's series,
// a pod loading its model exports none but its GPU's, and nothing of the prescale
// dialect is served.
func TestSimRunsAServerMode(t *testing.T) {
	replicas := int32(3)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "llm"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "llm"}}},
	}
	withGPU := func(p *corev1.Pod) *corev1.Pod {
		p.Spec.Containers = []corev1.Container{{Name: "sidecar"}, {Name: "vllm", Resources: corev1.ResourceRequirements{
			Limits: corev1.ResourceList{"nvidia.com/gpu": resourceOne}}}}
		return p
	}
	client := fake.NewClientset(dep, withGPU(pod("ready-a", "n0", true)), withGPU(pod("starting", "n0", false)),
		withGPU(pod("pending", "", false)))
	s, err := New(client, Options{
		Namespace: "ns", Deployment: "llm", Load: Trace{600}, Mu: 20, Tick: 15 * time.Second, Compression: 15000,
		Duration: 30 * time.Second, BatchSize: 16, Server: ServerVLLM, DCGM: true, Gateway: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	text := scrape(t, s)
	for _, want := range []string{
		`vllm:num_requests_running{engine="0",model_name="llm",namespace="ns",pod="ready-a",service="llm"}`,
		`DCGM_FI_DEV_GPU_UTIL{DCGM_FI_DRIVER_VERSION="550.90.07",Hostname="n0",`,
		`container="vllm",device="nvidia1",gpu="1",modelName="NVIDIA H100 80GB HBM3",namespace="ns",pci_bus_id="00000000:19:00.0",pod="starting"} 0`,
		`inference_pool_ready_pods{name="llm",namespace="ns"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, absent := range []string{`vllm:num_requests_running{engine="0",model_name="llm",namespace="ns",pod="starting"`,
		`pod="pending"`, "prescale_sim_", "inference_requests_total"} {
		if strings.Contains(text, absent) {
			t.Errorf("metrics have %q", absent)
		}
	}
}

var resourceOne = resource.MustParse("1")
