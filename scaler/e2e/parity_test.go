//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prescale/prescale/hpaimport"
	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/demo"
)

// paritySample is one instant: the real HPA's status.desiredReplicas and prescale's
// HPA-equivalent decision (dry-run, no forecast, no capacity cap).
type paritySample struct {
	at         time.Time
	hpa, equiv int32
}

// A real HPA on prescale's external metric and prescale's HPA-equivalent engine on the same
// query, through a surge, a plateau and a drop: they must decide the same replicas, and any
// disagreement must be a matter of timing (one saw a load step or a scale a sync earlier).
//
// The metric is the summed queue with an AverageValue target of 5 on both sides: the HPA's
// External AverageValue (ceil(sum / 5), tolerance against status replicas) and prescale's
// single-series AverageValue semantics are the same formula. The load is split evenly over
// the Ready pods, so the sum is the load whatever the replicas.
func TestHPAParity(t *testing.T) {
	hpaParity(t, parityCase{
		hpa: func(w sandbox.Workload) *autoscalingv2.HorizontalPodAutoscaler { return externalHPA(w, 8) },
		metrics: `      - name: queue
        query: sum(vllm:num_requests_waiting{namespace=%[1]q})
        target: {type: AverageValue, averageValue: 5}
`,
		served: []string{"queue"},
		// load, replicas it asks for (sum / 5, rate limits aside), and for how long.
		steps: []parityStep{
			{10, 10 * time.Second}, // 2
			{30, 30 * time.Second}, // surge: 6
			{38, 30 * time.Second}, // plateau, higher: 8
			{12, 30 * time.Second}, // drop: 3 after the 10 s window
			{4, 30 * time.Second},  // 1
		},
		syncPeriod: 2 * time.Second, report: true,
	})
}

// The demo's real HPA (sandbox/demo: the vLLM example's two metrics, in-flight requests
// (AverageValue 48) and KV cache (800m), as External metrics, and its behavior at the
// demo's time scale), imported from the cluster by prescale import with a prometheus-adapter
// configuration whose external rules serve its two metrics. The imported policy, run by a
// second prescale in dry-run beside the HPA, decides the same replicas at each of the HPA's
// syncs. The first prescale serves the HPA's metrics on the same PromQL, as the adapter
// would: in-flight as the summed load, KV cache as a hundredth of it.
func TestImportedHPAParity(t *testing.T) {
	hpaParity(t, parityCase{
		hpa: func(w sandbox.Workload) *autoscalingv2.HorizontalPodAutoscaler {
			h := demo.HPA(w.Name, demo.DefaultCompression)
			h.Namespace, h.Spec.MaxReplicas = w.Namespace, 8
			return h
		},
		metrics: `      - name: in-flight
        query: sum(vllm:num_requests_waiting{namespace=%[1]q})
        target: {type: AverageValue, averageValue: 48}
      - name: kv-cache
        query: sum(vllm:num_requests_waiting{namespace=%[1]q}) / 100
        target: {type: AverageValue, averageValue: 800m}
      - name: queue
        query: sum(vllm:num_requests_waiting{namespace=%[1]q})
        target: {type: AverageValue, averageValue: 1000}
`,
		served: []string{"in-flight", "kv-cache"},
		adapter: `externalRules:
- seriesQuery: 'vllm:num_requests_waiting{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
  name:
    matches: "^vllm:num_requests_waiting$"
    as: "%[1]s-in-flight"
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
- seriesQuery: 'vllm:num_requests_waiting{namespace!=""}'
  resources:
    overrides:
      namespace: {resource: "namespace"}
  name:
    matches: "^vllm:num_requests_waiting$"
    as: "%[1]s-kv-cache"
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>) / 100
`,
		// The summed load, the replicas it asks for (in-flight: sum / 48; the KV cache's
		// sum / 100 / 0.8 asks for fewer), and for how long: the drops outlast the demo's
		// 30 s scale-down window.
		steps: []parityStep{
			{96, 10 * time.Second},  // 2
			{280, 20 * time.Second}, // surge: 6
			{380, 20 * time.Second}, // plateau, higher: 8
			{140, 40 * time.Second}, // drop: 3 after the window
			{40, 40 * time.Second},  // 1
		},
		syncPeriod: 2 * time.Second,
	})
}

// parityCase is one HPA parity test: the real HPA, the metrics that the first prescale
// serves it (External, <policy>-<metric>; the policy is the workload's name), the
// prometheus-adapter configuration that imports the HPA ("": the compared policy is the
// serving one), and the load's steps.
type parityCase struct {
	hpa func(sandbox.Workload) *autoscalingv2.HorizontalPodAutoscaler
	// metrics is the serving policy's metrics block, %[1]q the workload's namespace; served
	// names the ones the HPA reads, in its order.
	metrics string
	served  []string
	// adapter, %[1]s the workload's name.
	adapter    string
	steps      []parityStep
	syncPeriod time.Duration // the sandbox HPA controller's
	report     bool          // write PARITY_REPORT
}

