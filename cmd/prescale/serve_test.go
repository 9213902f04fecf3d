package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

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
