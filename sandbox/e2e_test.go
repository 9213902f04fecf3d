//go:build e2e

package sandbox_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2/ktesting"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/sim"
)

// binDir returns the tools folder from PRESCALE_SANDBOX_BIN; the e2e tests fail,
// never skip, without it.
func binDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PRESCALE_SANDBOX_BIN")
	if dir == "" {
		t.Fatal("PRESCALE_SANDBOX_BIN is not set: run the e2e tests with make test-e2e (it builds the tools)")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "prometheus", "kwok-stages"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			t.Fatalf("tool %s missing in %s (run make tools): %v", b, dir, err)
		}
	}
	return dir
}

// up starts a small sandbox (2 nodes x 4 GPUs) and stops it when the test ends,
// checking that no process and no port is left behind.
func up(t *testing.T) (*sandbox.State, kubernetes.Interface) {
	t.Helper()
	return upSandbox(t, sandbox.Options{BinDir: binDir(t), StateDir: t.TempDir(), Nodes: 2, GPUsPerNode: 4})
}

// upSandbox starts a sandbox with o and stops it when the test ends, checking that no
// process and no port is left behind; a sandbox that cannot start fails the test.
func upSandbox(t *testing.T, o sandbox.Options) (*sandbox.State, *kubernetes.Clientset) {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	start := time.Now()
	st, err := sandbox.Up(ctx, o)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("sandbox up in %s", time.Since(start).Round(time.Millisecond))
	client, err := st.Client()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			kwokTrail(t, st, client)
		}
		if err := sandbox.Down(context.Background(), st.Dir); err != nil {
			t.Errorf("Down: %v", err)
		}
		assertGone(t, st)
	})
	return st, client
}

// kwokTrail logs, for a failed test, each bound pod that is not Ready with its events
// and what kwok's log says about it, and kwok's warnings and errors.
func kwokTrail(t *testing.T, st *sandbox.State, c kubernetes.Interface) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(st.Dir, "logs", "kwok.log"))
	if err != nil {
		t.Logf("kwok's log: %v", err)
		return
	}
	pods, err := c.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	var stuck []string
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && cond(p, corev1.PodReady) != corev1.ConditionTrue && p.DeletionTimestamp == nil {
			stuck = append(stuck, p.Name)
			t.Logf("pod %s/%s on %s is not Ready: phase %s, conditions %+v, resourceVersion %s",
				p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions, p.ResourceVersion)
			// The node lifecycle controller's NodeNotReady says who took Ready away.
			events, err := c.CoreV1().Events(p.Namespace).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name})
			if err != nil {
				t.Logf("list pod %s's events: %v", p.Name, err)
				continue
			}
			for _, e := range events.Items {
				t.Logf("pod %s event: %s %s %s (from %s, x%d, last %s)", p.Name, e.Type, e.Reason, e.Message, e.Source.Component, e.Count, e.LastTimestamp.Format(time.RFC3339))
			}
		}
	}
	for _, line := range strings.Split(string(data), "\n") {
		named := slices.ContainsFunc(stuck, func(name string) bool { return strings.Contains(line, name) })
		if named || strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) && !strings.Contains(line, "failed to delete pod") {
			t.Logf("kwok: %s", line)
		}
	}
}

func assertGone(t *testing.T, st *sandbox.State) {
	t.Helper()
	for _, p := range st.Processes {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", p.PID)); err == nil {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
			if !strings.Contains(string(stat), ") Z ") {
				t.Errorf("%s (pid %d) still runs after Down", p.Name, p.PID)
			}
		}
	}
	for _, u := range []string{st.APIServer, st.Etcd, st.PrometheusURL} {
		host := u[strings.Index(u, "//")+2:]
		if c, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listens after Down", host)
		}
	}
}

type podCounts struct{ ready, starting, unschedulable, total int }

func countPods(ctx context.Context, c kubernetes.Interface, ns string) (podCounts, []corev1.Pod, error) {
	pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return podCounts{}, nil, err
	}
	var n podCounts
	for _, p := range pods.Items {
		n.total++
		switch {
		case cond(p, corev1.PodReady) == corev1.ConditionTrue:
			n.ready++
		case p.Spec.NodeName != "":
			n.starting++
		case cond(p, corev1.PodScheduled) == corev1.ConditionFalse:
			n.unschedulable++
		}
	}
	return n, pods.Items, nil
}

