//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/scaler"
)

// poolLabel marks the nodes of a test's own GPU pool; they are tainted with it too, so that
// the other tests' pods stay off them and the pool's pods stay on them.
const poolLabel = "prescale.io/e2e-pool"

// gpuPool adds n kwok nodes offering perNode of resource (and nothing else of a GPU kind),
// labelled and tainted poolLabel=name, and removes them when the test ends.
func gpuPool(t *testing.T, kube kubernetes.Interface, name string, n int, resourceName corev1.ResourceName, perNode int) {
	t.Helper()
	ctx := context.Background()
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("96"),
		corev1.ResourceMemory: resource.MustParse("1024Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
		resourceName:          *resource.NewQuantity(int64(perNode), resource.DecimalSI),
	}
	for i := range n {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", name, i),
				Labels: map[string]string{sandbox.NodeLabel: "true", "type": "kwok", poolLabel: name,
					"kubernetes.io/hostname": fmt.Sprintf("%s-%d", name, i), "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}},
			Spec:   corev1.NodeSpec{Taints: []corev1.Taint{{Key: poolLabel, Value: name, Effect: corev1.TaintEffectNoSchedule}}},
			Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
		}
		if _, err := kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create node %s: %v", node.Name, err)
		}
		t.Cleanup(func() { _ = kube.CoreV1().Nodes().Delete(context.Background(), node.Name, metav1.DeleteOptions{}) })
	}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: poolLabel + "=" + name})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == n, nil
	})
	if err != nil {
		t.Fatalf("the %d nodes of pool %s not Ready within 60s", n, name)
	}
}

// poolWorkload is a Deployment of 1 replica in its own namespace whose pods request perPod
// of resource and go to pool's nodes only.
func poolWorkload(t *testing.T, kube kubernetes.Interface, ns, pool string, resourceName corev1.ResourceName, perPod int) sandbox.Workload {
	t.Helper()
	w := sandbox.Workload{Namespace: ns, Name: "model", Replicas: 1, GPUs: perPod}
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deleteAtCleanup(t, kube, ns)
	d := w.Deployment()
	spec := &d.Spec.Template.Spec
	spec.NodeSelector = map[string]string{poolLabel: pool}
	spec.Tolerations = []corev1.Toleration{{Key: poolLabel, Operator: corev1.TolerationOpEqual, Value: pool, Effect: corev1.TaintEffectNoSchedule}}
	q := *resource.NewQuantity(int64(perPod), resource.DecimalSI)
	spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: corev1.ResourceList{resourceName: q}, Limits: corev1.ResourceList{resourceName: q}}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return w
}

// loadExporter serves inference_load_rps{namespace}, a value per namespace the test sets.
type loadExporter struct {
	addr string
	load *prometheus.GaugeVec
}

func newLoadExporter(t *testing.T) *loadExporter {
	t.Helper()
	e := &loadExporter{load: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "inference_load_rps", Help: "Load."}, []string{"namespace"})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.load)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return e
}

func (e *loadExporter) set(ns string, v float64) { e.load.WithLabelValues(ns).Set(v) }

// poolConfig is the settings of the pool tests, up to the policies: a tick a second, the
// Lease in leaseNamespace, capacity.mode cap with no Pending allowance.
func poolConfig(promURL, leaseNamespace string) string {
	return fmt.Sprintf(`prometheus: {url: %s, timeout: 2s}
interval: 1s
staleness: 5s
leaderElection: {namespace: %s, name: prescale, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 200ms}
capacity: {mode: cap, pendingAllowance: 0}
policies:
`, promURL, leaseNamespace)
}

// poolPolicy is a policy on a workload's load: AverageValue 10, so that it wants
// ceil(load / 10) replicas, scaling up without rate limits and down at once.
func poolPolicy(name string, w sandbox.Workload, maxReplicas int32, capacity string) string {
	return fmt.Sprintf(`  - name: %s
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    minReplicas: 1
    maxReplicas: %d
    metrics:
      - {name: load, query: 'sum(inference_load_rps{namespace=%q})', target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 100, periodSeconds: 1}]}
      scaleDown: {stabilizationWindowSeconds: 0, policies: [{type: Percent, value: 100, periodSeconds: 1}]}
    capacity: %s
`, name, w.Namespace, w.Name, maxReplicas, w.Namespace, capacity)
}

// unschedulable returns the pods of the namespaces that the scheduler found no node for.
func unschedulable(kube kubernetes.Interface, namespaces ...string) []string {
	var out []string
	for _, ns := range namespaces {
		pods, err := kube.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
					out = append(out, ns+"/"+p.Name+": "+c.Message)
				}
			}
		}
	}
	return out
}

