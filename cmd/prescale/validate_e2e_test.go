//go:build e2e

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
)

// preflightExporter is the scrape target of the preflight's e2e test: a few vLLM and
// dcgm-exporter series as those servers name them, a histogram that observes two requests
// at each scrape (so that its rate is never 0), and the odd series a broken policy reads.
func preflightExporter(t *testing.T) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	gaugeVec := func(name string, labels []string, values map[string]float64) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: name}, labels)
		for k, v := range values {
			g.WithLabelValues(strings.Split(k, ",")...).Set(v)
		}
		return g
	}
	gauge := func(name string, v float64) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name})
		g.Set(v)
		return g
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vllm:e2e_request_latency_seconds", Help: "End-to-end latency.",
		Buckets: []float64{0.1, 0.5, 1, 2.5, 5, 10}}, []string{"pod"})
	frozenAt := time.Now().Add(-30 * time.Second)
	reg.MustRegister(
		gaugeVec("vllm:num_requests_waiting", []string{"pod"}, map[string]float64{"llm-0": 2, "llm-1": 4}),
		gaugeVec("vllm:kv_cache_usage_perc", []string{"pod"}, map[string]float64{"llm-0": 0.35, "llm-1": 0.4}),
		// dcgm-exporter scraped without honorLabels: its pod label is exported_pod.
		gaugeVec("DCGM_FI_DEV_GPU_UTIL", []string{"gpu", "exported_pod"}, map[string]float64{"0,llm-0": 97, "1,llm-1": 99}),
		latency,
		gauge("prescale_test_nan", math.NaN()),
		gauge("prescale_test_negative", -1),
		promtest.Frozen("prescale_test_frozen", "A sample with a fixed timestamp.", 5, frozenAt),
	)
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		latency.WithLabelValues("llm-0").Observe(0.3)
		latency.WithLabelValues("llm-1").Observe(0.7)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// instantSeries runs query against the Prometheus at base and returns how many series it
// gave.
func instantSeries(base, query string) (int, error) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	return len(body.Data.Result), nil
}

// The good policy reads each series as its server exports it.
const goodPreflightPolicy = `staleness: 10s
policies:
  - name: good
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: llm}
    minReplicas: 1
    maxReplicas: 8
    metrics:
      - {name: queue, query: "sum by (pod) (vllm:num_requests_waiting)", target: {type: AverageValue, averageValue: 5}}
      - {name: kv, query: "100 * max by (pod) (vllm:kv_cache_usage_perc)", target: {type: AverageValue, averageValue: 80}}
    forecast: {load: {query: "sum(rate(vllm:e2e_request_latency_seconds_count[1m]))", perReplica: 2}}
    objective:
      query: "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[1m])))"
      slo: 2s
      budget: 1%
`

// The bad policy has one query of each problem kind.
const badPreflightPolicy = `staleness: 10s
policies:
  - name: bad
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: llm}
    minReplicas: 0
    maxReplicas: 8
    metrics:
      - {name: running, query: "sum by (pod) (vllm:num_requests_running)", target: {type: AverageValue, averageValue: 5}}
      - {name: nan, query: "prescale_test_nan", target: {type: Value, value: 1}}
      - {name: gpu, query: "avg by (pod) (DCGM_FI_DEV_GPU_UTIL)", target: {type: AverageValue, averageValue: 70}}
      - {name: kv, query: "max by (pod) (vllm:kv_cache_usage_perc)", target: {type: AverageValue, averageValue: 80}}
      - {name: frozen, query: "prescale_test_frozen", target: {type: Value, value: 5}}
    forecast: {load: {query: "sum(prescale_test_negative)", perReplica: 2}}
    objective: {query: "max(vllm:e2e_request_latency_seconds)", slo: 2s, budget: 1%}
    scaleToZero: {activation: {query: "sum(rate(inference_requests_total[1m]))", perReplica: 2}}
`

