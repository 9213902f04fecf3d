//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/utils/ptr"

	"github.com/prescale/prescale/sandbox"
)

// soakForecastEvery is how often a policy of the soak has a forecast (every 10th; 0: none);
// SOAK_FORECAST_EVERY overrides it.
func soakForecastEvery() int {
	n := 10
	if v := os.Getenv("SOAK_FORECAST_EVERY"); v != "" {
		fmt.Sscan(v, &n)
	}
	return n
}

// soakHistoryDelay is how long the soak's Prometheus proxy holds a range query (a forecast's
// history): 60 s; SOAK_HISTORY_DELAY overrides it.
func soakHistoryDelay() time.Duration {
	d := time.Minute
	if v := os.Getenv("SOAK_HISTORY_DELAY"); v != "" {
		if p, err := time.ParseDuration(v); err == nil {
			d = p
		}
	}
	return d
}

// soakPolicies is the number of policies (and Deployments) of the soak; SOAK_POLICIES
// overrides it.
func soakPolicies() int {
	n := 1000
	if v := os.Getenv("SOAK_POLICIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	return n
}

// BenchmarkSoak (make bench-soak, which gives the sandbox E2E_NODES=12 nodes of
// E2E_GPUS_PER_NODE=100 nvidia.com/gpu for the pods) runs one prescale process with N
// policies (one Deployment of one kwok pod of 1 GPU each, one per-pod query each) sharing one
// GPU pool, on the sandbox and a real Prometheus, ticking every 5 s. Every policy wants 4
// replicas (a queue of 10 a pod, target 5, maxReplicas 4): 4N pods, more than the pool
// holds, so that each tick's allocation arbitrates every policy (capacity.mode: cap) and, once
// the pool is full, explains every grant. It reports from prescale's own /metrics: wall time
// and CPU seconds per tick, resident memory, Prometheus queries per tick, and the policies
// granted less than they want; and from its log (the controller's "Tick done" lines) each
// tick's phases, the longest tick of the surge and of the steady window, and the decision
// records written after each tick. Every 10th policy (SOAK_FORECAST_EVERY) has a forecast
// whose history prescale loads at its first tick through a proxy that holds each range
// query 60 s (SOAK_HISTORY_DELAY), so that the loads are in flight through the surge.
// Targets for N = 1000: every tick under 2 s, RSS under 200 MiB, queries per tick equal to N
// plus one per forecast policy (its load).
func BenchmarkSoak(b *testing.B) {
	n := soakPolicies()
	st, kube := sharedSandbox(b)
	_ = st
	ctx := context.Background()
	ns := "soak"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	defer kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	start := time.Now()
	for i := range n {
		name := fmt.Sprintf("d%04d", i)
		labels := map[string]string{"app": name}
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{NodeSelector: map[string]string{"nvidia.com/gpu.present": "true"},
						Containers: []corev1.Container{{Name: "server", Image: "simulated", Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")},
							Limits:   corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}}}}}}}
		if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("created %d deployments in %s", n, time.Since(start).Round(time.Millisecond))

	var ln net.Listener
	// Every pod Ready before prescale starts, so that the ticks measure the steady state.
	// count lists the pods, from the API server's watch cache (resourceVersion 0) or from
	// etcd (""), and says how many are Ready: the message of a timed-out wait has both, to
	// tell a stale cache from pods that are not Ready.
	count := func(rv string) (bool, string) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: rv})
		if err != nil {
			return false, fmt.Sprintf("list: %v", err)
		}
		n := 0
		var waiting []string // the first three not Ready, as they stand
		for i := range pods.Items {
			p := &pods.Items[i]
			if ready(p) {
				n++
				continue
			}
			if len(waiting) < 3 {
				var conds []string
				for _, c := range p.Status.Conditions {
					conds = append(conds, fmt.Sprintf("%s=%s", c.Type, c.Status))
				}
				waiting = append(waiting, fmt.Sprintf("%s (phase %s, node %q, conditions %s, created %s, deleting %v, start-up annotation %q)",
					p.Name, p.Status.Phase, p.Spec.NodeName, strings.Join(conds, ","), p.CreationTimestamp.UTC().Format(time.TimeOnly),
					p.DeletionTimestamp != nil, p.Annotations[sandbox.StartupDelayAnnotation]))
			}
		}
		return n == len(pods.Items) && n >= soakPolicies(), fmt.Sprintf("%d of %d pods Ready at resourceVersion %s; not Ready: %s",
			n, len(pods.Items), pods.ResourceVersion, strings.Join(waiting, "; "))
	}
	var cached string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		var ok bool
		ok, cached = count("0")
		return ok, nil
	})
	if err != nil {
		_, quorum := count("")
		b.Fatalf("pods not Ready within 5 minutes: the watch cache's last list had %s; etcd has %s", cached, quorum)
	}
	b.Logf("every pod Ready %s after the first deployment", time.Since(start).Round(time.Millisecond))

	// One exporter with a queue series per Deployment's pod, from an informer's cache: a
	// value drawn from [8, 12) at each scrape, about twice the target, so that every policy
	// wants its maxReplicas, 4, and, as in production, every decision record changes every
	// tick (it carries the metric's value): 1000 records to write a tick.
	factory := informers.NewSharedInformerFactoryWithOptions(kube, 0, informers.WithNamespace(ns))
	lister := factory.Core().V1().Pods().Lister()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	factory.WaitForCacheSync(stop)
	desc := prometheus.NewDesc("vllm:num_requests_waiting", "Requests waiting.", []string{"namespace", "pod", "app"}, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectorFunc(func(ch chan<- prometheus.Metric) {
		pods, err := lister.List(labels.Everything())
		if err != nil {
			return
		}
		for _, p := range pods {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, 8+4*rand.Float64(), ns, p.Name, p.Labels["app"])
		}
	}))
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	p := startPrometheusEvery(b, ln.Addr().String(), 5*time.Second)
	// Every soakForecastEvery-th policy has a forecast, whose history prescale loads at its
	// first tick through a proxy that holds each range query soakHistoryDelay: the loads
	// are in flight through the surge, and no tick may wait for them.
	// Without forecast policies prescale queries Prometheus directly.
	every, delay := soakForecastEvery(), soakHistoryDelay()
	promURL, timeout := p.URL(), 5*time.Second
	var proxy *slowProxy
	if every > 0 {
		proxy = startSlowProxy(b, p.URL(), delay)
		promURL, timeout = "http://"+proxy.addr, delay+30*time.Second
	}

	var cfg strings.Builder
	fmt.Fprintf(&cfg, "prometheus: {url: %s, timeout: %s}\ninterval: 5s\nstaleness: 30s\nleaderElection: {enabled: false}\ncapacity: {mode: cap}\n",
		promURL, model.Duration(timeout))
	// SOAK_KUBERNETES, e.g. "{qps: 1000, burst: 2000}", sets the API clients' rate limits
	// (the settings' kubernetes block): a surge's writes share the scale client's budget with
	// the 1000 reads.
	if k := os.Getenv("SOAK_KUBERNETES"); k != "" {
		fmt.Fprintf(&cfg, "kubernetes: %s\n", k)
	}
	cfg.WriteString("policies:\n")
	for i := range n {
		name := fmt.Sprintf("d%04d", i)
		fmt.Fprintf(&cfg, `  - name: %s
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    maxReplicas: 4
    metrics: [{name: queue, query: 'sum by (pod) (vllm:num_requests_waiting{namespace="%s",app="%s"})', target: {type: AverageValue, averageValue: 5}}]
`, name, ns, name, ns, name)
		if every > 0 && i%every == 0 {
			fmt.Fprintf(&cfg, `    forecast: {load: {query: 'sum(vllm:num_requests_waiting{namespace="%s",app="%s"})', perReplica: 20}, history: 1h}
`, ns, name)
		}
	}
	// Logging at -v=0, as in production (-v=2 writes a line per decision), but for the
	// controller's "Tick done" line at -v=4: each tick's duration and phases.
	in := startPrescale(b, "soak", cfg.String(), "-v=0", "--vmodule=controller=4", "--profiling")
	// SOAK_CPU_PROFILE: prescale's CPU profile of its first 150 s, the first tick, the surge
	// and the steady minute (go tool pprof -top PATH).
	cpuProfile := make(chan error, 1)
	if path := os.Getenv("SOAK_CPU_PROFILE"); path != "" {
		go func() { cpuProfile <- in.saveProfile("profile?seconds=150", path) }()
	} else {
		cpuProfile <- nil
	}
	// The surge: from the end of the first tick (which writes every decision annotation)
	// until the pool is full (1-GPU pods fill it: no GPU free) and stays so (the pods' count
	// unchanged for three ticks).
	//
	// The harness reads prescale's /metrics seldom (every 2 s at most, once per
	// snapshot): each read gathers its 20,000 series, and the harness parses them on the
	// same two cores. Tick ends are counted from the log.
	eventually(b, 3*time.Minute, "a tick", func() bool { return len(in.ticks(b)) >= 1 })
	s0 := scrape(in.families())
	surgeTicks0, _ := s0.value("prescale_tick_duration_seconds_count", nil)
	surgeSum0, _ := s0.value("prescale_tick_duration_seconds_sum", nil)
	surgePhases0 := phaseSums(s0)
	surgeStart := time.Now()
	last, stableSince := -1, time.Now()
	err = wait.PollUntilContextTimeout(ctx, 2*time.Second, 10*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
		if err != nil {
			return false, nil
		}
		if len(pods.Items) != last {
			last, stableSince = len(pods.Items), time.Now()
		}
		free, ok := in.metric("prescale_pool_free_gpus", map[string]string{"pool": "nvidia.com/gpu"})
		return ok && free == 0 && time.Since(stableSince) > 15*time.Second, nil
	})
	if err != nil {
		b.Fatalf("the pool did not fill within 10 minutes: %d pods", last)
	}
	s1 := scrape(in.families())
	surgeTicks1, _ := s1.value("prescale_tick_duration_seconds_count", nil)
	surgeSum1, _ := s1.value("prescale_tick_duration_seconds_sum", nil)
	if proxy != nil {
		b.Logf("forecast policies: %d (every %d-th); history range queries held %s each: %d still held at the surge's end, %d answered",
			(n+every-1)/every, every, delay, proxy.held.Load(), proxy.answered.Load())
	}
	b.Logf("surge: %d pods after %s, %.0f ticks of %.3f s on average (%s)", last, time.Since(surgeStart).Round(time.Second),
		surgeTicks1-surgeTicks0, (surgeSum1-surgeSum0)/max(1, surgeTicks1-surgeTicks0), phaseMeans(surgePhases0, phaseSums(s1)))
	// Snapshots right after a tick ends, so that the window holds whole ticks.
	snapshot := func() (ticks, sum, cpu, queries float64, phases map[string][2]float64) {
		n0 := len(in.ticks(b))
		// Ticks start every 5 s; one that has not ended within a minute has hung.
		for deadline := time.Now().Add(time.Minute); len(in.ticks(b)) == n0; time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("no tick ended within a minute: %d Tick done lines in the log", n0)
			}
		}
		s := scrape(in.families())
		ticks, _ = s.value("prescale_tick_duration_seconds_count", nil)
		sum, _ = s.value("prescale_tick_duration_seconds_sum", nil)
		cpu, _ = s.value("process_cpu_seconds_total", nil)
		queries, _ = s.value("prescale_queries_total", nil)
		return ticks, sum, cpu, queries, phaseSums(s)
	}
	ticks0, sum0, cpu0, q0, phases0 := snapshot()
	b.ResetTimer()
	time.Sleep(60 * time.Second)
	ticks1, sum1, cpu1, q1, phases1 := snapshot()
	b.StopTimer()
	b.Logf("steady: %.0f ticks (%s)", ticks1-ticks0, phaseMeans(phases0, phases1))
	// Each tick, from prescale's log: the surge's one by one, and the longest of each window.
	all := in.ticks(b)
	window := func(from, to float64) []tickLog {
		return all[min(len(all), int(from)):min(len(all), int(to))]
	}
	surge, steady := window(surgeTicks0, surgeTicks1), window(ticks0, ticks1)
	var lines []string
	for _, t := range all[:min(len(all), int(surgeTicks1))] {
		lines = append(lines, t.String())
	}
	// One log line: a benchmark's log is cut after ten lines.
	b.Logf("ticks from the first to the surge's last: %s", strings.Join(lines, "; "))
	counts, took := in.records(b)
	var longestRecords time.Duration
	var recs []string
	for i := range counts {
		longestRecords = max(longestRecords, took[i])
		recs = append(recs, fmt.Sprintf("%d in %.3f s", counts[i], took[i].Seconds()))
	}
	b.Logf("decision records written after the ticks: %s", strings.Join(recs, "; "))
	longest := func(ts []tickLog) float64 {
		m := 0.0
		for _, t := range ts {
			m = max(m, t.total.Seconds())
		}
		return m
	}
	end := scrape(in.families())
	rss, _ := end.value("process_resident_memory_bytes", nil)
	// Where the RSS goes: the Go heap live and in use, what the next GC waits for, and what
	// the runtime holds in all.
	var mem []string
	for _, name := range []string{"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
		"go_memstats_heap_released_bytes", "go_memstats_next_gc_bytes", "go_memstats_stack_inuse_bytes", "go_memstats_sys_bytes"} {
		if v, ok := end.value(name, nil); ok {
			mem = append(mem, fmt.Sprintf("%s %.1f MiB", strings.TrimPrefix(name, "go_memstats_"), v/(1<<20)))
		}
	}
	// The RSS is the Go runtime's anonymous memory plus the pages of the binary it touched.
	if roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", in.cmd.Process.Pid)); err == nil {
		for _, l := range strings.Split(string(roll), "\n") {
			if f := strings.Fields(l); len(f) == 3 && (f[0] == "Anonymous:" || f[0] == "Rss:") {
				kb, _ := strconv.ParseFloat(f[1], 64)
				mem = append(mem, fmt.Sprintf("smaps %s %.1f MiB", strings.ToLower(strings.TrimSuffix(f[0], ":")), kb/1024))
			}
		}
	}
	b.Logf("memory at the end: RSS %.1f MiB; %s", rss/(1<<20), strings.Join(mem, ", "))
	if path := os.Getenv("SOAK_HEAP_PROFILE"); path != "" {
		// go tool pprof -top -sample_index=inuse_space PATH
		if err := in.saveProfile("heap", path); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-cpuProfile; err != nil {
		b.Fatal(err)
	}
	ticks := ticks1 - ticks0
	if ticks < 1 {
		b.Fatalf("no tick completed in 60 s")
	}
	b.ReportMetric((sum1-sum0)/ticks, "s/tick")
	b.ReportMetric((cpu1-cpu0)/ticks, "cpu-s/tick")
	b.ReportMetric(rss/(1<<20), "RSS-MiB")
	b.ReportMetric((q1-q0)/ticks, "queries/tick")
	b.ReportMetric(float64(n), "policies")
	limited := in.limitedPolicies(b)
	if pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"}); err == nil {
		perNode := map[string]int{}
		for _, p := range pods.Items {
			perNode[p.Spec.NodeName]++
		}
		b.Logf("pods by node: %v", perNode)
	}
	if resp, err := http.Get("http://" + in.addr + "/status"); err == nil {
		var st []struct {
			Policy   string
			Capacity any
		}
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if len(st) > 0 {
			b.Logf("status of %s: %+v", st[0].Policy, st[0].Capacity)
		}
	}
	free, _ := in.metric("prescale_pool_free_gpus", map[string]string{"pool": "nvidia.com/gpu"})
	b.ReportMetric(float64(limited), "limited-policies")
	b.ReportMetric((surgeSum1-surgeSum0)/max(1, surgeTicks1-surgeTicks0), "s/tick-surge")
	b.ReportMetric(longest(surge), "s/tick-surge-max")
	b.ReportMetric(longest(steady), "s/tick-max")
	b.ReportMetric(longestRecords.Seconds(), "s/records-max")
	b.ReportMetric(float64(last), "pods")
	b.ReportMetric(free, "free-gpus")
}

