//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/sandbox"
)

var capacityBuffers = schema.GroupVersionResource{Group: "autoscaling.x-k8s.io", Version: "v1beta1", Resource: "capacitybuffers"}

// The buffer test's load: 10 requests/s (1 replica at 10 a replica), and a surge to 60
// (6 replicas) in the last surgeLength of every surgePeriod. The surge outlasts the
// forecast's horizon (the pods' start-up, about 80 s for the first pod, which waits for
// its node), so that the forecast holds the replicas up until the load arrives; between
// surges the buffer is 0 (the previous surge's pods hold the nodes) before it rises for the
// next, a horizon and a node lead ahead of it; and the HPA beside it has scaled down and
// its nodes are gone (consolidated after 30 s) before the next surge.
const (
	surgePeriod = 300 * time.Second
	surgeLength = 120 * time.Second
)

func surgeLoad(at time.Time) float64 {
	if surgeIn(at) {
		return 60
	}
	return 10
}

// surgeIn reports whether at is within a surge.
func surgeIn(at time.Time) bool {
	return at.Unix()%int64(surgePeriod/time.Second) >= int64((surgePeriod-surgeLength)/time.Second)
}

// surgeStart returns the start of the first surge at or after at.
func surgeStart(at time.Time) time.Time {
	period := int64(surgePeriod / time.Second)
	base := at.Unix() - at.Unix()%period
	s := time.Unix(base+period-int64(surgeLength/time.Second), 0)
	if s.Before(at.Truncate(time.Second)) {
		s = s.Add(surgePeriod)
	}
	return s
}

// bufferConfig is the buffer test's configuration: a tick a second, capacity.mode cap with no
// Pending allowance, a node lead of a minute until one is measured, extra (the external
// metrics API), and one policy on the load (AverageValue 10: ceil(load / 10) replicas, up
// and down at once) whose forecast, if asked for, is the seasonal-naive one, season
// surgePeriod, over 12 minutes of history; then, if hw is named, hpa, a dry-run policy on the
// HPA's workload hw whose load metric the real HPA reads (hpa-load).
func bufferConfig(promURL, extra string, w, hw sandbox.Workload, forecast bool) string {
	c := strings.Replace(poolConfig(promURL, w.Namespace), "capacity: {mode: cap, pendingAllowance: 0}",
		"capacity: {mode: cap, pendingAllowance: 0, nodeLead: 60s}\n"+extra, 1) + poolPolicy(w.Name, w, 8, "{}")
	if forecast {
		c += fmt.Sprintf(`    forecast:
      load: {query: 'sum(inference_load_rps{namespace=%q})', perReplica: 10}
      method: seasonal-naive
      season: %s
      history: 12m
      gate: {maxError: 1, window: 1m}
`, w.Namespace, surgePeriod)
	}
	if hw.Name != "" {
		c += fmt.Sprintf(`  - name: hpa
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    dryRun: true
    maxReplicas: 8
    metrics:
      - {name: load, query: 'sum(inference_load_rps{namespace=%q})', target: {type: AverageValue, averageValue: 10}}
`, hw.Namespace, hw.Name, w.Namespace)
	}
	return c
}

// applyOn applies a workload whose pods go on nodes of one Karpenter instance type only.
func applyOn(ctx context.Context, t *testing.T, kube kubernetes.Interface, w sandbox.Workload, instanceType string) {
	t.Helper()
	w.NodeSelector = map[string]string{"node.kubernetes.io/instance-type": instanceType}
	if err := w.Apply(ctx, kube); err != nil {
		t.Fatal(err)
	}
}

// readyOf returns a workload's Ready replicas, -1 when it cannot be read.
func readyOf(ctx context.Context, kube kubernetes.Interface, w sandbox.Workload) int32 {
	d, err := kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
	if err != nil {
		return -1
	}
	return d.Status.ReadyReplicas
}

