//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/sandbox"
)

// zeroConfig is config at minReplicas 0 with scaleToZero on the workload's load series
// (sum(inference_load_rps{namespace}), which the exporter serves whatever the pods: the
// gateway's request rate), 10 requests/s per replica, idle delay 5 s; extra is added to
// the policy (a forecast).
func zeroConfig(promURL string, w sandbox.Workload, policyExtra string) string {
	c := strings.Replace(config(promURL, w, ""), "minReplicas: 1", "minReplicas: 0", 1)
	return c + fmt.Sprintf(`    scaleToZero:
      activation: {query: 'sum(inference_load_rps{namespace=%q})', perReplica: 10}
      idleDelay: 5s
`, w.Namespace) + policyExtra
}

// A target idles to zero after the idle delay, and not before; missing activation data
// holds it where it is, above zero and at zero, and says so; the activation signal wakes
// it straight to what it needs (35 requests/s: 4 replicas), not to 1.
func TestScaleToZero(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(0)
	in := startPrescale(t, "a", zeroConfig(p.URL(), w, ""))
	labels := map[string]string{"policy": w.Name}

	// The activation signal missing (no series): held at 2 for longer than the idle delay
	// and the scale-down window (10 s), with an ActivationMissing event.
	eventually(t, 30*time.Second, "prescale to see the queue", func() bool {
		_, ok := in.metric("prescale_metric_value", map[string]string{"policy": w.Name, "metric": "queue"})
		return ok
	})
	testutil.Eventually(t, 30*time.Second, "an ActivationMissing event", func() error {
		if ev := events(t, w, "ActivationMissing"); len(ev) == 0 {
			return fmt.Errorf("no ActivationMissing event")
		}
		return nil
	})
	for end := time.Now().Add(12 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if got := specReplicas(t, w); got != 2 {
			t.Fatalf("activation missing: scaled to %d, want 2 held", got)
		}
	}

	// Idle: the signal at 0. Not at zero before the 5 s delay; at zero after it.
	e.setLoad(0)
	idleFrom := waitValue(t, p, fmt.Sprintf(`sum(inference_load_rps{namespace=%q})`, w.Namespace), 0)
	for time.Since(idleFrom) < 3*time.Second {
		if got := specReplicas(t, w); got == 0 {
			t.Fatalf("at zero %s after the signal went idle, inside the 5 s idle delay", time.Since(idleFrom).Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	eventually(t, 20*time.Second, "the target at zero", func() bool { return specReplicas(t, w) == 0 })
	t.Logf("at zero %s after the signal went idle", time.Since(idleFrom).Round(time.Millisecond))
	testutil.Eventually(t, 20*time.Second, "prescale_scale_to_zero_idle_seconds", metricIs(in, "prescale_scale_to_zero_idle_seconds", labels, ">= 5", func(v float64) bool { return v >= 5 }))

	// Missing at zero: stays at zero.
	e.setLoad(math.NaN())
	eventually(t, 20*time.Second, "the signal missing (the idle series gone)", func() bool {
		_, ok := in.metric("prescale_scale_to_zero_idle_seconds", labels)
		return !ok
	})
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if got := specReplicas(t, w); got != 0 {
			t.Fatalf("activation missing at zero: scaled to %d, want 0", got)
		}
	}

	// Wake: 35 requests/s over 10 a replica: 4 at once.
	e.setLoad(35)
	eventually(t, 20*time.Second, "the wake-up", func() bool { return specReplicas(t, w) != 0 })
	if got := specReplicas(t, w); got != 4 {
		t.Errorf("woke to %d replicas, want ceil(35 / 10) = 4", got)
	}
	testutil.Eventually(t, 20*time.Second, "a SuccessfulRescale event from zero by the activation", func() error {
		for _, m := range events(t, w, "SuccessfulRescale") {
			if strings.Contains(m, "New size: 4; reason: Activated") {
				return nil
			}
		}
		return fmt.Errorf("SuccessfulRescale events = %q", events(t, w, "SuccessfulRescale"))
	})
}

// cycle is the wake-ahead test's load: 40 requests/s in the first minute of every two
// (by the wall clock), none in the second.
func cycle(at time.Time) float64 {
	if at.Unix()%120 < 60 {
		return 40
	}
	return 0
}

// A target whose load comes back every two minutes wakes before it: prescale run loads ten
// minutes of the load's history (backfilled into Prometheus) at start-up, the forecast's
// seasonal-naive point (season 2m) sees the return one horizon (the pods' start-up plus a
// tick) ahead, and the target, idle at zero, wakes while the load is still 0, with the
// reason WakeAhead.
func TestScaleToZeroWakesAhead(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	start := time.Now()
	p := startPrometheusWithHistory(t, e.addr, w, 10*time.Minute, start)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	set := func() {
		load := cycle(time.Now())
		e.setLoad(load)
		e.setTotal(load / 2)
	}
	driveLoad(ctx, set)
	forecast := fmt.Sprintf(`    forecast:
      load: {query: 'sum(inference_load_rps{namespace=%q})', perReplica: 10}
      method: seasonal-naive
      season: 2m
      history: 10m
      gate: {maxError: 1, window: 1m}
`, w.Namespace)
	in := startPrescale(t, "a", zeroConfig(p.URL(), w, forecast))
	testutil.Eventually(t, 30*time.Second, "the log to say the forecast's history was loaded", logHas(in, "Loaded the forecast's history"))

	// Within a few cycles: at zero in an idle minute, then a wake-up from zero with the
	// reason WakeAhead while the load is still 0. A cycle whose idle minute reached zero too
	// late for a wake-ahead (the scale-down window and the idle delay come first, and the
	// wake-ahead needs a horizon at zero before the return) wakes on the activation signal
	// when the load returns: then watch the next cycle.
	var sawZero bool
	var wokeAt time.Time
	deadline := time.Now().Add(7 * time.Minute)
	for time.Now().Before(deadline) && wokeAt.IsZero() {
		n := specReplicas(t, w)
		switch {
		case n == 0:
			sawZero = true
		case sawZero && cycle(time.Now()) == 0:
			wokeAt = time.Now()
		case sawZero:
			t.Logf("woke at phase %d s, when the load returned: the idle minute reached zero too late for a wake-ahead; watching the next cycle", time.Now().Unix()%120)
			sawZero = false
		}
		time.Sleep(100 * time.Millisecond)
	}
	if wokeAt.IsZero() {
		t.Fatalf("no wake-up from zero in an idle minute within 7 minutes (at zero: %v)", sawZero)
	}
	phase := wokeAt.Unix() % 120
	t.Logf("woke at phase %d s of the 120 s cycle (the load returns at 0)", phase)
	testutil.Eventually(t, 20*time.Second, "a SuccessfulRescale with the reason WakeAhead", func() error {
		for _, m := range events(t, w, "SuccessfulRescale") {
			if strings.Contains(m, "reason: WakeAhead") {
				return nil
			}
		}
		return fmt.Errorf("SuccessfulRescale events = %q", events(t, w, "SuccessfulRescale"))
	})
	if cycle(wokeAt) != 0 || phase < 100 {
		t.Errorf("woke at phase %d s: want in the idle minute, within a start-up of its end (100..119)", phase)
	}
}

// startPrometheusWithHistory starts a Prometheus scraping target every second whose data
// directory holds, backfilled with promtool, the series the exporter serves as the load
// (inference_load_rps{namespace}, with the job and instance labels the scrape adds) for
// the span before until: cycle's value every second.
func startPrometheusWithHistory(t *testing.T, target string, w sandbox.Workload, span time.Duration, until time.Time) *promtest.Server {
	t.Helper()
	var b strings.Builder
	b.WriteString("# HELP inference_load_rps Requests per second arriving at the workload.\n# TYPE inference_load_rps gauge\n")
	for at := until.Add(-span).Truncate(time.Second); at.Before(until.Add(-2 * time.Second)); at = at.Add(time.Second) {
		fmt.Fprintf(&b, "inference_load_rps{instance=%q,job=\"vllm\",namespace=%q} %g %d\n", target, w.Namespace, cycle(at), at.Unix())
	}
	b.WriteString("# EOF\n")
	return startPrometheusWith(t, promtest.Options{Config: promtest.ScrapeConfig("vllm", time.Second, target), Backfill: b.String()})
}

// When wake-ups prove wrong, prescale stops waking early and says so: the history says the
// load comes back every two minutes, but it never does (the live load stays 0). The first
// claims of a return are judged wrong one horizon later, the gate closes (a WakeAheadGated
// event, prescale_wake_ahead_gated 1), and the target then stays at zero through the next
// return the forecast expects.
func TestScaleToZeroWakeAheadGated(t *testing.T) {
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	p := startPrometheusWithHistory(t, e.addr, w, 10*time.Minute, time.Now())
	e.setLoad(0)
	e.setTotal(0)
	forecast := fmt.Sprintf(`    forecast:
      load: {query: 'sum(inference_load_rps{namespace=%q})', perReplica: 10}
      method: seasonal-naive
      season: 2m
      history: 10m
      gate: {maxError: 1, window: 1m}
`, w.Namespace)
	in := startPrescale(t, "a", zeroConfig(p.URL(), w, forecast))
	labels := map[string]string{"policy": w.Name}
	testutil.Eventually(t, 3*time.Minute, "a WakeAheadGated event", func() error {
		if ev := events(t, w, "WakeAheadGated"); len(ev) == 0 {
			return fmt.Errorf("no WakeAheadGated event")
		}
		return nil
	})
	t.Logf("gated: %s", events(t, w, "WakeAheadGated")[0])
	testutil.Eventually(t, 10*time.Second, "prescale_wake_ahead_gated 1", metricIs(in, "prescale_wake_ahead_gated", labels, "1", func(v float64) bool { return v == 1 }))
	eventually(t, 20*time.Second, "the target at zero", func() bool { return specReplicas(t, w) == 0 })
	// Through the next return the history predicts (phase 0 of the cycle), and 10 s past it.
	now := time.Now()
	next := now.Truncate(2 * time.Minute).Add(2 * time.Minute)
	if next.Sub(now) < 10*time.Second {
		next = next.Add(2 * time.Minute)
	}
	for time.Now().Before(next.Add(10 * time.Second)) {
		if got := specReplicas(t, w); got != 0 {
			t.Fatalf("woke to %d at phase %d s with the wake-ahead gated", got, time.Now().Unix()%120)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if ann := deployment(t, w).Annotations["prescale.io/decision"]; !strings.Contains(ann, `"wakeGated":true`) {
		t.Errorf("decision annotation = %q, want zero.wakeGated true", ann)
	}
}
