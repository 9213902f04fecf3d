package external

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

// APIServiceName is the APIService that routes external.metrics.k8s.io/v1beta1. Only one
// server in a cluster can own it: prescale, KEDA or prometheus-adapter.
const APIServiceName = "v1beta1.external.metrics.k8s.io"

// apiServices is the resource of APIServiceName, read unstructured so that prescale does not
// import the aggregator's types for two fields.
var apiServices = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// Route is where the APIService sends external metrics requests.
type Route int

const (
	// RouteAbsent: no APIService, HPAs cannot read external metrics.
	RouteAbsent Route = iota
	// RouteLocal: the APIService has no service (served by the API server itself).
	RouteLocal
	// RouteService: the APIService routes to a Service, APIServiceOwner's owner.
	RouteService
)

// APIServiceOwner reads the APIService v1beta1.external.metrics.k8s.io and returns where it
// routes: with RouteService, the namespace and name of its spec.service. A failed read
// (Forbidden included) is an error; a missing APIService is RouteAbsent, not an error.
func APIServiceOwner(ctx context.Context, client dynamic.Interface) (types.NamespacedName, Route, error) {
	u, err := client.Resource(apiServices).Get(ctx, APIServiceName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return types.NamespacedName{}, RouteAbsent, nil
	}
	if err != nil {
		return types.NamespacedName{}, RouteAbsent, fmt.Errorf("get APIService %s: %w", APIServiceName, err)
	}
	var owner types.NamespacedName
	for _, f := range []struct {
		key string
		dst *string
	}{{"namespace", &owner.Namespace}, {"name", &owner.Name}} {
		if *f.dst, _, err = unstructured.NestedString(u.Object, "spec", "service", f.key); err != nil {
			return types.NamespacedName{}, RouteAbsent, fmt.Errorf("read APIService %s spec.service.%s: %w", APIServiceName, f.key, err)
		}
	}
	if owner.Name == "" {
		return types.NamespacedName{}, RouteLocal, nil
	}
	return owner, RouteService, nil
}