// phaseSums reads the sums and counts of the tick's phases
// (prescale_tick_phase_duration_seconds) and of a sync's observe and query phases
// (prescale_sync_phase_duration_seconds), keyed "tick/decide", "sync/observe" and so on.
func phaseSums(s scrape) map[string][2]float64 {
	out := map[string][2]float64{}
	for _, m := range []struct{ key, metric, phase string }{
		{"tick/observe", "prescale_tick_phase_duration_seconds", "observe"},
		{"tick/decide", "prescale_tick_phase_duration_seconds", "decide"},
		{"tick/allocate", "prescale_tick_phase_duration_seconds", "allocate"},
		{"tick/act", "prescale_tick_phase_duration_seconds", "act"},
		{"sync/observe", "prescale_sync_phase_duration_seconds", "observe"},
		{"sync/query", "prescale_sync_phase_duration_seconds", "query"},
	} {
		sum, _ := s.value(m.metric+"_sum", map[string]string{"phase": m.phase})
		n, _ := s.value(m.metric+"_count", map[string]string{"phase": m.phase})
		out[m.key] = [2]float64{sum, n}
	}
	return out
}

// phaseMeans formats each phase's mean between two phaseSums.
func phaseMeans(from, to map[string][2]float64) string {
	var parts []string
	for _, k := range []string{"tick/observe", "tick/decide", "tick/allocate", "tick/act", "sync/observe", "sync/query"} {
		d := [2]float64{to[k][0] - from[k][0], to[k][1] - from[k][1]}
		parts = append(parts, fmt.Sprintf("%s %.3f s", k, d[0]/max(1, d[1])))
	}
	return "mean " + strings.Join(parts, ", ")
}