func cond(p corev1.Pod, typ corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

func condTime(p corev1.Pod, typ corev1.PodConditionType) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == typ {
			return c.LastTransitionTime.Time
		}
	}
	return time.Time{}
}

// remove deletes a workload's namespace and waits until its pods are gone, so that
// the next test has every GPU.
func remove(t *testing.T, ctx context.Context, c kubernetes.Interface, ns string) {
	t.Helper()
	if err := c.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatalf("delete namespace %s: %v", ns, err)
	}
	testutil.Eventually(t, 60*time.Second, "namespace "+ns+" gone", func() error {
		_, err := c.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("namespace %s still there (err %v)", ns, err)
	})
}

func TestSandbox(t *testing.T) {
	st, client := up(t)
	ctx := context.Background()

	t.Run("up twice returns the running sandbox", func(t *testing.T) {
		_, ctx := ktesting.NewTestContext(t)
		again, err := sandbox.Up(ctx, sandbox.Options{BinDir: binDir(t), StateDir: st.Dir})
		if err != nil {
			t.Fatalf("second Up: %v", err)
		}
		if again.APIServer != st.APIServer || len(again.Processes) != len(st.Processes) || again.Processes[0].PID != st.Processes[0].PID {
			t.Errorf("second Up started a new sandbox: %+v, want the running %+v", again, st)
		}
	})

	t.Run("nodes carry GPUs and GPU labels", func(t *testing.T) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 2 {
			t.Fatalf("got %d nodes, want 2", len(nodes.Items))
		}
		for _, n := range nodes.Items {
			gpus := n.Status.Allocatable[sandbox.GPUResource]
			if gpus.Value() != 4 || n.Labels["nvidia.com/gpu.product"] == "" {
				t.Errorf("node %s: allocatable %s GPUs, product %q; want 4 and a product", n.Name, gpus.String(), n.Labels["nvidia.com/gpu.product"])
			}
		}
	})

	t.Run("a deployment asking for more GPUs than exist gets as many Ready pods as fit", func(t *testing.T) {
		// 2 nodes x 4 GPUs = 8 GPUs; 5 pods x 2 GPUs: 4 fit, 1 stays Pending.
		w := sandbox.Workload{Namespace: "e2e-fit", Name: "llm", Replicas: 5, GPUs: 2}
		if err := w.Apply(ctx, client); err != nil {
			t.Fatal(err)
		}
		defer remove(t, ctx, client, w.Namespace)
		testutil.Eventually(t, 60*time.Second, "4 Ready and 1 unschedulable pod", func() error {
			n, _, err := countPods(ctx, client, w.Namespace)
			if err != nil || n != (podCounts{ready: 4, unschedulable: 1, total: 5}) {
				return fmt.Errorf("pods %+v (err %v)", n, err)
			}
			return nil
		})
		time.Sleep(3 * time.Second) // the scheduler retries; nothing may change
		n, _, err := countPods(ctx, client, w.Namespace)
		if err != nil || n != (podCounts{ready: 4, unschedulable: 1, total: 5}) {
			t.Errorf("after 3s: pods %+v (err %v), want 4 Ready and 1 unschedulable", n, err)
		}
	})

	t.Run("pods become Ready after the workload's start-up delay", func(t *testing.T) {
		const delay = 4 * time.Second
		w := sandbox.Workload{Namespace: "e2e-delay", Name: "llm", Replicas: 2, GPUs: 1, StartupDelay: delay}
		if err := w.Apply(ctx, client); err != nil {
			t.Fatal(err)
		}
		defer remove(t, ctx, client, w.Namespace)
		var sawStarting bool
		var pods []corev1.Pod
		testutil.Eventually(t, 60*time.Second, "2 Ready pods", func() error {
			n, p, err := countPods(ctx, client, w.Namespace)
			sawStarting = sawStarting || n.starting > 0
			pods = p
			if err != nil || n.ready != 2 {
				return fmt.Errorf("pods %+v (err %v)", n, err)
			}
			return nil
		})
		if !sawStarting {
			t.Errorf("never saw a scheduled pod that was not Ready yet")
		}
		for _, p := range pods {
			// Condition times have a resolution of one second.
			took := condTime(p, corev1.PodReady).Sub(condTime(p, corev1.PodScheduled))
			if took < delay-time.Second || took > delay+3*time.Second {
				t.Errorf("pod %s was Ready %s after it was scheduled, want %s (+-1s)", p.Name, took, delay)
			}
		}
	})

	t.Run("a running pod marked NotReady is Ready again, as a kubelet's status sync makes it", func(t *testing.T) {
		w := sandbox.Workload{Namespace: "e2e-ready-again", Name: "llm", Replicas: 1, GPUs: 1}
		if err := w.Apply(ctx, client); err != nil {
			t.Fatal(err)
		}
		defer remove(t, ctx, client, w.Namespace)
		var pod corev1.Pod
		testutil.Eventually(t, 60*time.Second, "1 Ready pod", func() error {
			n, pods, err := countPods(ctx, client, w.Namespace)
			if err != nil || n.ready != 1 || n.total != 1 {
				return fmt.Errorf("pods %+v (err %v)", n, err)
			}
			pod = pods[0]
			return nil
		})
		// What the node lifecycle controller's MarkPodsNotReady writes: Ready=False, the
		// containers still ready.
		marked := time.Now()
		patch := []byte(`{"status":{"conditions":[{"type":"Ready","status":"False","lastTransitionTime":"` + marked.UTC().Format(time.RFC3339) + `"}]}}`)
		if _, err := client.CoreV1().Pods(w.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
			t.Fatalf("mark pod %s NotReady: %v", pod.Name, err)
		}
		var again corev1.Pod
		testutil.Eventually(t, 60*time.Second, "the pod Ready again", func() error {
			p, err := client.CoreV1().Pods(w.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cond(*p, corev1.PodReady) != corev1.ConditionTrue {
				return fmt.Errorf("pod %s: Ready %q, ContainersReady %q, phase %s", p.Name, cond(*p, corev1.PodReady), cond(*p, corev1.ContainersReady), p.Status.Phase)
			}
			again = *p
			return nil
		})
		took := time.Since(marked)
		t.Logf("pod Ready again %s after it was marked NotReady", took.Round(100*time.Millisecond))
		// The stage waits 10 s, a kubelet's status sync period.
		if took < 9*time.Second {
			t.Errorf("pod Ready again %s after it was marked NotReady, want no sooner than the 10 s status sync", took)
		}
		if again.Status.Phase != corev1.PodRunning || cond(again, corev1.ContainersReady) != corev1.ConditionTrue || again.Status.PodIP != pod.Status.PodIP {
			t.Errorf("pod after Ready again: phase %s, ContainersReady %q, IP %s (was %s); want the running pod unchanged", again.Status.Phase, cond(again, corev1.ContainersReady), again.Status.PodIP, pod.Status.PodIP)
		}
	})

	t.Run("the deployment controller and the scheduler follow a scale change", func(t *testing.T) {
		w := sandbox.Workload{Namespace: "e2e-scale", Name: "llm", Replicas: 1, GPUs: 1}
		if err := w.Apply(ctx, client); err != nil {
			t.Fatal(err)
		}
		defer remove(t, ctx, client, w.Namespace)
		for _, want := range []int32{1, 6, 2} {
			// The deployment controller writes status too: retry on conflicts.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				scale, err := client.AppsV1().Deployments(w.Namespace).GetScale(ctx, w.Name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				scale.Spec.Replicas = want
				_, err = client.AppsV1().Deployments(w.Namespace).UpdateScale(ctx, w.Name, scale, metav1.UpdateOptions{})
				return err
			})
			if err != nil {
				t.Fatalf("scale to %d: %v", want, err)
			}
			testutil.Eventually(t, 60*time.Second, fmt.Sprintf("exactly %d Ready pods", want), func() error {
				n, _, err := countPods(ctx, client, w.Namespace)
				if err != nil || n.ready != int(want) || n.total != int(want) {
					return fmt.Errorf("pods %+v (err %v)", n, err)
				}
				return nil
			})
		}
	})

	t.Run("Prometheus returns the simulator's metrics with namespace and pod labels", func(t *testing.T) {
		w := sandbox.Workload{Namespace: "e2e-prom", Name: "llm", Replicas: 2, GPUs: 1}
		if err := w.Apply(ctx, client); err != nil {
			t.Fatal(err)
		}
		defer remove(t, ctx, client, w.Namespace)
		var ready []string
		testutil.Eventually(t, 60*time.Second, "2 Ready pods", func() error {
			n, pods, err := countPods(ctx, client, w.Namespace)
			if err != nil || n.ready != 2 {
				return fmt.Errorf("pods %+v (err %v)", n, err)
			}
			ready = nil
			for _, p := range pods {
				ready = append(ready, p.Name)
			}
			sort.Strings(ready)
			return nil
		})

		s, err := sim.New(client, sim.Options{
			Namespace: w.Namespace, Deployment: w.Name, Load: sim.Generator{Mean: 600},
			Mu: 10, Tick: 15 * time.Second, Compression: 15, BatchSize: 16,
		})
		if err != nil {
			t.Fatal(err)
		}
		lis, err := net.Listen("tcp", st.SimAddr)
		if err != nil {
			t.Fatalf("listen on the sandbox's sim address: %v", err)
		}
		srv := &http.Server{Handler: s.Handler()}
		go srv.Serve(lis)
		defer srv.Close()
		simCtx, stopSim := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := s.Run(simCtx); done <- err }()
		defer func() {
			stopSim()
			if err := <-done; err != nil {
				t.Errorf("sim Run: %v", err)
			}
		}()

		pc, err := promapi.NewClient(promapi.Config{Address: st.PrometheusURL})
		if err != nil {
			t.Fatal(err)
		}
		api := promv1.NewAPI(pc)
		query := func(q string) (model.Vector, error) {
			v, _, _, err := api.Query(ctx, q, time.Now())
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", q, err)
			}
			vec, ok := v.(model.Vector)
			if !ok {
				return nil, fmt.Errorf("query %s: got %s, want a vector", q, v.Type())
			}
			return vec, nil
		}
		for _, series := range []string{"vllm:num_requests_waiting", "vllm:num_requests_running", "DCGM_FI_DEV_GPU_UTIL", "vllm:e2e_request_latency_seconds_count"} {
			q := fmt.Sprintf(`{__name__=%q, namespace=%q}`, series, w.Namespace)
			testutil.Eventually(t, 60*time.Second, series+" per Ready pod in Prometheus", func() error {
				vec, err := query(q)
				if err != nil {
					return err
				}
				var got []string
				for _, s := range vec {
					got = append(got, string(s.Metric["pod"]))
				}
				sort.Strings(got)
				if strings.Join(got, ",") != strings.Join(ready, ",") {
					return fmt.Errorf("pods %v, want %v", got, ready)
				}
				return nil
			})
		}
		testutil.Eventually(t, 60*time.Second, "inference_requests_total rising", func() error {
			vec, err := query(fmt.Sprintf(`rate(inference_requests_total{namespace=%q, service=%q}[30s])`, w.Namespace, w.Name))
			if err != nil {
				return err
			}
			if len(vec) != 1 || !(vec[0].Value > 0) {
				return fmt.Errorf("got %v, want one positive rate", vec)
			}
			return nil
		})
		vec, err := query(fmt.Sprintf(`DCGM_FI_DEV_GPU_UTIL{namespace=%q}`, w.Namespace))
		if err != nil {
			t.Fatal(err)
		}
		// 600 req/min = 10 req/s over 2 pods of mu 10: 50% busy.
		for _, s := range vec {
			if s.Value < 49 || s.Value > 51 {
				t.Errorf("GPU utilization of %s = %v, want 50", s.Metric["pod"], s.Value)
			}
		}
	})

	t.Run("a backfilled history is in Prometheus after its restart, and scrapes go on", func(t *testing.T) {
		// Two hours of 600 req/min, then 1200 req/min, backfilled at 1x, ending now.
		load := sim.Trace(append(slices.Repeat([]float64{600}, 120), slices.Repeat([]float64{1200}, 60)...))
		end := time.Now().Truncate(time.Second)
		var om bytes.Buffer
		h := sim.History{Namespace: "e2e-backfill", Services: []string{"a", "b"}, Load: load, Tick: 15 * time.Second,
			Compression: 1, Minutes: len(load), End: end}
		if err := h.WriteOpenMetrics(&om); err != nil {
			t.Fatal(err)
		}
		if err := st.Backfill(ctx, binDir(t), om.Bytes()); err != nil {
			t.Fatalf("Backfill: %v", err)
		}
		pc, err := promapi.NewClient(promapi.Config{Address: st.PrometheusURL})
		if err != nil {
			t.Fatal(err)
		}
		api := promv1.NewAPI(pc)
		rate := func(at time.Time) (map[string]float64, error) {
			q := `rate(inference_requests_total{namespace="e2e-backfill"}[1m])`
			v, _, _, err := api.Query(ctx, q, at)
			if err != nil {
				return nil, fmt.Errorf("query %s: %w", q, err)
			}
			got := map[string]float64{}
			for _, s := range v.(model.Vector) {
				got[string(s.Metric["service"])] = float64(s.Value)
			}
			return got, nil
		}
		// 600 req/min is 10 req/s two hours ago; 1200 req/min is 20 req/s 30 minutes ago.
		for _, c := range []struct {
			at   time.Time
			want float64
		}{{end.Add(-150 * time.Minute), 10}, {end.Add(-30 * time.Minute), 20}} {
			got, err := rate(c.at)
			if err != nil {
				t.Fatal(err)
			}
			for _, svc := range []string{"a", "b"} {
				if math.Abs(got[svc]-c.want) > 0.01 {
					t.Errorf("rate of service %s at %s = %v, want %v (all: %v)", svc, c.at.Format(time.TimeOnly), got[svc], c.want, got)
				}
			}
		}
		if err := st.Healthy(ctx); err != nil {
			t.Errorf("sandbox after the backfill: %v", err)
		}
		// The restarted Prometheus scrapes again: its own up series for the sim's job moves on.
		testutil.Eventually(t, 60*time.Second, "a scrape after the restart", func() error {
			v, _, _, err := api.Query(ctx, `timestamp(up{job="prescale-sim"})`, time.Now())
			if err != nil {
				return err
			}
			vec, _ := v.(model.Vector)
			if len(vec) != 1 || float64(vec[0].Value) <= float64(end.Unix()) {
				return fmt.Errorf("got %v, want a scrape after %s", v, end.Format(time.TimeOnly))
			}
			return nil
		})
	})
}

func TestUpFailsWithTheLogOfADeadComponent(t *testing.T) {
	real := binDir(t)
	bin := t.TempDir()
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kwok", "prometheus", "kwok-stages"} {
		if err := os.Symlink(filepath.Join(real, b), filepath.Join(bin, b)); err != nil {
			t.Fatal(err)
		}
	}
	// A scheduler that cannot start: the real binary with a flag it does not know.
	script := "#!/bin/sh\nexec " + filepath.Join(real, "kube-scheduler") + " --no-such-flag \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "kube-scheduler"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	_, err := sandbox.Up(ctx, sandbox.Options{BinDir: bin, StateDir: dir, Nodes: 1, GPUsPerNode: 1})
	if err == nil {
		sandbox.Down(ctx, dir)
		t.Fatal("Up with a broken kube-scheduler succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "kube-scheduler exited") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("Up error = %v, want it to name kube-scheduler and show its log", err)
	}
	if _, lerr := sandbox.Load(dir); lerr == nil {
		t.Errorf("a failed Up left a state file behind")
	}
	// Every component started before the failure was stopped: none names the state folder.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(cmdline), dir) {
			t.Errorf("a failed Up left %s running: %q", p, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}