// startPrometheusWithLoad starts a Prometheus scraping the load exporter (job load) every
// second, backfilled with load's values every second over the span before now.
func startPrometheusWithLoad(t *testing.T, e *loadExporter, ns string, span time.Duration, load func(time.Time) float64) *promtest.Server {
	t.Helper()
	var b strings.Builder
	b.WriteString("# HELP inference_load_rps Load.\n# TYPE inference_load_rps gauge\n")
	now := time.Now()
	for at := now.Add(-span).Truncate(time.Second); at.Before(now.Add(-2 * time.Second)); at = at.Add(time.Second) {
		fmt.Fprintf(&b, "inference_load_rps{instance=%q,job=\"load\",namespace=%q} %g %d\n", e.addr, ns, load(at), at.Unix())
	}
	b.WriteString("# EOF\n")
	return startPrometheusWith(t, promtest.Options{Config: promtest.ScrapeConfig("load", time.Second, e.addr), Backfill: b.String()})
}

// bufferWatch samples, every second, the policy's CapacityBuffer, the pool's Ready GPUs and
// the workload's Ready replicas.
type bufferSample struct {
	at       time.Time
	buffer   int64 // -1: none
	gpus     int64 // allocatable GPUs of Ready nodes
	ready    int32
	nodes    int
	bufferOK bool
	// desired and gated are prescale's prescale_desired_replicas and
	// prescale_forecast_gated (-1: not exported).
	desired, gated float64
}

func (s bufferSample) String() string {
	return fmt.Sprintf("%s buffer %d, nodes %d (%d GPUs Ready), desired %v, gated %v, Ready %d",
		s.at.Format(time.TimeOnly), s.buffer, s.nodes, s.gpus, s.desired, s.gated, s.ready)
}

// sampleBuffer samples w's CapacityBuffer (dyn nil: the API is not served), its NodePool and
// its Ready replicas, and, from in (nil: none), the policy's desired replicas and gate.
func sampleBuffer(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, in *instance, w sandbox.Workload) bufferSample {
	s := bufferSample{at: time.Now(), buffer: -1, desired: -1, gated: -1}
	if in != nil {
		sc, pl := scrape(in.families()), map[string]string{"policy": w.Name}
		if v, ok := sc.value("prescale_desired_replicas", pl); ok {
			s.desired = v
		}
		if v, ok := sc.value("prescale_forecast_gated", pl); ok {
			s.gated = v
		}
	}
	if dyn != nil {
		if b, err := dyn.Resource(capacityBuffers).Namespace(w.Namespace).Get(ctx, "prescale-"+w.Name, metav1.GetOptions{}); err == nil {
			s.buffer, _, _ = unstructured.NestedInt64(b.Object, "spec", "replicas")
			s.bufferOK = true
		}
	}
	if nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=" + sandbox.KarpenterNodePool}); err == nil {
		for _, n := range nodes.Items {
			s.nodes++
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					q := n.Status.Allocatable[sandbox.GPUResource]
					s.gpus += q.Value()
				}
			}
		}
	}
	if d, err := kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{}); err == nil {
		s.ready = d.Status.ReadyReplicas
	}
	return s
}

