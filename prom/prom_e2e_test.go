//go:build e2e

package prom

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/config"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/policy"
)

const (
	// scrapeWait bounds the wait for a scrape to show in query results.
	scrapeWait = 15 * time.Second
	// generousAge is a maxAge that every scraped sample satisfies.
	generousAge = time.Minute
	// frozenAge is how old the exporter's explicitly timestamped sample is at the start.
	frozenAge = 30 * time.Second
)

// exporter is the in-test scrape target: per-pod vLLM gauges and the odd series the cases
// need.
type exporter struct {
	srv       *httptest.Server
	reg       *prometheus.Registry
	vanishing prometheus.Gauge
	frozenAt  time.Time // timestamp of prescale_test_frozen, which never advances
}

func startExporter(t *testing.T) *exporter {
	t.Helper()
	e := &exporter{reg: prometheus.NewRegistry(), frozenAt: time.Now().Add(-frozenAge).Truncate(time.Millisecond)}
	waiting := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vllm:num_requests_waiting", Help: "Requests waiting."}, []string{"namespace", "pod"})
	for i, v := range []float64{1, 2, 3} {
		waiting.WithLabelValues("llm", fmt.Sprintf("vllm-%d", i)).Set(v)
	}
	gauge := func(name string, v float64) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name})
		g.Set(v)
		return g
	}
	dup := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_test_dup", Help: "One pod, two containers."}, []string{"pod", "container"})
	dup.WithLabelValues("vllm-0", "x").Set(1)
	dup.WithLabelValues("vllm-0", "y").Set(2)
	shards := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_test_shards", Help: "Series without a pod label."}, []string{"shard"})
	for _, s := range []string{"1", "2", "3"} {
		shards.WithLabelValues(s).Set(1)
	}
	e.vanishing = gauge("prescale_test_vanishing", 1)
	e.reg.MustRegister(
		waiting, dup, shards, e.vanishing,
		gauge("prescale_test_queue_depth", 7),
		gauge("prescale_test_nan", math.NaN()),
		gauge("prescale_test_inf", math.Inf(1)),
		promtest.Frozen("prescale_test_frozen", "Sample with a fixed timestamp.", 5, e.frozenAt),
	)
	e.srv = httptest.NewServer(promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	t.Cleanup(e.srv.Close)
	return e
}

// newSource is New that fails the test on error.
func newSource(t *testing.T, o Options) *Source {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return s
}

// scrapedPrometheus starts an exporter and a Prometheus scraping it each second, and waits
// for the first scrape.
func scrapedPrometheus(t *testing.T) (*exporter, *promtest.Server, *Source) {
	t.Helper()
	e := startExporter(t)
	p := promtest.Start(t, promtest.Options{Config: promtest.ScrapeConfig("exporter", time.Second, strings.TrimPrefix(e.srv.URL, "http://"))})
	s := newSource(t, Options{URL: p.URL(), Timeout: 5 * time.Second})
	testutil.Eventually(t, scrapeWait, "first scrape", func() error {
		_, err := s.Sample(context.Background(), "prescale_test_frozen", time.Now(), time.Hour)
		return err
	})
	return e, p, s
}