// status returns the instance's /status.
func (in *instance) status(t *testing.T) map[string]scaler.PolicyStatus {
	t.Helper()
	st, err := in.fetchStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fetchStatus reads the instance's /status, by policy.
func (in *instance) fetchStatus(ctx context.Context) (map[string]scaler.PolicyStatus, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st []scaler.PolicyStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("decode /status: %w", err)
	}
	out := map[string]scaler.PolicyStatus{}
	for _, s := range st {
		out[s.Policy] = s
	}
	return out, nil
}

// startPrometheusOn starts a Prometheus scraping target (job load) every second.
func startPrometheusOn(t *testing.T, target string) *promtest.Server {
	t.Helper()
	return startPrometheusWith(t, promtest.Options{Config: promtest.ScrapeConfig("load", time.Second, target)})
}

// TestGPUPoolSurge (issue 16): three policies share one pool of 4 kwok nodes and surge
// together beyond it. Throughout, the pods prescale asks for fit the pool (no allowance),
// no pod is unschedulable, the high-priority model reaches its need first, the guaranteed
// minimum holds, the limited policy's CapacityLimited event, metrics and status name who
// got the GPUs, and when the high-priority surge ends its GPUs flow back to the other two.
// Once on whole GPUs (4 x 8 nvidia.com/gpu, 2 a pod), once on MIG slices (4 x 7
// nvidia.com/mig-1g.10gb, 1 a pod).
func TestGPUPoolSurge(t *testing.T) {
	for _, tc := range []struct {
		name     string
		resource corev1.ResourceName
		perNode  int
		perPod   int
		// The worked numbers (docs/capacity.md): pods that fit the pool, what each wants in
		// the surge, and what each is granted.
		fit                  int32
		want                 int32
		llama, mistral, qwen int32
		guaranteed           int32
	}{
		{
			// 32 GPUs, 2 a pod: 16 pods; 3 placed (1 each), 13 free. qwen's guarantee
			// holds 2 more (3), llama (priority 100) takes the other 11 (12 = its need),
			// mistral keeps its 1. When llama drops to 1, its 11 pods' GPUs go to mistral
			// (1/12) and qwen (3/12), the furthest below their need first: 15 between
			// them, neither more than one pod ahead of the other.
			name: "gpu", resource: "nvidia.com/gpu", perNode: 8, perPod: 2,
			fit: 16, want: 12, llama: 12, mistral: 1, qwen: 3, guaranteed: 3,
		},
		{
			// 28 slices, 1 a pod; 3 placed, 25 free. qwen's guarantee holds 3 more (4),
			// llama takes 19 (20), mistral the 3 left (4: it is at 1/20, qwen at 4/20).
			name: "mig", resource: "nvidia.com/mig-1g.10gb", perNode: 7, perPod: 1,
			fit: 28, want: 20, llama: 20, mistral: 4, qwen: 4, guaranteed: 4,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, kube := sharedSandbox(t)
			pool := "pool-" + tc.name
			gpuPool(t, kube, pool, 4, tc.resource, tc.perNode)
			names := []string{"llama", "mistral", "qwen"}
			ws := map[string]sandbox.Workload{}
			var namespaces []string
			for _, n := range names {
				ns := "e2e-pool-" + tc.name + "-" + n
				ws[n] = poolWorkload(t, kube, ns, pool, tc.resource, tc.perPod)
				namespaces = append(namespaces, ns)
			}
			e := newLoadExporter(t)
			for _, n := range names {
				e.set(ws[n].Namespace, 10) // 1 replica each
			}
			p := startPrometheusOn(t, e.addr)
			cfg := poolConfig(p.URL(), namespaces[0])
			cfg += poolPolicy("llama", ws["llama"], tc.fit, "{priority: 100}")
			cfg += poolPolicy("mistral", ws["mistral"], tc.fit, "{priority: 10}")
			cfg += poolPolicy("qwen", ws["qwen"], tc.fit, fmt.Sprintf("{priority: 10, guaranteed: %d}", tc.guaranteed))
			in := startPrescale(t, "pool-"+tc.name, cfg)
			spec := func(n string) int32 { return specReplicas(t, ws[n]) }
			eventually(t, 60*time.Second, "one Ready pod each", func() bool {
				for _, n := range names {
					d := deployment(t, ws[n])
					if d.Status.ReadyReplicas != 1 {
						return false
					}
				}
				return true
			})

			// The invariants, checked every 100 ms from the surge to the end.
			var mu sync.Mutex
			var violations []string
			llamaFirst := time.Time{}
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					sum := int32(0)
					for _, n := range names {
						sum += max(0, spec(n))
					}
					bad := unschedulable(kube, namespaces...)
					mu.Lock()
					if sum > tc.fit {
						violations = append(violations, fmt.Sprintf("prescale asks for %d pods, %d fit", sum, tc.fit))
					}
					if len(bad) > 0 {
						violations = append(violations, fmt.Sprintf("unschedulable pods: %v", bad))
					}
					if llamaFirst.IsZero() && spec("llama") == tc.llama {
						llamaFirst = time.Now()
					}
					mu.Unlock()
				}
			}()
			defer func() {
				close(stop)
				<-done
				mu.Lock()
				defer mu.Unlock()
				for i, v := range violations {
					if i == 5 {
						t.Errorf("... and %d more", len(violations)-5)
						break
					}
					t.Error(v)
				}
			}()

			// Surge: each wants tc.want.
			for _, n := range names {
				e.set(ws[n].Namespace, float64(tc.want)*10)
			}
			eventually(t, 60*time.Second, fmt.Sprintf("llama %d, mistral %d, qwen %d", tc.llama, tc.mistral, tc.qwen), func() bool {
				return spec("llama") == tc.llama && spec("mistral") == tc.mistral && spec("qwen") == tc.qwen
			})
			eventually(t, 60*time.Second, "every pod placed", func() bool {
				for _, n := range names {
					if d := deployment(t, ws[n]); d.Status.ReadyReplicas != *d.Spec.Replicas {
						return false
					}
				}
				return true
			})
			// Held for a few ticks: the grants are stable once every pod is placed.
			time.Sleep(3 * time.Second)
			if got := []int32{spec("llama"), spec("mistral"), spec("qwen")}; got[0] != tc.llama || got[1] != tc.mistral || got[2] != tc.qwen {
				t.Errorf("after 3 more ticks: llama, mistral, qwen = %v, want %d, %d, %d", got, tc.llama, tc.mistral, tc.qwen)
			}
			mu.Lock()
			if llamaFirst.IsZero() {
				t.Errorf("llama never reached its need of %d", tc.llama)
			}
			mu.Unlock()
			testutil.Eventually(t, 20*time.Second, "mistral's CapacityLimited event naming llama", func() error {
				for _, m := range events(t, ws["mistral"], "CapacityLimited") {
					if strings.Contains(m, fmt.Sprintf("wanted %d, granted %d", tc.want, tc.mistral)) &&
						strings.Contains(m, "went to policy llama of higher priority (100 > 10)") && strings.Contains(m, "policy qwen's guaranteed minimum") {
						return nil
					}
				}
				return fmt.Errorf("CapacityLimited events: %q", events(t, ws["mistral"], "CapacityLimited"))
			})
			testutil.Eventually(t, 10*time.Second, "mistral's wanted and granted replicas",
				metricIs(in, "prescale_capacity_granted_replicas", map[string]string{"policy": "mistral"}, fmt.Sprint(tc.mistral),
					func(v float64) bool { return v == float64(tc.mistral) }))
			testutil.Eventually(t, 10*time.Second, "mistral's wanted replicas",
				metricIs(in, "prescale_capacity_wanted_replicas", map[string]string{"policy": "mistral"}, fmt.Sprint(tc.want),
					func(v float64) bool { return v == float64(tc.want) }))
			// The pool's GPUs free on every node of its kind (the sandbox's other nodes carry
			// nvidia.com/gpu too): present, and none of this pool's, which is full.
			testutil.Eventually(t, 10*time.Second, "the pool's free GPUs", metricIs(in, "prescale_pool_free_gpus", map[string]string{"pool": string(tc.resource)},
				"present", func(float64) bool { return true }))
			st := in.status(t)
			if c := st["mistral"].Capacity; c == nil || c.Wanted != tc.want || c.Granted != tc.mistral || !strings.Contains(c.Message, "llama") {
				t.Errorf("prescale status for mistral: %+v", c)
			}
			if c := st["qwen"].Capacity; c == nil || c.Guaranteed != tc.guaranteed || c.Granted < tc.guaranteed {
				t.Errorf("prescale status for qwen: %+v, want its guarantee of %d granted", c, tc.guaranteed)
			}
			if ann := deployment(t, ws["mistral"]).Annotations["prescale.io/decision"]; !strings.Contains(ann, `"takers"`) || !strings.Contains(ann, `"policy":"llama"`) {
				t.Errorf("mistral's decision record names no taker llama: %s", ann)
			}

			// The surge of llama ends: its GPUs flow back to mistral and qwen, which share
			// them by their need: fit - 1 between them, neither more than one pod ahead.
			e.set(ws["llama"].Namespace, 10)
			eventually(t, 60*time.Second, "llama's GPUs to flow to mistral and qwen", func() bool {
				m, q := spec("mistral"), spec("qwen")
				return spec("llama") == 1 && m+q == tc.fit-1 && m-q <= 1 && q-m <= 1
			})
			eventually(t, 60*time.Second, "every pod placed", func() bool {
				for _, n := range names {
					if d := deployment(t, ws[n]); d.Status.ReadyReplicas != *d.Spec.Replicas {
						return false
					}
				}
				return true
			})
			t.Logf("after llama's surge: mistral %d, qwen %d", spec("mistral"), spec("qwen"))
		})
	}
}

