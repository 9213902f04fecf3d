//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// 1 and 2: a surge scales up within two ticks of the metric crossing its target; a drop
// scales down only after the stabilization window.
func TestSurgeAndDrop(t *testing.T) {
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5) // at target: hold at 2
	// maxReplicas 4: the surge's 4 is the most, so that the new pods' first samples (still
	// at 10, before the drop is scraped) cannot scale further.
	in := startPrescale(t, "a", strings.Replace(config(p.URL(), w, ""), "maxReplicas: 12", "maxReplicas: 4", 1))
	eventually(t, 30*time.Second, "prescale to see the queue at target", func() bool {
		v, ok := in.metric("prescale_metric_value", map[string]string{"policy": w.Name, "metric": "queue"})
		return ok && v == 5
	})
	if got := specReplicas(t, w); got != 2 {
		t.Fatalf("at target: replicas %d, want 2", got)
	}

	// Surge: queue 10 per pod on 2 pods proposes ceil(2 * 2) = 4.
	e.setQueue(10)
	crossed := waitValue(t, p, fmt.Sprintf(`max(vllm:num_requests_waiting{namespace=%q})`, w.Namespace), 10)
	eventually(t, 10*time.Second, "the scale-up to 4", func() bool { return specReplicas(t, w) == 4 })
	took := time.Since(crossed)
	// Within two ticks (1 s each) of Prometheus answering with the crossing.
	if took > 2*time.Second {
		t.Errorf("scale-up took %s after the metric crossed its target in Prometheus, want within two ticks (2s)", took)
	}
	t.Logf("scaled up %s after the metric crossed its target in Prometheus", took.Round(time.Millisecond))
	// The event is sent, and the annotation written, after the scale: await them.
	testutil.Eventually(t, 30*time.Second, "a SuccessfulRescale event with New size: 4", func() error {
		if ev := events(t, w, "SuccessfulRescale"); len(ev) == 0 || !strings.Contains(ev[len(ev)-1], "New size: 4") {
			return fmt.Errorf("SuccessfulRescale events = %q", ev)
		}
		return nil
	})
	testutil.Eventually(t, 30*time.Second, "the decision annotation to record the last decision (desired 4)", func() error {
		if ann := deployment(t, w).Annotations["prescale.io/decision"]; !strings.Contains(ann, `"desired":4`) {
			return fmt.Errorf("decision annotation = %q", ann)
		}
		return nil
	})

	// Drop: queue 1 proposes ceil(0.2 * 4) = 1, held for the 10 s window.
	e.setQueue(1)
	dropped := waitMetric(t, in, w, 1)
	for time.Since(dropped) < 7*time.Second {
		if got := specReplicas(t, w); got != 4 {
			t.Fatalf("scaled down to %d %s after the drop, inside the 10 s stabilization window", got, time.Since(dropped).Round(time.Millisecond))
		}
		time.Sleep(250 * time.Millisecond)
	}
	eventually(t, 10*time.Second, "the scale-down after the window", func() bool { return specReplicas(t, w) == 1 })
	t.Logf("scaled down %s after the drop", time.Since(dropped).Round(time.Millisecond))
}

// waitMetric waits until prescale's view of the queue metric is v and returns when. The
// gauge is set after the tick's scale write: once it reads v, that tick has written.
func waitMetric(t *testing.T, in *instance, w sandbox.Workload, v float64) time.Time {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%s to see the queue at %v", in.identity, v),
		metricIs(in, "prescale_metric_value", map[string]string{"policy": w.Name, "metric": "queue"}, fmt.Sprint(v), func(got float64) bool { return got == v }))
	return time.Now()
}

