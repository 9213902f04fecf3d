//go:build e2e

package e2e

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// slowProxy stands in front of a Prometheus: it holds every range query (a forecast's
// history) for a delay before passing it on, as an overloaded Prometheus answering a long
// range does, and redirects every other request to Prometheus at once. It counts the range queries
// it holds.
type slowProxy struct {
	addr     string
	held     atomic.Int32 // range queries being held
	answered atomic.Int32 // range queries passed on after the delay
}

func startSlowProxy(t testing.TB, upstream string, delay time.Duration) *slowProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	// As many idle connections as prescale's concurrent queries (the default keeps two, and
	// a soak's 64 concurrent instant queries would each open one).
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	rp.Transport = tr
	p := &slowProxy{}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" {
			// The rest goes to Prometheus itself: a 307 keeps the method and the body, and
			// the proxy's own work stays out of the instant queries' latency.
			http.Redirect(w, r, upstream+r.URL.RequestURI(), http.StatusTemporaryRedirect)
			return
		}
		p.held.Add(1)
		select {
		case <-time.After(delay):
			p.held.Add(-1)
			p.answered.Add(1)
		case <-r.Context().Done():
			p.held.Add(-1)
			return
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.addr = ln.Addr().String()
	return p
}

// slowHistoryPolicy is one policy of TestSlowHistoryHoldsNoScale: a queue metric on the
// workload's own pods (per-pod AverageValue 5) and, with forecast, a forecast whose load
// is the namespace's inference_load_rps. maxReplicas 2: a new pod reports the surge's
// queue too, and the five workloads' 8 pods must fit the sandbox's GPUs.
func slowHistoryPolicy(w sandbox.Workload, forecast bool) string {
	s := fmt.Sprintf(`  - name: %s
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    minReplicas: 1
    maxReplicas: 2
    metrics:
      - name: queue
        query: 'sum by (pod) (vllm:num_requests_waiting{namespace=%q, pod=~"%s-[a-z0-9]+-[a-z0-9]{5}"})'
        target: {type: AverageValue, averageValue: 5}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 10}
`, w.Name, w.Namespace, w.Name, w.Namespace, w.Name)
	if forecast {
		s += fmt.Sprintf(`    forecast:
      load: {query: 'max(inference_load_rps{namespace=%q})', perReplica: 100}
      method: holt
      horizon: auto
      history: 2m
      gate: {window: 1m}
`, w.Namespace)
	}
	return s
}