// Beside Karpenter with its CapacityBuffer feature gate on (a NodePool starting with no
// node, nodes Ready 60 s after their creation), a policy whose seasonal forecast has seen
// the surges in its backfilled history (6 replicas for 2 minutes every 5) sizes a
// CapacityBuffer for the surge at the node lead (measured: the first pod's node) beyond its
// horizon: the buffer rises more than a node delay before the surge, Karpenter launches
// its nodes, the surge's pods are Ready when it arrives and none of them waits for a node;
// the buffer is released once the real pods hold the nodes, and deleted when the policy
// loses its forecast. A real HPA beside it, on the same load and the same NodePool (nodes of
// another instance type), reaches the surge's 6 replicas only a node delay and a start-up
// after it arrives. It reports both workloads' GPU-node-seconds.
func TestCapacityBufferBesideKarpenter(t *testing.T) {
	const nodeDelay, startup = 60 * time.Second, 20 * time.Second
	ctx, st, kube := karpenterSandbox(t, sandbox.KarpenterOptions{NodeDelay: nodeDelay, FeatureGates: "CapacityBuffer=true", GPULimit: 32,
		ConsolidateAfter: 30 * time.Second})
	rc, err := st.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	// prescale's workload on nodes of 4 GPUs, the HPA's on nodes of 1: neither takes the
	// other's nodes, so each waits only for the nodes its own autoscaling asks for.
	w := sandbox.Workload{Namespace: "e2e-buffer", Name: "llm", Replicas: 1, GPUs: 1, StartupDelay: startup}
	hw := sandbox.Workload{Namespace: "e2e-buffer-hpa", Name: "llm", Replicas: 1, GPUs: 1, StartupDelay: startup}
	applyOn(ctx, t, kube, w, "sandbox-gpu-4")
	applyOn(ctx, t, kube, hw, "sandbox-gpu-1")
	e := newLoadExporter(t)
	p := startPrometheusWithLoad(t, e, w.Namespace, 12*time.Minute, surgeLoad)
	lctx, stopLoad := context.WithCancel(context.Background())
	t.Cleanup(stopLoad)
	driveLoad(lctx, func() { e.set(w.Namespace, surgeLoad(time.Now())) })

	// The external metrics API of prescale, through the sandbox's aggregator, for the HPA.
	ip, port := freeHostPort(t)
	const svc = "prescale-external-metrics"
	cert, key, err := st.IssueServingCert(t.TempDir(), svc, ip.String(), svc+"."+hw.Namespace+".svc")
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("externalMetrics: {enabled: true, listenAddress: %q, tls: {certFile: %q, keyFile: %q}}",
		net.JoinHostPort(ip.String(), strconv.Itoa(port)), cert, key)
	in := startPrescale(t, "buffer", bufferConfig(p.URL(), extra, w, hw, true), "--kubeconfig", st.Kubeconfig)
	testutil.Eventually(t, 30*time.Second, "prescale sizing CapacityBuffers", logHas(in, "Sizing a CapacityBuffer for each policy with a forecast"))
	ca, err := st.CACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterAPIService(ctx, sandbox.APIService{Group: "external.metrics.k8s.io", Version: "v1beta1",
		Namespace: hw.Namespace, Service: svc, Host: ip, Port: port, CABundle: ca}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, time.Minute, "hpa-load through the aggregator", func() error {
		_, err := externalValue(kube, hw.Namespace, "hpa-load")
		return err
	})
	// A real HPA beside it on the same load: AverageValue 10 of hpa-load, ceil(load / 10)
	// replicas, its nodes launched by Karpenter only for its Pending pods.
	hpa := externalHPA(hw, 8)
	hpa.Spec.Metrics[0].External.Metric.Name = "hpa-load"
	hpa.Spec.Metrics[0].External.Target.AverageValue = resource.NewQuantity(10, resource.DecimalSI)
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(hw.Namespace).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	lead, horizon := leadAndHorizon(t, in, w, nodeDelay)
	// The first surge that starts late enough for the buffer to rise a node delay before
	// it, and after the last surge's buffer is gone.
	ahead := time.Duration(horizon+lead)*time.Second + 20*time.Second
	surge := surgeStart(time.Now().Add(ahead))
	t.Logf("node lead %.0f s, horizon %.0f s: watching the surge at %s (in %s)", lead, horizon, surge.Format(time.TimeOnly), time.Until(surge).Round(time.Second))

	// Pods created from here on are the autoscaling's, with the lead measured; the first
	// pods waited for the pool's first nodes, in whatever order the scheduler retried them.
	watchFrom := time.Now().Add(-time.Second) // creation times have a resolution of 1 s
	var samples []bufferSample
	var hpaReady time.Time // the HPA's workload at 6 Ready, in the surge
	hpaBefore := int32(-1) // its Ready replicas just before the surge
	for time.Now().Before(surge.Add(surgeLength - 5*time.Second)) {
		s := sampleBuffer(ctx, kube, dyn, in, w)
		if now := time.Now(); now.Before(surge) && now.After(surge.Add(-3*time.Second)) {
			hpaBefore = readyOf(ctx, kube, hw)
		}
		if now := time.Now(); hpaReady.IsZero() && !now.Before(surge) && readyOf(ctx, kube, hw) >= 6 {
			hpaReady = now
		}
		samples = append(samples, s)
		time.Sleep(time.Second)
	}
	logOnFailure(t, samples)
	// rose: in this surge's cycle (from the last surge's end), the first sample of a buffer
	// above 0 after one at 0 (or none). Not the last such sample: once the policy asks for
	// the surge's replicas a horizon ahead, the buffer may drop to 0 and come back as the
	// forecast moves, which says nothing of when the nodes were asked for.
	var rose time.Time
	var most int64
	cycle := surge.Add(-(surgePeriod - surgeLength))
	for i, s := range samples {
		if rose.IsZero() && i > 0 && s.buffer > 0 && samples[i-1].buffer <= 0 && !samples[i-1].at.Before(cycle) && s.at.Before(surge) {
			rose = s.at
		}
		most = max(most, s.buffer)
	}
	switch {
	case rose.IsZero():
		t.Errorf("the CapacityBuffer did not rise from 0 before the surge at %s (its sizes: %v)", surge.Format(time.TimeOnly), bufferSizes(samples))
	case surge.Sub(rose) < nodeDelay:
		t.Errorf("the CapacityBuffer rose %s before the surge, want at least the node delay %s", surge.Sub(rose).Round(time.Second), nodeDelay)
	default:
		t.Logf("the CapacityBuffer rose %s before the surge, to %d replicas at most (sizes by the second: %s)",
			surge.Sub(rose).Round(time.Second), most, bufferSizes(samples))
	}
	// The surge's 6 pods Ready as it arrives (within a few ticks and the scrape).
	for _, s := range samples {
		if s.at.After(surge.Add(5*time.Second)) && s.ready < 6 {
			t.Errorf("%s into the surge: %d replicas Ready, want 6", s.at.Sub(surge).Round(time.Second), s.ready)
			break
		}
	}
	// Released as the real pods hold the nodes: 0 by the surge's end.
	if last := samples[len(samples)-1]; last.buffer > 0 {
		t.Errorf("the CapacityBuffer is %d at the surge's end, want 0 (released)", last.buffer)
	}
	testutil.Eventually(t, 10*time.Second, "prescale_capacity_buffer_replicas at 0", metricIs(in, "prescale_capacity_buffer_replicas",
		map[string]string{"policy": w.Name}, "0", func(v float64) bool { return v == 0 }))
	// Karpenter, its CapacityBuffer gate on, resolved the buffer (ReadyForProvisioning), and
	// prescale read that back; no CapacityBufferNotReady was said.
	testutil.Eventually(t, 10*time.Second, "prescale_capacity_buffer_ready at 1", metricIs(in, "prescale_capacity_buffer_ready",
		map[string]string{"policy": w.Name}, "1", func(v float64) bool { return v == 1 }))
	if in.logContains("CapacityBuffer not resolved by the node autoscaler") {
		t.Errorf("prescale's log says the buffer was not resolved, beside Karpenter with its CapacityBuffer gate on")
	}
	// The HPA beside it waited for its nodes, then for its pods' start-up (its scale-down
	// window, 5 minutes by default, holds its replicas after the surge).
	for hpaReady.IsZero() && time.Now().Before(surge.Add(nodeDelay+startup+2*time.Minute)) {
		if readyOf(ctx, kube, hw) >= 6 {
			hpaReady = time.Now()
		}
		time.Sleep(time.Second)
	}
	switch {
	case hpaBefore >= 6:
		t.Errorf("the HPA's workload had %d Ready just before the surge: it had not scaled down since the last one", hpaBefore)
	case hpaReady.IsZero():
		t.Errorf("the HPA's workload: %d Ready %s after the surge began, want 6", readyOf(ctx, kube, hw), nodeDelay+startup+2*time.Minute)
	case hpaReady.Sub(surge) < nodeDelay:
		t.Errorf("the HPA's workload was at 6 Ready %s into the surge, want it to wait at least the node delay %s",
			hpaReady.Sub(surge).Round(time.Second), nodeDelay)
	default:
		t.Logf("the HPA's workload was at 6 Ready %s into the surge (node delay %s, start-up %s); prescale's as it arrived",
			hpaReady.Sub(surge).Round(time.Second), nodeDelay, startup)
	}
	// No pod the workload gained while watched waited for a node longer than the node delay.
	pods, err := kube.CoreV1().Pods(w.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var waits []string
	watched := 0
	for _, pod := range pods.Items {
		if pod.CreationTimestamp.Time.Before(watchFrom) {
			continue
		}
		watched++
		readyAt := "not Ready"
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				readyAt = "Ready at " + c.LastTransitionTime.Format(time.TimeOnly)
			}
		}
		scheduled := false
		for _, c := range pod.Status.Conditions {
			if c.Type != corev1.PodScheduled || c.Status != corev1.ConditionTrue {
				continue
			}
			scheduled = true
			wait := c.LastTransitionTime.Sub(pod.CreationTimestamp.Time)
			waits = append(waits, fmt.Sprintf("%s created %s, waited %s, on %s, %s", pod.Name,
				pod.CreationTimestamp.Format(time.TimeOnly), wait, pod.Spec.NodeName, readyAt))
			if wait > nodeDelay+5*time.Second {
				t.Errorf("pod %s waited %s for a node, more than the node delay %s", pod.Name, wait, nodeDelay)
			}
		}
		if wait := time.Since(pod.CreationTimestamp.Time); !scheduled && pod.DeletionTimestamp == nil && wait > nodeDelay+5*time.Second {
			t.Errorf("pod %s has waited %s for a node and still has none, more than the node delay %s", pod.Name, wait.Round(time.Second), nodeDelay)
		}
	}
	sort.Strings(waits)
	if watched == 0 {
		t.Errorf("no pod of the workload was created from %s on, want the surge's", watchFrom.Format(time.TimeOnly))
	}
	t.Logf("waits for a node of the %d pods created from %s on: %s", watched, watchFrom.Format(time.TimeOnly), strings.Join(waits, ", "))
	reportNodeSeconds(t, ctx, kube)

	// The forecast removed: the buffer is deleted.
	in.write(bufferConfig(p.URL(), extra, w, hw, false))
	testutil.Eventually(t, 30*time.Second, "the CapacityBuffer deleted with the policy's forecast", func() error {
		if s := sampleBuffer(ctx, kube, dyn, nil, w); s.bufferOK {
			return fmt.Errorf("the CapacityBuffer is still there (%d replicas)", s.buffer)
		}
		return nil
	})
}