// 3: with fewer free GPUs than wanted, prescale asks for no more pods than fit, and says so.
func TestCapacityLimited(t *testing.T) {
	// 2 nodes x 4 GPUs, 2 GPUs a pod: 4 pods fit in all.
	w := workload(t, "big", 1, 2, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(40) // 40/5 * 1 = 8 wanted, limited to 4 by the behavior-less max(2*1, 4) and by the GPUs
	in := startPrescale(t, "a", config(p.URL(), w, ""))
	eventually(t, 30*time.Second, "the scale-up to what fits", func() bool { return specReplicas(t, w) == 4 })
	// Now 4 pods hold all 8 GPUs; the queue still asks for 8 * 4 = 32, capped at max 12 by
	// the policy and at 4 by the GPUs: no Pending pod is asked for.
	eventually(t, 20*time.Second, "a CapacityLimited event", func() bool {
		for _, m := range events(t, w, "CapacityLimited") {
			if strings.Contains(m, "granted 4") {
				return true
			}
		}
		return false
	})
	time.Sleep(3 * time.Second)
	if got := specReplicas(t, w); got != 4 {
		t.Errorf("replicas %d, want 4 (what fits)", got)
	}
	testutil.Eventually(t, 20*time.Second, "the uncapped replicas above what fits",
		metricIs(in, "prescale_uncapped_replicas", map[string]string{"policy": w.Name}, "above 4", func(v float64) bool { return v > 4 }))
	t.Logf("CapacityLimited: %q", events(t, w, "CapacityLimited"))
}

// 5: Prometheus stopped mid-run: replicas are held, events and metrics say why, and scaling
// resumes when it returns.
func TestPrometheusOutage(t *testing.T) {
	w := workload(t, "llm", 3, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5)
	in := startPrescale(t, "a", config(p.URL(), w, ""))
	waitMetric(t, in, w, 5)
	p.Stop(t)
	e.setQueue(0.5) // would scale down, if anyone could see it
	eventually(t, 15*time.Second, "the metric to be reported missing", func() bool {
		v, ok := in.metric("prescale_metric_missing", map[string]string{"policy": w.Name, "metric": "queue"})
		return ok && v == 1
	})
	testutil.Eventually(t, 20*time.Second, "the failed queries to be counted",
		metricIs(in, "prescale_errors_total", map[string]string{"kind": "unavailable"}, "above 0", func(v float64) bool { return v > 0 }))
	eventually(t, 10*time.Second, "a FailedGetMetric event", func() bool { return len(events(t, w, "FailedGetMetric")) > 0 })
	time.Sleep(12 * time.Second) // past the 10 s scale-down window
	if got := specReplicas(t, w); got != 3 {
		t.Fatalf("replicas %d while Prometheus was down, want 3 held", got)
	}
	p.Restart(t)
	e.setQueue(20) // 20/5 * 3 = 12
	eventually(t, 30*time.Second, "scaling to resume", func() bool { return specReplicas(t, w) > 3 })
}

// 6: an invalid configuration pushed while running is rejected; the last good one works on.
func TestInvalidConfigKeepsLastGood(t *testing.T) {
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5)
	good := config(p.URL(), w, "")
	in := startPrescale(t, "a", good)
	waitMetric(t, in, w, 5)
	in.write(strings.Replace(good, "maxReplicas: 12", "maxReplicas: 0", 1))
	eventually(t, 10*time.Second, "the reload to be rejected", func() bool {
		v, ok := in.metric("prescale_config_last_reload_successful", nil)
		return ok && v == 0
	})
	// The gauge is set before the rejection is logged: await the line.
	testutil.Eventually(t, 20*time.Second, "the log to name the invalid field", logHas(in, "maxReplicas: must be >= 1, got 0"))
	e.setQueue(10) // the last good configuration scales 2 -> 4 (and on)
	eventually(t, 20*time.Second, "the last good configuration to scale", func() bool { return specReplicas(t, w) >= 4 })
	// A valid change takes effect: maxReplicas 3 -> TooManyReplicas brings it to 3.
	in.write(strings.Replace(good, "maxReplicas: 12", "maxReplicas: 3", 1))
	eventually(t, 20*time.Second, "the new configuration", func() bool { return specReplicas(t, w) == 3 })
	// The new policies apply before the gauge is set: await it.
	testutil.Eventually(t, 20*time.Second, "the valid reload to be reported successful",
		metricIs(in, "prescale_config_last_reload_successful", nil, "1", func(v float64) bool { return v == 1 }))
}