func TestPrometheus(t *testing.T) {
	e, p, s := scrapedPrometheus(t)
	ctx := context.Background()

	t.Run("results", func(t *testing.T) {
		pods := map[string]float64{"vllm-0": 1, "vllm-1": 2, "vllm-2": 3}
		tests := []struct {
			name    string
			query   string
			want    policy.Sample
			wantErr error
			wantMsg []string
		}{
			{name: "per-pod vector", query: "vllm:num_requests_waiting", want: policy.Sample{PerPod: pods}},
			{name: "sum by pod", query: "sum by (pod) (vllm:num_requests_waiting)", want: policy.Sample{PerPod: pods}},
			{name: "negative values pass through", query: "-vllm:num_requests_waiting",
				want: policy.Sample{PerPod: map[string]float64{"vllm-0": -1, "vllm-1": -2, "vllm-2": -3}}},
			// 1 + 2 + 3
			{name: "sum is one series", query: "sum(vllm:num_requests_waiting)", want: policy.Sample{Value: 6}},
			{name: "service-level gauge", query: "prescale_test_queue_depth", want: policy.Sample{Value: 7}},
			{name: "scalar()", query: "scalar(prescale_test_queue_depth)", want: policy.Sample{Value: 7}},
			{name: "vector(1)", query: "vector(1)", want: policy.Sample{Value: 1}},
			{name: "number literal", query: "2.5", want: policy.Sample{Value: 2.5}},
			{name: "empty result", query: `vllm:num_requests_waiting{pod="none"}`, wantErr: ErrEmpty,
				wantMsg: []string{`query "vllm:num_requests_waiting{pod=\"none\"}": empty result`}},
			{name: "NaN", query: "prescale_test_nan", wantErr: ErrNotFinite, wantMsg: []string{"prescale_test_nan", "NaN"}},
			{name: "+Inf", query: "prescale_test_inf", wantErr: ErrNotFinite, wantMsg: []string{"prescale_test_inf", "+Inf"}},
			{name: "NaN of a pod names the pod", query: `label_replace(prescale_test_nan, "pod", "vllm-9", "", "")`,
				wantErr: ErrNotFinite, wantMsg: []string{`pod "vllm-9"`}},
			{name: "scalar(NaN)", query: "scalar(prescale_test_shards)", wantErr: ErrNotFinite, wantMsg: []string{"scalar"}},
			{name: "several series without the pod label", query: "prescale_test_shards", wantErr: ErrShape,
				wantMsg: []string{"3 series without the \"pod\" label", `shard="1"`}},
			{name: "one pod twice", query: "prescale_test_dup", wantErr: ErrShape, wantMsg: []string{`pod "vllm-0" in several series`}},
			{name: "matrix", query: "vllm:num_requests_waiting[1m]", wantErr: ErrShape, wantMsg: []string{"matrix result"}},
			{name: "string", query: `"hello"`, wantErr: ErrShape, wantMsg: []string{`unexpected value type "string"`}},
			{name: "bad PromQL", query: "sum(", wantErr: ErrBadQuery, wantMsg: []string{`query "sum(": bad query: bad_data:`}},
			{name: "execution error", query: `label_replace(vllm:num_requests_waiting, "pod", "same", "", "")`, wantErr: ErrBadQuery,
				wantMsg: []string{"execution"}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.Sample(ctx, tc.query, time.Now(), generousAge)
				if !errorsIsOrNil(err, tc.wantErr) {
					t.Fatalf("Sample(%q) error = %v, want %v", tc.query, err, tc.wantErr)
				}
				for _, m := range tc.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("Sample(%q) error = %q, want it to contain %q", tc.query, err, m)
					}
				}
				if err != nil && Kind(err) == KindOther {
					t.Errorf("Kind(%v) = %q, want a class", err, KindOther)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("Sample(%q) mismatch (-want +got):\n%s", tc.query, diff)
				}
			})
		}
	})

	t.Run("evaluated at now, not at the wall clock", func(t *testing.T) {
		now := time.Now().Add(-time.Hour).Truncate(time.Second)
		got, err := s.Sample(ctx, "time()", now, generousAge)
		if err != nil {
			t.Fatal(err)
		}
		if want := float64(now.Unix()); got.Value != want {
			t.Errorf("time() at %s = %v, want %v", now, got.Value, want)
		}
	})

	t.Run("maxAge is the lookback: a sample older than maxAge is missing, a newer one is not", func(t *testing.T) {
		now := time.Now()
		age := now.Sub(e.frozenAt) // frozenAge and a little more
		got, err := s.Sample(ctx, "prescale_test_frozen", now, age+time.Second)
		if err != nil || got.Value != 5 {
			t.Fatalf("Sample(frozen, maxAge %s, age %s) = %+v, %v, want 5", age+time.Second, age, got, err)
		}
		_, err = s.Sample(ctx, "prescale_test_frozen", now, age-time.Second)
		if !errors.Is(err, ErrStale) || Kind(err) != KindStale {
			t.Fatalf("Sample(frozen, maxAge %s, age %s) error = %v, want ErrStale", age-time.Second, age, err)
		}
		// The lookback sent is cut to whole seconds.
		want := fmt.Sprintf(`query "prescale_test_frozen": no sample newer than %s: stale result`, (age - time.Second).Truncate(time.Second))
		if err.Error() != want {
			t.Errorf("error = %q, want %q", err, want)
		}
		// The series scraped each second is fresh within 2 s, once a scrape has kept to
		// its interval (on a busy machine one may start late).
		testutil.Eventually(t, scrapeWait, "the series scraped each second fresh with maxAge 2s", func() error {
			_, err := s.Sample(ctx, "vllm:num_requests_waiting", time.Now(), 2*time.Second)
			return err
		})
	})

	t.Run("a series no longer exposed is missing at the next scrape", func(t *testing.T) {
		if _, err := s.Sample(ctx, "prescale_test_vanishing", time.Now(), generousAge); err != nil {
			t.Fatalf("before: %v", err)
		}
		e.reg.Unregister(e.vanishing)
		testutil.Eventually(t, scrapeWait, "vanished series reported missing", func() error {
			_, err := s.Sample(ctx, "prescale_test_vanishing", time.Now(), generousAge)
			if err == nil {
				return errors.New("still present")
			}
			// Prometheus marks the series stale at the first scrape without it, which hides
			// it from any lookback: empty, not stale.
			if !errors.Is(err, ErrEmpty) {
				t.Fatalf("error = %v, want ErrEmpty", err)
			}
			return nil
		})
		testutil.Eventually(t, scrapeWait, "the other series still fresh with maxAge 2s", func() error {
			_, err := s.Sample(ctx, "vllm:num_requests_waiting", time.Now(), 2*time.Second)
			return err
		})
	})

	t.Run("concurrent use, QueryCount counts each query", func(t *testing.T) {
		const workers, each = 8, 5
		before := s.QueryCount()
		var wg sync.WaitGroup
		errs := make(chan error, workers*each)
		for range workers {
			wg.Go(func() {
				for range each {
					if _, err := s.Sample(ctx, "vllm:num_requests_waiting", time.Now(), generousAge); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := s.QueryCount() - before; got != workers*each {
			t.Errorf("QueryCount() grew by %d, want %d", got, workers*each)
		}
		// An empty result is asked twice: once with maxAge, once to tell stale from empty.
		before = s.QueryCount()
		_, _ = s.Sample(ctx, `vllm:num_requests_waiting{pod="none"}`, time.Now(), generousAge)
		if got := s.QueryCount() - before; got != 2 {
			t.Errorf("QueryCount() grew by %d for an empty result, want 2", got)
		}
	})

	t.Run("bearer token from a file, re-read, and extra headers", func(t *testing.T) {
		testBearer(t, p)
	})
}

// testBearer puts a reverse proxy that requires a bearer token and X-Scope-OrgID in front of
// p: Prometheus checks neither.
func testBearer(t *testing.T, p *promtest.Server) {
	target, err := url.Parse(p.URL())
	if err != nil {
		t.Fatal(err)
	}
	var want, seen atomic.Value // of string: the token required, the Authorization last seen
	want.Store("token-1")
	rp := httputil.NewSingleHostReverseProxy(target)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Store(r.Header.Get("Authorization"))
		if r.Header.Get("Authorization") != "Bearer "+want.Load().(string) || r.Header.Get("X-Scope-OrgID") != "tenant-1" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)

	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "token-1\n")
	headers := &config.Headers{Headers: map[string]config.Header{"X-Scope-OrgID": {Values: []string{"tenant-1"}}}}
	s := newSource(t, Options{URL: proxy.URL, Timeout: 5 * time.Second, HTTP: config.HTTPClientConfig{
		Authorization: &config.Authorization{CredentialsFile: tokenFile},
		HTTPHeaders:   headers,
	}})
	ctx := context.Background()
	if _, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge); err != nil {
		t.Fatalf("with token-1: %v", err)
	}
	if got := seen.Load(); got != "Bearer token-1" {
		t.Errorf("Authorization = %q, want %q", got, "Bearer token-1")
	}

	// The file is read at each request: a rotated token is sent on the next query.
	want.Store("token-2")
	writeFile(t, tokenFile, "token-2\n")
	if _, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge); err != nil {
		t.Fatalf("with token-2: %v", err)
	}
	if got := seen.Load(); got != "Bearer token-2" {
		t.Errorf("Authorization after rotation = %q, want %q", got, "Bearer token-2")
	}

	// A token the proxy no longer accepts, and a request without the header.
	want.Store("token-3")
	_, err = s.Sample(ctx, "vector(1)", time.Now(), generousAge)
	if !errors.Is(err, ErrBadQuery) || !strings.Contains(err.Error(), "401") {
		t.Errorf("with a refused token: error = %v, want ErrBadQuery naming 401", err)
	}
	writeFile(t, tokenFile, "token-3\n")
	noHeader := newSource(t, Options{URL: proxy.URL, HTTP: config.HTTPClientConfig{Authorization: &config.Authorization{CredentialsFile: tokenFile}}})
	if _, err := noHeader.Sample(ctx, "vector(1)", time.Now(), generousAge); !errors.Is(err, ErrBadQuery) {
		t.Errorf("without X-Scope-OrgID: error = %v, want ErrBadQuery", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFailures(t *testing.T) {
	ctx := context.Background()

	t.Run("Prometheus stopped", func(t *testing.T) {
		p := promtest.Start(t, promtest.Options{})
		s := newSource(t, Options{URL: p.URL(), Timeout: 5 * time.Second})
		if _, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge); err != nil {
			t.Fatalf("while running: %v", err)
		}
		p.Stop(t)
		_, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge)
		if !errors.Is(err, ErrUnavailable) || Kind(err) != KindUnavailable {
			t.Fatalf("after stop: error = %v, want ErrUnavailable", err)
		}
		if !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error = %q, want it to say connection refused", err)
		}
	})

	t.Run("Prometheus' own timeout: a 503 with its error type and message", func(t *testing.T) {
		p := promtest.Start(t, promtest.Options{Args: []string{"--query.timeout=100ms"}})
		s := newSource(t, Options{URL: p.URL(), Timeout: 10 * time.Second})
		// 3.6 million subquery steps: far more than 100 ms of evaluation.
		_, err := s.Sample(ctx, "count_over_time(vector(1)[1h:1ms])", time.Now(), generousAge)
		if !errors.Is(err, ErrTimeout) || Kind(err) != KindTimeout {
			t.Fatalf("error = %v, want ErrTimeout", err)
		}
		for _, m := range []string{"timeout: query timed out in expression evaluation", "503"} {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("error = %q, want it to contain %q", err, m)
			}
		}
	})

	t.Run("server that never answers: Options.Timeout", func(t *testing.T) {
		const timeout = 200 * time.Millisecond
		s := newSource(t, Options{URL: "http://" + blackhole(t), Timeout: timeout})
		start := time.Now()
		_, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge)
		if !errors.Is(err, ErrTimeout) || Kind(err) != KindTimeout {
			t.Fatalf("error = %v, want ErrTimeout", err)
		}
		if took := time.Since(start); took > 10*timeout {
			t.Errorf("took %s, want about %s", took, timeout)
		}
	})

	t.Run("server that never answers: the caller's deadline", func(t *testing.T) {
		s := newSource(t, Options{URL: "http://" + blackhole(t), Timeout: time.Minute})
		ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if _, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge); !errors.Is(err, ErrTimeout) {
			t.Fatalf("error = %v, want ErrTimeout", err)
		}
	})

	t.Run("caller cancels", func(t *testing.T) {
		s := newSource(t, Options{URL: "http://" + blackhole(t), Timeout: time.Minute})
		ctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err := s.Sample(ctx, "vector(1)", time.Now(), generousAge)
		if !errors.Is(err, context.Canceled) || Kind(err) != KindOther {
			t.Fatalf("error = %v (kind %q), want context.Canceled of kind other", err, Kind(err))
		}
	})
}