// bufferSizes lists the buffer's sizes as sampled, each with how many samples in a row had
// it: "0x12 3x40 ...".
func bufferSizes(samples []bufferSample) string {
	var b strings.Builder
	for i := 0; i < len(samples); {
		j := i
		for j < len(samples) && samples[j].buffer == samples[i].buffer {
			j++
		}
		fmt.Fprintf(&b, "%dx%d ", samples[i].buffer, j-i)
		i = j
	}
	return strings.TrimSpace(b.String())
}

// reportNodeSeconds logs the GPU-node-seconds of the pool's nodes so far (each node's GPUs
// times its time since creation), by instance type: the 4-GPU nodes are prescale's
// workload's, the 1-GPU ones the HPA's.
func reportNodeSeconds(t *testing.T, ctx context.Context, kube kubernetes.Interface) {
	t.Helper()
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "karpenter.sh/nodepool=" + sandbox.KarpenterNodePool})
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string]float64{}
	var list []string
	for _, n := range nodes.Items {
		q := n.Status.Capacity[sandbox.GPUResource]
		typ := n.Labels["node.kubernetes.io/instance-type"]
		byType[typ] += float64(q.Value()) * time.Since(n.CreationTimestamp.Time).Seconds()
		list = append(list, fmt.Sprintf("%s (%s) launched %s", n.Name, typ, n.CreationTimestamp.Format(time.TimeOnly)))
	}
	t.Logf("the pool: %d nodes, GPU-node-seconds so far: prescale's (sandbox-gpu-4) %.0f, the HPA's (sandbox-gpu-1) %.0f; %s",
		len(nodes.Items), byType["sandbox-gpu-4"], byType["sandbox-gpu-1"], strings.Join(list, ", "))
}