// tickLog is one tick's "Tick done" line: its duration and its phases'.
type tickLog struct{ total, observe, decide, allocate, act time.Duration }

func (t tickLog) String() string {
	return fmt.Sprintf("%.3f s (observe %.3f, decide %.3f, allocate %.3f, act %.3f)", t.total.Seconds(), t.observe.Seconds(),
		t.decide.Seconds(), t.allocate.Seconds(), t.act.Seconds())
}

// records returns the background record writes from the instance's log: how many records
// each wrote and how long it took.
func (in *instance) records(b *testing.B) (counts []int, took []time.Duration) {
	text, err := os.ReadFile(in.logPath)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range recordsWritten.FindAllStringSubmatch(string(text), -1) {
		var n int
		fmt.Sscan(m[1], &n)
		d, err := time.ParseDuration(m[2])
		if err != nil {
			b.Fatalf("records line %q: %v", m[0], err)
		}
		counts, took = append(counts, n), append(took, d)
	}
	return counts, took
}

var (
	tickDone       = regexp.MustCompile(`"Tick done" policies=\d+ duration="([^"]+)" observe="([^"]+)" decide="([^"]+)" allocate="([^"]+)" act="([^"]+)"`)
	recordsWritten = regexp.MustCompile(`"Records written" records=(\d+) duration="([^"]+)"`)
)

