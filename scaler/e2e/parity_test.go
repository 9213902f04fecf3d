//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	_, kube := sharedSandbox(t)
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setTotal(10)
	cfg := func(extra string) string {
		return fmt.Sprintf(`prometheus: {url: %s, timeout: 2s}
interval: 1s
staleness: 5s
leaderElection: {enabled: false}
%s
policies:
  - name: %s
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    minReplicas: 1
    maxReplicas: 8
    metrics:
      - name: queue
        query: sum(vllm:num_requests_waiting{namespace=%q})
        target: {type: AverageValue, averageValue: 5}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 10}
`, p.url(), extra, w.Name, w.Namespace, w.Name, w.Namespace)
	}
	in := startExternalMetrics(t, w, p.url(), cfg)
	created := time.Now()
	hpa := externalHPA(w, 8)
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hpaDesired := func() (int32, bool) {
		h, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
		if err != nil || h.Status.LastScaleTime == nil && h.Status.DesiredReplicas == 0 {
			return 0, false
		}
		return h.Status.DesiredReplicas, true
	}
	equiv := func() (int32, bool) {
		v, ok := in.metric("prescale_hpa_equivalent_replicas", map[string]string{"policy": w.Name})
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
	// load, replicas it asks for (sum / 5, rate limits aside), and for how long.
	for _, step := range []struct {
		load float64
		hold time.Duration
	}{
		{10, 10 * time.Second}, // 2
		{30, 30 * time.Second}, // surge: 6
		{38, 30 * time.Second}, // plateau, higher: 8
		{12, 30 * time.Second}, // drop: 3 after the 10 s window
		{4, 30 * time.Second},  // 1
	} {
		e.setTotal(step.load)
		time.Sleep(step.hold)
	}
	close(stop)
	<-done
	took := time.Since(start)

	// One comparison per HPA sync period (2 s), from the 250 ms trace.
	const syncPeriod = 2 * time.Second
	// A disagreement is timing when the other side decides the same value within this lag:
	// a sync period of the HPA, a tick of prescale, a scrape and a poll.
	const maxLag = syncPeriod + time.Second + time.Second + 250*time.Millisecond
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
	hs := hpaSyncs(t, w.Namespace, w.Name, created, in.logPath, w.Name+"-queue")
	replaySyncs(t, cfg(""), hs)
	var perSync strings.Builder
	var hsAgree, hsTooFar, hsNoValue int
	for _, s := range hs {
		if s.value == "" {
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
		"%d syncs, %d agree (%.1f%%), %d disagree, %d by more than one replica; %d syncs had no served value\n%s%s",
		took.Round(time.Second), len(hs), hsAgree, agreeRate, len(hs)-hsAgree, hsTooFar, hsNoValue, perSync.String(), live)
	if testing.Verbose() {
		for _, s := range hs {
			t.Log(describeSync(s, start))
		}
	}
	t.Log(summary)
	if f := os.Getenv("PARITY_REPORT"); f != "" {
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