// leadAndHorizon waits for prescale to measure the NodePool's node lead (the pool's first
// node, launched by Karpenter for the first pod) and for w's policy's horizon, which follows
// the pods' measured start-up (the first pod's: its node's lead and its own start-up), and
// returns both in seconds.
func leadAndHorizon(t *testing.T, in *instance, w sandbox.Workload, nodeDelay time.Duration) (lead, horizon float64) {
	t.Helper()
	labels := map[string]string{"nodepool": sandbox.KarpenterNodePool}
	testutil.Eventually(t, nodeDelay+2*time.Minute, "the node lead time measured", func() error {
		if _, ok := in.metric("prescale_node_lead_time_seconds", labels); !ok {
			return fmt.Errorf("no prescale_node_lead_time_seconds yet")
		}
		return nil
	})
	lead, _ = in.metric("prescale_node_lead_time_seconds", labels)
	testutil.Eventually(t, time.Minute, "the forecast's horizon at the pods' measured start-up", func() error {
		if _, ok := in.metric("prescale_pod_startup_seconds", map[string]string{"policy": w.Name}); !ok {
			return fmt.Errorf("no start-up measured yet")
		}
		h, ok := in.metric("prescale_forecast_horizon_seconds", map[string]string{"policy": w.Name})
		if !ok {
			return fmt.Errorf("no horizon yet")
		}
		horizon = h
		return nil
	})
	return lead, horizon
}

