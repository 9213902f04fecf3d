package external

import (
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"
)

func apiService(name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": name}, "spec": spec}}
}

func TestAPIServiceOwner(t *testing.T) {
	forbidden := func(c *dynamicfake.FakeDynamicClient) {
		c.PrependReactor("get", "apiservices", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(apiServices.GroupResource(), APIServiceName, nil)
		})
	}
	for _, tc := range []struct {
		name      string
		objs      []runtime.Object
		react     func(*dynamicfake.FakeDynamicClient)
		wantOwner types.NamespacedName
		wantRoute Route
		wantErr   string
	}{
		{name: "routed to prescale's Service",
			objs: []runtime.Object{apiService(APIServiceName, map[string]any{
				"service": map[string]any{"namespace": "prescale", "name": "prescale-external-metrics", "port": int64(443)}})},
			wantOwner: types.NamespacedName{Namespace: "prescale", Name: "prescale-external-metrics"}, wantRoute: RouteService},
		{name: "routed to KEDA's Service",
			objs: []runtime.Object{apiService(APIServiceName, map[string]any{
				"service": map[string]any{"namespace": "keda", "name": "keda-operator-metrics-apiserver", "port": int64(443)}})},
			wantOwner: types.NamespacedName{Namespace: "keda", Name: "keda-operator-metrics-apiserver"}, wantRoute: RouteService},
		{name: "no APIService",
			objs:      []runtime.Object{apiService("v1beta1.custom.metrics.k8s.io", map[string]any{"service": map[string]any{"namespace": "x", "name": "y"}})},
			wantRoute: RouteAbsent},
		{name: "an APIService without a service is local", objs: []runtime.Object{apiService(APIServiceName, map[string]any{"group": "external.metrics.k8s.io"})},
			wantRoute: RouteLocal},
		{name: "a service name that is not a string is an error",
			objs:    []runtime.Object{apiService(APIServiceName, map[string]any{"service": map[string]any{"namespace": "keda", "name": int64(7)}})},
			wantErr: "spec.service.name"},
		{name: "a forbidden read is an error, not an absent APIService", react: forbidden, wantErr: "forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
				map[schema.GroupVersionResource]string{apiServices: "APIServiceList"}, tc.objs...)
			if tc.react != nil {
				tc.react(c)
			}
			owner, route, err := APIServiceOwner(context.Background(), c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if owner != tc.wantOwner || route != tc.wantRoute {
				t.Errorf("APIServiceOwner = %v, %v; want %v, %v", owner, route, tc.wantOwner, tc.wantRoute)
			}
		})
	}
}