// 6b: dryRun: true pushed while running is a kill switch: no write from the next tick, no
// restart; pushing dryRun back off lets prescale write again.
func TestDryRunReloadIsLive(t *testing.T) {
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5) // at target: hold at 2
	good := config(p.URL(), w, "")
	in := startPrescale(t, "a", good)
	waitMetric(t, in, w, 5)
	in.write(config(p.URL(), w, "dryRun: true"))
	// The switch is set before the new policies and the gauge with it: once it reads 1,
	// every later sync is in dry-run.
	testutil.Eventually(t, 20*time.Second, "the dry-run to be live",
		metricIs(in, "prescale_dry_run", nil, "1", func(v float64) bool { return v == 1 }))
	testutil.Eventually(t, 20*time.Second, "the change to be logged", logHas(in, "Global dryRun changed; applies from the next tick"))
	if in.logContains(`settings=["dryRun"]`) {
		t.Error("dryRun logged among the settings that need a restart")
	}
	// Queue 10 per pod on 2 pods proposes 4: decided, not written.
	e.setQueue(10)
	waitMetric(t, in, w, 10)
	testutil.Eventually(t, 20*time.Second, "the decision to scale to 4",
		metricIs(in, "prescale_desired_replicas", map[string]string{"policy": w.Name}, "4", func(v float64) bool { return v == 4 }))
	time.Sleep(3 * time.Second) // three more ticks
	if got := specReplicas(t, w); got != 2 {
		t.Fatalf("replicas %d in dry-run, want 2: the reload's dryRun did not stop the writes", got)
	}
	in.write(good)
	eventually(t, 20*time.Second, "the writes to resume once dryRun is off", func() bool { return specReplicas(t, w) == 4 })
	testutil.Eventually(t, 20*time.Second, "the dry-run gauge to read 0",
		metricIs(in, "prescale_dry_run", nil, "0", func(v float64) bool { return v == 0 }))
}

// 7: dry-run beside a real HPA: prescale writes nothing; its gauges and scorecard are filled
// and the HPA's status.desiredReplicas is read and exported.
func TestDryRunBesideHPA(t *testing.T) {
	w := workload(t, "llm", 2, 1, 0)
	pinnedHPA(t, w, 3)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(20) // prescale would want 8
	in := startPrescale(t, "a", config(p.URL(), w, "dryRun: true"))
	eventually(t, 30*time.Second, "the HPA's desired replicas to be exported", func() bool {
		v, ok := in.metric("prescale_hpa_desired_replicas", map[string]string{"policy": w.Name})
		return ok && v == 3
	})
	eventually(t, 20*time.Second, "the dry-run decision and scorecard", func() bool {
		d, ok1 := in.metric("prescale_desired_replicas", map[string]string{"policy": w.Name})
		s, ok2 := in.metric("prescale_scorecard_replica_seconds_total", map[string]string{"policy": w.Name, "who": "hpa"})
		return ok1 && ok2 && d > 3 && s > 0
	})
	if got := specReplicas(t, w); got != 3 {
		t.Errorf("replicas %d, want 3: only the HPA writes", got)
	}
	for _, mf := range deployment(t, w).ManagedFields {
		if strings.HasPrefix(mf.Manager, "a") && mf.Manager == in.identity {
			t.Errorf("prescale (field manager %q) wrote the deployment in dry-run: %+v", mf.Manager, mf)
		}
	}
	if ann, ok := deployment(t, w).Annotations["prescale.io/decision"]; ok {
		t.Errorf("dry-run annotated the target: %q", ann)
	}
	if n := len(events(t, w, "")); n != 0 {
		t.Errorf("%d events from prescale in dry-run: %q", n, events(t, w, ""))
	}
}