type parityStep struct {
	load float64
	hold time.Duration
}

func hpaParity(t *testing.T, c parityCase) {
	_, kube := sharedSandbox(t)
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setTotal(c.steps[0].load)
	h := c.hpa(w)
	settings := func(extra string) string {
		return fmt.Sprintf(`prometheus: {url: %s, timeout: 2s}
interval: 1s
staleness: 5s
leaderElection: {enabled: false}
%s
`, p.URL(), extra)
	}
	cfg := func(extra string) string {
		s := settings(extra) + fmt.Sprintf(`policies:
  - name: %s
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    minReplicas: 1
    maxReplicas: %d
    metrics:
`, w.Name, w.Namespace, w.Name, h.Spec.MaxReplicas) + fmt.Sprintf(c.metrics, w.Namespace)
		if b := h.Spec.Behavior; b != nil && b.ScaleDown != nil && b.ScaleDown.StabilizationWindowSeconds != nil {
			s += fmt.Sprintf("    behavior:\n      scaleDown: {stabilizationWindowSeconds: %d}\n", *b.ScaleDown.StabilizationWindowSeconds)
		}
		return s
	}
	in := startExternalMetrics(t, w, p.URL(), cfg)
	created := time.Now()
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Create(context.Background(), h, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The policy compared with the HPA: the serving one, or the HPA imported from the cluster.
	compared, replayed := in, cfg("")
	if c.adapter != "" {
		live, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		adapter, _, err := hpaimport.ParseAdapterConfig("adapter.yaml", []byte(fmt.Sprintf(c.adapter, w.Name)))
		if err != nil {
			t.Fatal(err)
		}
		file, err := hpaimport.Import([]autoscalingv2.HorizontalPodAutoscaler{*live}, adapter, hpaimport.Options{})
		if err != nil {
			t.Fatalf("import the HPA: %v", err)
		}
		t.Logf("imported policy file:\n%s", file)
		replayed = settings("") + string(file)
		compared = startPrescale(t, "imported", replayed)
	}
	served := make([]string, len(c.served))
	for i, m := range c.served {
		served[i] = w.Name + "-" + m
	}
	hpaDesired := func() (int32, bool) {
		h, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
		if err != nil || h.Status.LastScaleTime == nil && h.Status.DesiredReplicas == 0 {
			return 0, false
		}
		return h.Status.DesiredReplicas, true
	}
	equiv := func() (int32, bool) {
		v, ok := compared.metric("prescale_hpa_equivalent_replicas", map[string]string{"policy": w.Name})
		return int32(v), ok
	}
	eventually(t, 60*time.Second, "both to settle at 2", func() bool {
		h, ok1 := hpaDesired()
		q, ok2 := equiv()
		return ok1 && ok2 && h == 2 && q == 2
	})

	// Record both every 250 ms while the scenario plays.
	var (
		mu    sync.Mutex
		trace []paritySample
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			h, ok1 := hpaDesired()
			q, ok2 := equiv()
			if ok1 && ok2 {
				mu.Lock()
				trace = append(trace, paritySample{at: time.Now(), hpa: h, equiv: q})
				mu.Unlock()
			}
		}
	}()
	start := time.Now()
	for _, step := range c.steps {
		e.setTotal(step.load)
		time.Sleep(step.hold)
	}
	close(stop)
	<-done
	took := time.Since(start)

	// One comparison per HPA sync period, from the 250 ms trace.
	syncPeriod := c.syncPeriod
	// A disagreement is timing when the other side decides the same value within this lag:
	// a sync period of the HPA, a tick of prescale, a scrape and a poll.
	maxLag := syncPeriod + time.Second + time.Second + 250*time.Millisecond
	var syncs, agree, timing, unexplained, tooFar int
	var report strings.Builder
	next := trace[0].at
	for i, s := range trace {
		if s.at.Before(next) {
			continue
		}
		next = s.at.Add(syncPeriod)
		syncs++
		if s.hpa == s.equiv {
			agree++
			continue
		}
		diff := s.hpa - s.equiv
		if diff < -1 || diff > 1 {
			tooFar++
		}
		lag, ok := lagTo(trace, i, maxLag)
		if ok {
			timing++
			fmt.Fprintf(&report, "  +%5.1fs HPA %d, prescale %d: timing, the other side decided the same %s apart\n",
				s.at.Sub(start).Seconds(), s.hpa, s.equiv, lag.Round(250*time.Millisecond))
		} else {
			unexplained++
			fmt.Fprintf(&report, "  +%5.1fs HPA %d, prescale %d: UNEXPLAINED\n", s.at.Sub(start).Seconds(), s.hpa, s.equiv)
		}
	}
	// The decisions themselves: each side's sequence of distinct replicas, and how far apart
	// in time the two sides made each change.
	hpaSeq, eqSeq := changes(trace, func(s paritySample) int32 { return s.hpa }), changes(trace, func(s paritySample) int32 { return s.equiv })
	sameSeq := len(hpaSeq) == len(eqSeq)
	var maxSkew time.Duration
	for k := 0; sameSeq && k < len(hpaSeq); k++ {
		sameSeq = hpaSeq[k].v == eqSeq[k].v
		if d := hpaSeq[k].at.Sub(eqSeq[k].at).Abs(); d > maxSkew {
			maxSkew = d
		}
	}
	live := fmt.Sprintf("live, side by side (each sampled every 250 ms, one comparison per %s): %d comparisons, %d agree (%.1f%%), %d disagree (%d timing, %d unexplained, %d by more than one replica)\n%s"+
		"decisions: HPA %v, prescale %v (same sequence: %v; each change made within %s of the other side's)\n",
		syncPeriod, syncs, agree, 100*float64(agree)/float64(syncs), syncs-agree, timing, unexplained, tooFar, report.String(),
		values(hpaSeq), values(eqSeq), sameSeq, maxSkew.Round(250*time.Millisecond))

	// Every sync of the real HPA, and prescale's HPA-equivalent engine on exactly what that
	// sync read (audit log: the scale; prescale's log: the metric value it served).
	hs := hpaSyncs(t, w.Namespace, w.Name, created, in.logPath, served...)
	replaySyncs(t, replayed, hs)
	var perSync strings.Builder
	var hsAgree, hsTooFar, hsNoValue int
	for _, s := range hs {
		if slices.Contains(s.values, "") {
			hsNoValue++
		}
		if s.decided == s.replayed {
			hsAgree++
			continue
		}
		if d := s.decided - s.replayed; d < -1 || d > 1 {
			hsTooFar++
		}
		fmt.Fprintf(&perSync, "  %s\n", describeSync(s, start))
	}
	if len(hs) < int(took/syncPeriod)/2 {
		t.Fatalf("the audit log shows %d HPA syncs in %s, want about one every %s", len(hs), took.Round(time.Second), syncPeriod)
	}
	agreeRate := 100 * float64(hsAgree) / float64(len(hs))
	summary := fmt.Sprintf("HPA parity over %s, at every sync of the real HPA, prescale's HPA-equivalent engine on the inputs of that sync: "+
		"%d syncs, %d agree (%.1f%%), %d disagree, %d by more than one replica; %d syncs lacked a served value\n%s%s",
		took.Round(time.Second), len(hs), hsAgree, agreeRate, len(hs)-hsAgree, hsTooFar, hsNoValue, perSync.String(), live)
	if testing.Verbose() {
		for _, s := range hs {
			t.Log(describeSync(s, start))
		}
	}
	t.Log(summary)
	if f := os.Getenv("PARITY_REPORT"); f != "" && c.report {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Errorf("create the parity report's folder: %v", err)
		}
		if err := os.WriteFile(f, []byte(summary), 0o644); err != nil {
			t.Errorf("write the parity report: %v", err)
		}
	}
	if agreeRate < 98 || hsTooFar > 0 {
		t.Errorf("HPA parity per sync: %.1f%% agree (want at least 98%%), %d disagreements by more than one replica (want none)", agreeRate, hsTooFar)
	}
	if unexplained > 0 {
		t.Errorf("%d disagreements are not explained by timing", unexplained)
	}
	if !sameSeq {
		t.Errorf("the HPA decided %v, prescale's HPA-equivalent engine %v", values(hpaSeq), values(eqSeq))
	}
}

type change struct {
	at time.Time
	v  int32
}

// changes returns the trace's distinct successive values of f, with when each began.
func changes(trace []paritySample, f func(paritySample) int32) []change {
	var out []change
	for _, s := range trace {
		if len(out) == 0 || out[len(out)-1].v != f(s) {
			out = append(out, change{at: s.at, v: f(s)})
		}
	}
	return out
}

func values(cs []change) []int32 {
	out := make([]int32, len(cs))
	for i, c := range cs {
		out[i] = c.v
	}
	return out
}

// lagTo returns how far from trace[i] (within maxLag, before or after) the HPA decided what
// prescale decided at i, or prescale what the HPA decided at i.
func lagTo(trace []paritySample, i int, maxLag time.Duration) (time.Duration, bool) {
	s := trace[i]
	best, found := maxLag+1, false
	for _, o := range trace {
		d := o.at.Sub(s.at)
		if d < 0 {
			d = -d
		}
		if d > maxLag {
			continue
		}
		if (o.hpa == s.equiv || o.equiv == s.hpa) && d < best {
			best, found = d, true
		}
	}
	return best, found
}