// TestValidatePrometheusE2E runs validate --prometheus against a real Prometheus scraping
// an exporter: a policy with one query of each problem kind fails with one line for each,
// a policy that reads the series as they are exported passes, and on a Prometheus with none
// of the series every query says it returned nothing.
func TestValidatePrometheusE2E(t *testing.T) {
	base := promtest.Start(t, promtest.Options{Config: promtest.ScrapeConfig("exporter", time.Second, preflightExporter(t))}).URL()
	// The histogram's rate needs two scrapes in its window; the frozen sample one scrape.
	for _, q := range []string{"sum(rate(vllm:e2e_request_latency_seconds_count[1m])) > 0", "prescale_test_frozen"} {
		testutil.Eventually(t, 30*time.Second, "a scraped series for "+q, func() error {
			n, err := instantSeries(base, q)
			if err == nil && n == 0 {
				err = fmt.Errorf("no series yet")
			}
			return err
		})
	}

	t.Run("a policy with one query of each problem kind", func(t *testing.T) {
		code, stdout, stderr := runPrescale(t, "", "validate", "-f", writeFile(t, badPreflightPolicy), "--prometheus", base)
		if code != 1 || stdout != "policy file ok: 1 policy (bad)\n" {
			t.Fatalf("exit %d, stdout %q, want 1 and the file ok; stderr:\n%s", code, stdout, stderr)
		}
		want := []string{
			"policy bad, metric running: no-series: ",
			"policy bad, metric nan: not-finite: ",
			"policy bad, metric gpu: no-pod-label: ",
			"policy bad, metric kv: scale: ",
			"policy bad, metric frozen: stale: ",
			"policy bad, forecast load: negative: ",
			"policy bad, objective: histogram: ",
			"policy bad, activation: no-series: ",
			"8 problems in 8 queries of 1 policy checked against " + base,
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), stderr)
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) {
				t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], w)
			}
		}
	})

	t.Run("a policy that reads the series as exported", func(t *testing.T) {
		code, stdout, stderr := runPrescale(t, "", "validate", "-f", writeFile(t, goodPreflightPolicy), "--prometheus", base)
		want := "policy file ok: 1 policy (good)\nprometheus ok: 4 queries of 1 policy checked against " + base + "\n"
		if code != 0 || stdout != want || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0, %q and no stderr", code, stdout, stderr, want)
		}
	})

	t.Run("a Prometheus that has none of the series", func(t *testing.T) {
		empty := promtest.Start(t, promtest.Options{Config: promtest.ScrapeConfig("exporter", time.Second)}).URL()
		code, stdout, stderr := runPrescale(t, "", "validate", "-f", writeFile(t, goodPreflightPolicy), "--prometheus", empty)
		if code != 1 || stdout != "policy file ok: 1 policy (good)\n" {
			t.Fatalf("exit %d, stdout %q, want 1 and the file ok; stderr:\n%s", code, stdout, stderr)
		}
		want := []string{
			`policy good, metric queue: no-series: query "sum by (pod) (vllm:num_requests_waiting)" returned no series (no series named vllm:num_requests_waiting in the last 1h0m10s)`,
			`policy good, metric kv: no-series: query "100 * max by (pod) (vllm:kv_cache_usage_perc)" returned no series (no series named vllm:kv_cache_usage_perc in the last 1h0m10s)`,
			`policy good, forecast load: no-series: query "sum(rate(vllm:e2e_request_latency_seconds_count[1m]))" returned no series (no series named vllm:e2e_request_latency_seconds_count in the last 1h0m10s)`,
			`policy good, objective: no-series: query "histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[1m])))" returned no series (no series named vllm:e2e_request_latency_seconds_bucket in the last 1h0m10s)`,
			"4 problems in 4 queries of 1 policy checked against " + empty,
		}
		if got := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("stderr:\n%s\nwant:\n%s", stderr, strings.Join(want, "\n"))
		}
	})
}
