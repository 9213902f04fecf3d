//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// With the APIService v1beta1.external.metrics.k8s.io owned by another server (here a
// stand-in for KEDA's), `prescale run --external-metrics` starts, says who owns it in an
// error, and sets prescale_external_metrics_apiservice_conflict to 1.
func TestExternalMetricsAPIServiceConflict(t *testing.T) {
	st, kube := sharedSandbox(t)
	ctx := context.Background()
	const ns, svc = "keda", "keda-operator-metrics-apiserver"
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	// Nothing listens there: the APIService is unavailable, as KEDA's would be to prescale's
	// HPAs once it owns the route; prescale only reads where it routes.
	ip, port := freeHostPort(t)
	if err := st.RegisterAPIService(ctx, sandbox.APIService{Group: "external.metrics.k8s.io", Version: "v1beta1",
		Namespace: ns, Service: svc, Host: ip, Port: port}); err != nil {
		t.Fatal(err)
	}
	cfg, err := st.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the other external metrics tests register their own
		gvr := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
		if err := dyn.Resource(gvr).Delete(context.Background(), "v1beta1.external.metrics.k8s.io", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("delete the APIService: %v", err)
		}
	})

	// No Prometheus and no such Deployment: the check does not need them.
	w := sandbox.Workload{Namespace: "default", Name: "absent"}
	in := startPrescale(t, "apiservice", config("http://127.0.0.1:1", w, "dryRun: true"),
		"--external-metrics", "--external-metrics-address", testutil.FreeAddr(t))
	testutil.Eventually(t, 30*time.Second, "the conflict in the log", logHas(in,
		`"The external metrics APIService routes to another server: HPAs read their external metrics from it, not from prescale`))
	testutil.Eventually(t, 5*time.Second, "the owner in the log", logHas(in, `owner="keda/keda-operator-metrics-apiserver" want="prescale/prescale-external-metrics"`))
	testutil.Eventually(t, 5*time.Second, "the conflict metric", metricIs(in, "prescale_external_metrics_apiservice_conflict", nil, "1",
		func(v float64) bool { return v == 1 }))
}