// Not in dry-run, beside a real HPA on the same workload: prescale refuses to fight it. It
// writes nothing (the audit log says who wrote the scale), says why in a Warning event and
// a metric; once the HPA is deleted, it scales.
func TestRefusesToFightAnHPA(t *testing.T) {
	w := workload(t, "llm", 2, 1, 0)
	_, kube := sharedSandbox(t)
	pinnedHPA(t, w, 3)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(20) // prescale wants 8
	started := time.Now()
	in := startPrescale(t, "a", config(p.URL(), w, "dryRun: false"))
	labels := map[string]string{"policy": w.Name}
	testutil.Eventually(t, 30*time.Second, "prescale_conflicting_autoscaler to be 1",
		metricIs(in, "prescale_conflicting_autoscaler", labels, "1", func(v float64) bool { return v == 1 }))
	testutil.Eventually(t, 30*time.Second, "the ConflictingAutoscaler warning", func() error {
		if got := events(t, w, "ConflictingAutoscaler"); len(got) != 1 || !strings.Contains(got[0], "HorizontalPodAutoscaler "+w.Namespace+"/"+w.Name) {
			return fmt.Errorf("ConflictingAutoscaler events %q, want one naming the HPA", got)
		}
		return nil
	})
	// Several ticks deciding more than 3 (7: the scale-up limit, 3 + 4) and the HPA at 3:
	// still only the HPA wrote.
	testutil.Eventually(t, 30*time.Second, "prescale to decide more than 3 while not writing",
		metricIs(in, "prescale_desired_replicas", labels, "above 3", func(v float64) bool { return v > 3 }))
	time.Sleep(3 * time.Second)
	for _, wr := range auditedScaleWrites(t, w.Namespace, started) {
		if !strings.Contains(wr.userAgent, hpaUserAgent) {
			t.Errorf("scale written by %q at %s, want only the HPA's writes", wr.userAgent, wr.at)
		}
	}
	if got := specReplicas(t, w); got != 3 {
		t.Errorf("replicas %d, want the HPA's 3", got)
	}

	// The HPA is deleted: prescale scales to 8 and the metric falls to 0.
	if err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Delete(context.Background(), w.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "prescale to scale to 8 once the HPA is gone", func() error {
		if got := specReplicas(t, w); got != 8 {
			return fmt.Errorf("replicas %d", got)
		}
		return nil
	})
	testutil.Eventually(t, 30*time.Second, "prescale_conflicting_autoscaler to be 0",
		metricIs(in, "prescale_conflicting_autoscaler", labels, "0", func(v float64) bool { return v == 0 }))
}

// pinnedHPA creates a real HPA on the workload whose min and max pin n replicas: the
// controller-manager scales to n and reports status.desiredReplicas n without needing a
// metrics API.
func pinnedHPA(t *testing.T, w sandbox.Workload, n int32) {
	t.Helper()
	_, kube := sharedSandbox(t)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: w.Name},
			MinReplicas:    ptr.To(n), MaxReplicas: n,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
				Name: "cpu", Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: ptr.To[int32](50)}}}},
		},
	}
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// 8: the target deleted and recreated: no crash; events say what happened.
func TestTargetRecreated(t *testing.T) {
	w := workload(t, "llm", 2, 1, 0)
	_, kube := sharedSandbox(t)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5)
	in := startPrescale(t, "a", config(p.URL(), w, ""))
	waitMetric(t, in, w, 5)
	if err := kube.AppsV1().Deployments(w.Namespace).Delete(context.Background(), w.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "the missing target to be counted", func() bool {
		v, ok := in.metric("prescale_errors_total", map[string]string{"kind": "target_not_found"})
		return ok && v > 0
	})
	if err := w.Apply(context.Background(), kube); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "a TargetRecreated event", func() bool { return len(events(t, w, "TargetRecreated")) > 0 })
	e.setQueue(10)
	eventually(t, 30*time.Second, "scaling the new target", func() bool { return specReplicas(t, w) >= 4 })
	select {
	case <-in.done:
		t.Fatal("prescale exited")
	default:
	}
}