// Where the CapacityBuffer API is not served (Karpenter without the CapacityBuffer CRD), the
// buffer test's policy on the same surges falls back to what the nodes' Pending pods ask
// for: prescale says so once in its log and writes no buffer, and its forecast still scales
// the workload a horizon ahead of each surge, granting the pods that do not fit on the
// nodes the NodePool can add, whose lead the record gives. Karpenter launches those nodes
// only for the Pending pods, so the surge's replicas are Ready about a node delay and a
// start-up after prescale scaled: later than with a buffer, and reported.
func TestCapacityBufferFallbackBesideKarpenter(t *testing.T) {
	const nodeDelay, startup = 60 * time.Second, 20 * time.Second
	ctx, st, kube := karpenterSandbox(t, sandbox.KarpenterOptions{NodeDelay: nodeDelay, GPULimit: 32,
		ConsolidateAfter: 30 * time.Second, WithoutCapacityBuffers: true})
	w := sandbox.Workload{Namespace: "e2e-buffer-fallback", Name: "llm", Replicas: 1, GPUs: 1, StartupDelay: startup}
	applyOn(ctx, t, kube, w, "sandbox-gpu-4")
	e := newLoadExporter(t)
	p := startPrometheusWithLoad(t, e, w.Namespace, 12*time.Minute, surgeLoad)
	lctx, stopLoad := context.WithCancel(context.Background())
	t.Cleanup(stopLoad)
	driveLoad(lctx, func() { e.set(w.Namespace, surgeLoad(time.Now())) })
	in := startPrescale(t, "buffer-fallback", bufferConfig(p.URL(), "", w, sandbox.Workload{}, true), "--kubeconfig", st.Kubeconfig)
	const notServed = "The CapacityBuffer API is not served"
	testutil.Eventually(t, 30*time.Second, "the log to say the CapacityBuffer API is not served", logHas(in, notServed))
	// The first grant that puts pods on nodes the NodePool can add: the pool starts empty,
	// so the first surge's pods need new nodes (later ones may find the last surge's nodes
	// still there, not consolidated yet).
	firstGrant := watchGrants(t, in, w.Name)
	_, horizon := leadAndHorizon(t, in, w, nodeDelay)

	// The first surge far enough ahead for the forecast to scale a horizon before it. The
	// watch may begin in the previous surge: the rise is the last time prescale's replicas
	// went from below the surge's 6 to 6.
	surge := surgeStart(time.Now().Add(time.Duration(horizon)*time.Second + 10*time.Second))
	t.Logf("horizon %.0f s: watching the surge at %s (in %s)", horizon, surge.Format(time.TimeOnly), time.Until(surge).Round(time.Second))
	pl := map[string]string{"policy": w.Name}
	var rise, ready time.Time // desired up to 6, and 6 Ready in the surge
	var samples []bufferSample
	deadline := surge.Add(nodeDelay + startup + time.Minute)
	for ready.IsZero() && time.Now().Before(deadline) {
		s := sampleBuffer(ctx, kube, nil, in, w)
		if i := len(samples); s.desired >= 6 && i > 0 && samples[i-1].desired < 6 && s.at.Before(surge) {
			rise = s.at
		}
		if !surge.After(s.at) && s.ready >= 6 {
			ready = s.at
		}
		samples = append(samples, s)
		time.Sleep(time.Second)
	}
	logOnFailure(t, samples)
	if rise.IsZero() {
		t.Errorf("prescale did not scale from below 6 replicas to the surge's 6 before it")
	}
	switch grant, at := firstGrant(); {
	case grant == "":
		t.Errorf("no grant put pods on nodes the NodePool can add")
	case !strings.Contains(grant, "on nodes NodePool "+sandbox.KarpenterNodePool+" can add"):
		t.Errorf("the grant %q does not name the NodePool", grant)
	default:
		t.Logf("at %s, the grant: %s", at.Format(time.TimeOnly), grant)
	}
	if ready.IsZero() {
		t.Fatalf("%d replicas Ready %s after the surge began, want 6", readyOf(ctx, kube, w), deadline.Sub(surge))
	}
	t.Logf("prescale asked for 6 replicas %s before the surge at %s; they were Ready %s into it (NodePool: %d nodes; node delay %s, start-up %s)",
		surge.Sub(rise).Round(time.Second), surge.Format(time.TimeOnly), ready.Sub(surge).Round(time.Second), samples[len(samples)-1].nodes, nodeDelay, startup)
	if n := in.logCount(notServed); n != 1 {
		t.Errorf("the log says %d times that the CapacityBuffer API is not served, want once", n)
	}
	if in.logContains("Sized the CapacityBuffer") {
		t.Errorf("prescale wrote a CapacityBuffer where the API is not served")
	}
	if v, ok := in.metric("prescale_capacity_buffer_replicas", pl); ok {
		t.Errorf("prescale_capacity_buffer_replicas{policy=%q} = %v where the API is not served, want no series", w.Name, v)
	}
}

// watchGrants polls the instance's /status every second until the test ends, and
// returns what it saw: the first capacity grant of policy that put pods on nodes being
// provisioned, and when ("" until one).
func watchGrants(t *testing.T, in *instance, policy string) func() (string, time.Time) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	var mu sync.Mutex
	var grant string
	var at time.Time
	poll := func() {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		st, err := in.fetchStatus(rctx)
		if err != nil {
			return
		}
		if c := st[policy].Capacity; c != nil && c.Provisioning > 0 {
			mu.Lock()
			if grant == "" {
				grant, at = c.Message, time.Now()
			}
			mu.Unlock()
		}
	}
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			poll()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return func() (string, time.Time) {
		mu.Lock()
		defer mu.Unlock()
		return grant, at
	}
}

// logOnFailure logs every sample when the test has failed by its end.
func logOnFailure(t *testing.T, samples []bufferSample) {
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range samples {
				t.Log(s)
			}
		}
	})
}