// Five policies, two with forecasts whose history loads from a Prometheus that takes 90 s
// to answer a range query (a proxy holds it). The loads run in the background: while they
// are held, every policy decides at each tick, the forecast policies on their metrics
// (their decision record says the history is loading), and a surge of the other policies'
// queues is written within a few ticks of Prometheus seeing it. Once the history arrives,
// the forecasters are fitted on it, and prescale_tick_phase_duration_seconds{phase="history"}
// has timed the 90 s loads while no tick took more than a few seconds.
func TestSlowHistoryHoldsNoScale(t *testing.T) {
	const delay = 90 * time.Second
	var ws []sandbox.Workload
	var es []*exporter
	var targets []string
	for i, name := range []string{"fc-a", "fc-b", "plain-a", "plain-b", "plain-c"} {
		w := workload(t, name, 1, 1, 0)
		e := newExporter(t, w)
		e.setQueue(5) // at target: hold at 1
		if i < 2 {
			e.setLoad(50)
		}
		ws, es, targets = append(ws, w), append(es, e), append(targets, e.addr)
	}
	forecasts, plain := ws[:2], ws[2:]
	p := startPrometheusEvery(t, targets[0], time.Second, targets[1:]...)
	proxy := startSlowProxy(t, p.URL(), delay)
	// A history to load: the load series scraped for a few seconds before prescale starts.
	waitValue(t, p, fmt.Sprintf(`max(inference_load_rps{namespace=%q})`, ws[0].Namespace), 50)
	time.Sleep(3 * time.Second)

	// The instant queries' timeout allows the 90 s range queries through the same client.
	cfg := fmt.Sprintf(`prometheus: {url: http://%s, timeout: 100s}
interval: 1s
staleness: 5s
leaderElection: {namespace: %s, name: prescale, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 200ms}
policies:
`, proxy.addr, ws[0].Namespace)
	for i, w := range ws {
		cfg += slowHistoryPolicy(w, i < 2)
	}
	in := startPrescale(t, "a", cfg)

	testutil.Eventually(t, 30*time.Second, "both forecast policies' history range queries held by the proxy", func() error {
		if n := proxy.held.Load(); n != 2 {
			return fmt.Errorf("%d range queries held", n)
		}
		return nil
	})
	// Every policy decides at each tick meanwhile: its metric gauge is set by the act phase.
	for _, w := range ws {
		testutil.Eventually(t, 30*time.Second, w.Name+"'s queue seen while the histories load",
			metricIs(in, "prescale_metric_value", map[string]string{"policy": w.Name, "metric": "queue"}, "5", func(v float64) bool { return v == 5 }))
	}
	for _, w := range forecasts {
		testutil.Eventually(t, 30*time.Second, w.Name+"'s decision record saying its history loads", func() error {
			if ann := deployment(t, w).Annotations["prescale.io/decision"]; !strings.Contains(ann, `"historyLoading":true`) {
				return fmt.Errorf("decision annotation = %q", ann)
			}
			return nil
		})
	}

	// Surge of the plain policies' queues: 10 a pod on 1 pod proposes 2.
	for _, e := range es[2:] {
		e.setQueue(10)
	}
	crossed := waitValue(t, p, fmt.Sprintf(`min(vllm:num_requests_waiting{namespace=%q, pod=~"plain-.*"})`, plain[0].Namespace), 10)
	for _, w := range plain {
		eventually(t, 20*time.Second, w.Name+"'s scale-up to 2", func() bool { return specReplicas(t, w) == 2 })
	}
	took := time.Since(crossed)
	if held := proxy.held.Load(); held != 2 {
		t.Fatalf("the history range queries were no longer held (%d held) when the scale-ups were written: the test shows nothing", held)
	}
	// Within a few ticks (1 s each) of Prometheus answering with the surge; 90 s if the
	// ticks waited for the histories.
	if took > 10*time.Second {
		t.Errorf("the scale-ups took %s after the surge reached Prometheus, want a few ticks while the histories load", took)
	}
	t.Logf("the other policies scaled up %s after the surge reached Prometheus, with 2 history range queries held", took.Round(time.Millisecond))

	// The histories arrive, and the forecasters are fitted on them.
	for _, w := range forecasts {
		testutil.Eventually(t, delay+60*time.Second, w.Name+"'s forecaster fitted on its history",
			metricIs(in, "prescale_forecast_history_samples", map[string]string{"policy": w.Name}, "at least 1", func(v float64) bool { return v >= 1 }))
	}
	if n := proxy.answered.Load(); n < 2 {
		t.Errorf("%d range queries answered, want the 2 histories", n)
	}
	history := in.histogram("prescale_tick_phase_duration_seconds", map[string]string{"phase": "history"})
	if history == nil || history.GetSampleCount() < 2 || history.GetSampleSum() < 2*(delay.Seconds()-5) {
		t.Errorf("tick phase history = %v, want the two loads of about %s each", history, delay)
	}
	ticks := in.histogram("prescale_tick_duration_seconds", nil)
	if ticks == nil {
		t.Fatal("no prescale_tick_duration_seconds")
	}
	var under5 uint64
	for _, b := range ticks.GetBucket() {
		if b.GetUpperBound() >= 5 && !math.IsInf(b.GetUpperBound(), 1) {
			under5 = b.GetCumulativeCount()
			break
		}
	}
	if under5 != ticks.GetSampleCount() {
		t.Errorf("%d of %d ticks took more than about 5 s; no tick waits for a history", ticks.GetSampleCount()-under5, ticks.GetSampleCount())
	}
	t.Logf("history loads: %d, %.1f s in all; ticks: %d, all under about 5 s", history.GetSampleCount(), history.GetSampleSum(), ticks.GetSampleCount())
}