// TestGPUPoolWakeFromZero: a target at zero has no pod to read what its pods request, so
// its wake-up is arbitrated from its Deployment's template. On one node of 8 GPUs (4 pods
// of 2), busy (priority 100) holds 3 pods when sleeper (priority 10), idled to zero, wakes
// wanting 4: it is granted the 1 that fits, never more (no pod unschedulable), and says who
// has the rest; when busy drops to 1, sleeper takes the 2 freed.
func TestGPUPoolWakeFromZero(t *testing.T) {
	_, kube := sharedSandbox(t)
	const pool, res = "pool-zero", corev1.ResourceName("nvidia.com/gpu")
	gpuPool(t, kube, pool, 1, res, 8)
	busy := poolWorkload(t, kube, "e2e-pool-zero-busy", pool, res, 2)
	sleeper := poolWorkload(t, kube, "e2e-pool-zero-sleeper", pool, res, 2)
	e := newLoadExporter(t)
	e.set(busy.Namespace, 10)
	e.set(sleeper.Namespace, 0)
	p := startPrometheusOn(t, e.addr)
	cfg := poolConfig(p.URL(), busy.Namespace)
	cfg += poolPolicy("busy", busy, 4, "{priority: 100}")
	cfg += strings.Replace(poolPolicy("sleeper", sleeper, 4, "{priority: 10}"), "minReplicas: 1", "minReplicas: 0", 1) +
		fmt.Sprintf(`    scaleToZero:
      activation: {query: 'sum(inference_load_rps{namespace=%q})', perReplica: 10}
      idleDelay: 2s
`, sleeper.Namespace)
	startPrescale(t, "pool-zero", cfg)
	eventually(t, 60*time.Second, "sleeper idle at zero with no pod", func() bool {
		pods, err := kube.CoreV1().Pods(sleeper.Namespace).List(context.Background(), metav1.ListOptions{})
		return err == nil && len(pods.Items) == 0 && specReplicas(t, sleeper) == 0
	})
	e.set(busy.Namespace, 30)
	eventually(t, 60*time.Second, "busy at 3 Ready pods", func() bool {
		d := deployment(t, busy)
		return *d.Spec.Replicas == 3 && d.Status.ReadyReplicas == 3
	})

	// From the wake-up on, checked every 100 ms: the pods asked for fit (4), none is
	// unschedulable.
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var violations []string
		for {
			select {
			case <-stop:
				done <- violations
				return
			case <-time.After(100 * time.Millisecond):
			}
			if sum := specReplicas(t, busy) + specReplicas(t, sleeper); sum > 4 {
				violations = append(violations, fmt.Sprintf("prescale asks for %d pods, 4 fit", sum))
			}
			if bad := unschedulable(kube, busy.Namespace, sleeper.Namespace); len(bad) > 0 {
				violations = append(violations, fmt.Sprintf("unschedulable pods: %v", bad))
			}
		}
	}()
	defer func() {
		close(stop)
		for i, v := range <-done {
			if i == 5 {
				t.Error("... and more")
				break
			}
			t.Error(v)
		}
	}()

	e.set(sleeper.Namespace, 40) // wants 4
	eventually(t, 30*time.Second, "sleeper woken", func() bool { return specReplicas(t, sleeper) > 0 })
	testutil.Eventually(t, 20*time.Second, "sleeper's CapacityLimited event naming busy", func() error {
		for _, m := range events(t, sleeper, "CapacityLimited") {
			if strings.Contains(m, "wanted 4, granted 1") && strings.Contains(m, "went to policy busy of higher priority (100 > 10)") {
				return nil
			}
		}
		return fmt.Errorf("CapacityLimited events: %q", events(t, sleeper, "CapacityLimited"))
	})
	eventually(t, 30*time.Second, "sleeper's pod Ready", func() bool { return deployment(t, sleeper).Status.ReadyReplicas == 1 })
	if got := specReplicas(t, sleeper); got != 1 {
		t.Errorf("sleeper at %d replicas, want the 1 that fits", got)
	}

	e.set(busy.Namespace, 10)
	eventually(t, 60*time.Second, "busy's GPUs to flow to sleeper: busy 1, sleeper 3", func() bool {
		return specReplicas(t, busy) == 1 && specReplicas(t, sleeper) == 3
	})
	eventually(t, 60*time.Second, "every pod placed", func() bool {
		for _, w := range []sandbox.Workload{busy, sleeper} {
			if d := deployment(t, w); d.Status.ReadyReplicas != *d.Spec.Replicas {
				return false
			}
		}
		return true
	})
}