// ticks reads every tick's line from the instance's log (--vmodule=controller=4), in order.
func (in *instance) ticks(b *testing.B) []tickLog {
	text, err := os.ReadFile(in.logPath)
	if err != nil {
		b.Fatal(err)
	}
	var out []tickLog
	for _, m := range tickDone.FindAllStringSubmatch(string(text), -1) {
		var d [5]time.Duration
		for i := range d {
			if d[i], err = time.ParseDuration(m[i+1]); err != nil {
				b.Fatalf("tick line %q: %v", m[0], err)
			}
		}
		out = append(out, tickLog{d[0], d[1], d[2], d[3], d[4]})
	}
	return out
}

type collectorFunc func(chan<- prometheus.Metric)

func (f collectorFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
func (f collectorFunc) Describe(chan<- *prometheus.Desc)    {}

// limitedPolicies counts the policies granted fewer replicas than they wanted at the last
// tick, from one read of the instance's /metrics.
func (in *instance) limitedPolicies(b *testing.B) int {
	resp, err := http.Get("http://" + in.addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	byPolicy := func(name string) map[string]float64 {
		out := map[string]float64{}
		for _, m := range families[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "policy" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
		return out
	}
	wanted, granted := byPolicy("prescale_capacity_wanted_replicas"), byPolicy("prescale_capacity_granted_replicas")
	n := 0
	for p, g := range granted {
		if g < wanted[p] {
			n++
		}
	}
	return n
}

// saveProfile writes the instance's profile of kind, a path under /debug/pprof/ with its
// query (prescale run --profiling), to path.
func (in *instance) saveProfile(kind, path string) error {
	resp, err := http.Get("http://" + in.addr + "/debug/pprof/" + kind)
	if err != nil {
		return fmt.Errorf("profile %s: %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile %s: %s", kind, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("profile %s: %w", kind, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("profile %s: %w", kind, err)
	}
	return nil
}
