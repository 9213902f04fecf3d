//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/sandbox"
)

// forecastConfig is config with a forecast of the workload's load (perReplica 10, Holt,
// horizon auto, 2 minutes of history, judged over a 1-minute gate window, so that the
// history is enough to trust it) added to its policy.
func forecastConfig(promURL string, w sandbox.Workload, extra string) string {
	return config(promURL, w, extra) + fmt.Sprintf(`    forecast:
      load: {query: 'inference_load_rps{namespace=%q}', perReplica: 10}
      method: holt
      horizon: auto
      history: 2m
      gate: {window: 1m}
`, w.Namespace)
}

// A policy whose load rises steadily, on a cluster without the CapacityBuffer API (which
// prescale says once): prescale run fits the forecast on the load's history in Prometheus
// at start-up, so it predicts from its first ticks; its horizon is
// the pods' measured start-up plus one tick; the forecast raises the replicas before the
// reactive metric asks for them (the rescale's reason names the forecast); the
// prescale_forecast_* metrics are exported; and the external metrics API serves the
// forecast's proposal as <policy>-forecast-replicas.
func TestForecastRun(t *testing.T) {
	_, kube := sharedSandbox(t)
	w, p := rampingWorkload(t)

	// The external metrics API, with prescale writing (not in dry-run).
	in := startExternalMetrics(t, w, p.URL(), func(extra string) string {
		return forecastConfig(p.URL(), w, strings.Replace(extra, "dryRun: true", "dryRun: false", 1))
	})
	labels := map[string]string{"policy": w.Name}

	// The backfill: the history was loaded, and the forecaster fitted on it, in prescale's
	// first tick, which need not have ended when the external metrics API answers.
	testutil.Eventually(t, 30*time.Second, "the log to say the forecast's history was loaded", logHas(in, "Loaded the forecast's history"))
	// The sandbox serves no CapacityBuffer API: prescale says so once, and scales as it
	// would without (what follows).
	testutil.Eventually(t, 30*time.Second, "the log to say the CapacityBuffer API is not served", logHas(in, "The CapacityBuffer API is not served"))
	testutil.Eventually(t, 30*time.Second, "the history the forecaster was fitted on",
		metricIs(in, "prescale_forecast_history_samples", labels, "at least 25", func(v float64) bool { return v >= 25 }))

	// The forecast raised the replicas at a tick where it asked for more than every metric.
	// It is trusted once it has a gate window (1m) of samples, history included: the 30 s
	// of history rampLoad waits for, then up to 30 s of ticks; and then it wins only while
	// the ramp is within a few seconds below a replica step (the metrics' tolerance): wait
	// for two gate windows.
	eventually(t, 2*time.Minute, "a rescale won by the forecast", func() bool {
		for _, m := range events(t, w, "SuccessfulRescale") {
			if strings.Contains(m, "metric forecast proposed") {
				t.Logf("rescale: %s", m)
				return true
			}
		}
		return false
	})
	// The event may arrive before the same tick's annotation is written: await it.
	testutil.Eventually(t, 30*time.Second, "the decision annotation with the forecast's part", func() error {
		if ann := deployment(t, w).Annotations["prescale.io/decision"]; !strings.Contains(ann, `"forecast":{`) {
			return fmt.Errorf("decision annotation = %q", ann)
		}
		return nil
	})

	// The metrics, the horizon from the measured start-up (about 2 s, the pods' delay).
	for _, name := range []string{"prescale_forecast_load", "prescale_forecast_upper", "prescale_forecast_replicas",
		"prescale_forecast_gated", "prescale_forecast_horizon_seconds", "prescale_pod_startup_seconds"} {
		eventually(t, 10*time.Second, name, func() bool { _, ok := in.metric(name, labels); return ok })
	}
	eventually(t, 15*time.Second, "prescale_forecast_error", func() bool { _, ok := in.metric("prescale_forecast_error", labels); return ok })
	// The two gauges are read in two scrapes, and a tick that measures a new pod's start-up
	// may come between them: retry until one pair is from one tick.
	var startup, horizon float64
	testutil.Eventually(t, 20*time.Second, "a start-up of a few seconds and the horizon one tick (1 s) more", func() error {
		startup, _ = in.metric("prescale_pod_startup_seconds", labels)
		horizon, _ = in.metric("prescale_forecast_horizon_seconds", labels)
		if startup < 1 || startup > 30 || horizon != startup+1 {
			return fmt.Errorf("start-up %vs, horizon %vs", startup, horizon)
		}
		return nil
	})
	if g, _ := in.metric("prescale_forecast_gated", labels); g != 0 {
		t.Errorf("prescale_forecast_gated = %v on a steady ramp, want 0", g)
	}

	// <policy>-forecast-replicas is the proposal prescale_forecast_replicas exports (the
	// two are read apart, at most a tick or two: retry until they agree).
	var last string
	eventually(t, 20*time.Second, "the forecast's proposal through the external metrics API", func() bool {
		q, err := externalValue(kube, w.Namespace, w.Name+"-forecast-replicas")
		want, ok := in.metric("prescale_forecast_replicas", labels)
		last = fmt.Sprintf("external %v (error %v), metric %v (present %v)", q, err, want, ok)
		return err == nil && ok && float64(q.Value()) == want && want > 2
	})
	t.Logf("forecast-replicas: %s; start-up %vs, horizon %vs", last, startup, horizon)
}

