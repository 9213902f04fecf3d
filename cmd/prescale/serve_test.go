package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

func TestCheckAPIService(t *testing.T) {
	own := ServiceSettings{Namespace: "prescale", Name: "prescale-external-metrics"}
	routedTo := func(service map[string]any) []runtime.Object {
		return []runtime.Object{&unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
			"metadata": map[string]any{"name": "v1beta1.external.metrics.k8s.io"},
			"spec":     map[string]any{"service": service}}}}
	}
	for _, tc := range []struct {
		name         string
		objs         []runtime.Object
		wantConflict float64
		wantLog      string
	}{
		{name: "routed to prescale's Service", wantConflict: 0,
			objs:    routedTo(map[string]any{"namespace": "prescale", "name": "prescale-external-metrics", "port": int64(443)}),
			wantLog: `"The external metrics APIService routes to prescale"`},
		{name: "owned by KEDA", wantConflict: 1,
			objs:    routedTo(map[string]any{"namespace": "keda", "name": "keda-operator-metrics-apiserver", "port": int64(443)}),
			wantLog: `owner="keda/keda-operator-metrics-apiserver" want="prescale/prescale-external-metrics"`},
		{name: "a Service of the same name in another namespace is another owner", wantConflict: 1,
			objs:    routedTo(map[string]any{"namespace": "monitoring", "name": "prescale-external-metrics"}),
			wantLog: `owner="monitoring/prescale-external-metrics"`},
		{name: "served by the API server itself", wantConflict: 1, objs: routedTo(nil), wantLog: `owner="local"`},
		{name: "no APIService", wantConflict: 0, wantLog: `"No external metrics APIService`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			ctx := klog.NewContext(context.Background(), textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(&buf))))
			client := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}: "APIServiceList"},
				tc.objs...)
			conflict := newAPIServiceConflict(prometheus.NewRegistry())
			checkAPIService(ctx, client, own, conflict)
			if got := testutil.ToFloat64(conflict); got != tc.wantConflict {
				t.Errorf("prescale_external_metrics_apiservice_conflict = %v, want %v", got, tc.wantConflict)
			}
			if !strings.Contains(buf.String(), tc.wantLog) {
				t.Errorf("log lacks %s:\n%s", tc.wantLog, buf.String())

			}
		})
	}
}

// The HTTP server bounds every phase of a connection, so that a slow or stuck client (one
// that sends its request slowly, reads the answer slowly, or leaves a connection idle) never
// holds it for ever; an idle keep-alive connection outlives a 1-minute scrape interval, so
// that a scraper reuses it.
func TestHTTPServerTimeouts(t *testing.T) {
	srv := newHTTPServer(http.NotFoundHandler())
	for _, b := range []struct {
		name string
		d    time.Duration
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout},
		{"ReadTimeout", srv.ReadTimeout},
		{"WriteTimeout", srv.WriteTimeout},
		{"IdleTimeout", srv.IdleTimeout},
	} {
		if b.d <= 0 {
			t.Errorf("%s = %v, want a bound", b.name, b.d)
		}
	}
	if srv.ReadTimeout < srv.ReadHeaderTimeout {
		t.Errorf("ReadTimeout %v < ReadHeaderTimeout %v: the whole request has less time than its headers", srv.ReadTimeout, srv.ReadHeaderTimeout)
	}
	if srv.IdleTimeout <= time.Minute {
		t.Errorf("IdleTimeout %v: a scraper every minute would open a new connection each time", srv.IdleTimeout)
	}
}

// --profiling adds Go's profiles under /debug/pprof/ and passes every other path to the
// controller's handler.
func TestWithProfiling(t *testing.T) {
	inner := http.NewServeMux()
	inner.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "metrics") })
	srv := httptest.NewServer(withProfiling(inner))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	if code, body := get("/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Errorf("/debug/pprof/heap: %d %.80q, want 200 and a heap profile", code, body)
	}
	if code, body := get("/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.80q, want 200 and the index", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || body != "metrics" {
		t.Errorf("/metrics: %d %q, want the controller's handler", code, body)
	}
	// Without the flag the controller's handler has no such path.
	plain := httptest.NewServer(inner)
	defer plain.Close()
	resp, err := http.Get(plain.URL + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/debug/pprof/heap without --profiling: %d, want 404", resp.StatusCode)
	}
}