// The first way to adopt prescale, with its forecast: prescale in dry-run serves
// <policy>-forecast-replicas, and an ordinary HPA whose only metric is that one, with the
// documented target (External, AverageValue 1), scales the workload ahead of a rising
// load to what prescale's forecast proposes. prescale writes nothing (the audit log says
// who wrote the scale).
func TestForecastFeedsHPA(t *testing.T) {
	_, kube := sharedSandbox(t)
	w, p := rampingWorkload(t)
	in := startExternalMetrics(t, w, p.URL(), func(extra string) string { return forecastConfig(p.URL(), w, extra) })

	hpa := externalHPA(w, 12)
	hpa.Spec.Metrics[0].External.Metric.Name = w.Name + "-forecast-replicas"
	hpa.Spec.Metrics[0].External.Target.AverageValue = resource.NewQuantity(1, resource.DecimalSI)
	created := time.Now()
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The HPA follows the proposal: at some sync its desired replicas are what prescale's
	// forecast proposes (read a tick or two apart: retry), above the 2 it started with.
	labels := map[string]string{"policy": w.Name}
	var last string
	eventually(t, 60*time.Second, "the HPA at the forecast's proposal", func() bool {
		h, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
		want, ok := in.metric("prescale_forecast_replicas", labels)
		if err != nil || !ok {
			return false
		}
		last = fmt.Sprintf("HPA desired %d, forecast proposal %v, spec %d", h.Status.DesiredReplicas, want, specReplicas(t, w))
		return h.Status.DesiredReplicas > 2 && float64(h.Status.DesiredReplicas) == want && specReplicas(t, w) == h.Status.DesiredReplicas
	})
	t.Logf("%s", last)
	for _, wr := range auditedScaleWrites(t, w.Namespace, created) {
		if !strings.Contains(wr.userAgent, hpaUserAgent) {
			t.Errorf("scale written by %q at %s, want only the HPA (prescale is in dry-run)", wr.userAgent, wr.at)
		}
	}
}

// rampingWorkload starts the forecast tests' workload ("llm": 2 GPU pods of 1 GPU each,
// Ready 2 s after creation), its exporter and a Prometheus scraping it, and ramps its load
// (rampLoad).
func rampingWorkload(t *testing.T) (sandbox.Workload, *promtest.Server) {
	t.Helper()
	w := workload(t, "llm", 2, 1, 2*time.Second)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	rampLoad(t, e, p, w)
	return w, p
}

// rampLoad makes the workload's load rise 1 request/s every second from 10, until the test
// ends, with the queue following it: total queue load/2 over the pods, against 5 a pod,
// asks for load/10 replicas, what perReplica 10 asks for the same load (the forecast asks
// for the load one horizon ahead: more). It returns once Prometheus holds 30 s of the
// load's history (30 samples at 1 s), more than the forecaster's warm-up of 20 residuals
// plus the horizon's steps (a few).
func rampLoad(t *testing.T, e *exporter, p *promtest.Server, w sandbox.Workload) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	start := time.Now()
	set := func() {
		load := 10 + time.Since(start).Seconds()
		e.setLoad(load)
		e.setTotal(load / 2)
	}
	driveLoad(ctx, set)
	query := fmt.Sprintf(`count_over_time(inference_load_rps{namespace=%q}[2m])`, w.Namespace)
	eventually(t, 45*time.Second, "30 s of load history in Prometheus", func() bool { return promCount(p, query) >= 30 })
}

// promCount returns the value of an instant query that gives one series, or 0.
func promCount(p *promtest.Server, query string) float64 {
	client, err := promapi.NewClient(promapi.Config{Address: p.URL()})
	if err != nil {
		return 0
	}
	res, _, _, err := promv1.NewAPI(client).Query(context.Background(), query, time.Now())
	if vec, ok := res.(model.Vector); err == nil && ok && len(vec) == 1 {
		return float64(vec[0].Value)
	}
	return 0
}

// driveLoad calls set now and every 100 ms until ctx ends: the exporter's load follows it.
func driveLoad(ctx context.Context, set func()) {
	set()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				set()
			}
		}
	}()
}
