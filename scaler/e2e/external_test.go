//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	externalv1beta1 "k8s.io/metrics/pkg/apis/external_metrics/v1beta1"

	"github.com/prescale/prescale/sandbox"
)

// externalValue reads an external metric through the sandbox's aggregator, as the HPA does.
func externalValue(kube kubernetes.Interface, ns, name string) (*resource.Quantity, error) {
	raw, err := kube.CoreV1().RESTClient().Get().
		AbsPath("/apis/external.metrics.k8s.io/v1beta1/namespaces", ns, name).DoRaw(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, raw)
	}
	var list externalv1beta1.ExternalMetricValueList
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, err
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("%d items, want 1", len(list.Items))
	}
	return &list.Items[0].Value, nil
}

// startExternalMetrics runs prescale in dry-run with the external metrics API on a port of
// 127.0.0.1, with a serving certificate from the sandbox CA, and registers its APIService.
// cfg renders the configuration from its extra settings (config, by default).
func startExternalMetrics(t *testing.T, w sandbox.Workload, promURL string, cfg func(extra string) string) *instance {
	t.Helper()
	st, kube := sharedSandbox(t)
	ip, portN := freeHostPort(t)
	addr := net.JoinHostPort(ip.String(), strconv.Itoa(portN))
	const svc = "prescale-external-metrics"
	cert, key, err := st.IssueServingCert(t.TempDir(), svc, ip.String(), svc+"."+w.Namespace+".svc")
	if err != nil {
		t.Fatal(err)
	}
	extra := fmt.Sprintf("dryRun: true\nexternalMetrics: {enabled: true, listenAddress: %q, tls: {certFile: %q, keyFile: %q}}", addr, cert, key)
	if cfg == nil {
		cfg = func(extra string) string { return config(promURL, w, extra) }
	}
	in := startPrescale(t, "ext", cfg(extra))
	ca, err := st.CACertPEM()
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterAPIService(context.Background(), sandbox.APIService{Group: "external.metrics.k8s.io", Version: "v1beta1",
		Namespace: w.Namespace, Service: svc, Host: ip, Port: portN, CABundle: ca}); err != nil {
		t.Fatal(err)
	}
	last := ""
	eventually(t, 60*time.Second, "the external metrics API through the aggregator", func() bool {
		_, err := externalValue(kube, w.Namespace, w.Name+"-queue")
		if err != nil && err.Error() != last { // log each new reason once
			last = err.Error()
			t.Logf("not yet: %v", err)
		}
		return err == nil
	})
	return in
}

// The external metrics API serves the policy's query through the aggregator with the
// engine's milli-units; missing data and the unconfigured forecast are errors; and a real
// HPA on it scales the Deployment.
func TestExternalMetricsHPA(t *testing.T) {
	_, kube := sharedSandbox(t)
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5.0004) // 5.0004 -> 5000m per pod, 10000m summed (not 10000.8 -> 10001m)
	startExternalMetrics(t, w, p.URL(), nil)

	eventually(t, 30*time.Second, "the summed queue, 10", func() bool {
		q, err := externalValue(kube, w.Namespace, w.Name+"-queue")
		return err == nil && q.MilliValue() == 10000
	})
	if _, err := externalValue(kube, w.Namespace, w.Name+"-forecast-replicas"); err == nil || !strings.Contains(err.Error(), "forecast not configured") {
		t.Errorf("forecast metric: error %v, want forecast not configured", err)
	}
	if _, err := externalValue(kube, "default", w.Name+"-queue"); err == nil {
		t.Errorf("another namespace: want an error")
	}

	hpa := externalHPA(w, 12)
	if _, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Create(context.Background(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Surge: 10 per pod on 2 pods sums to 20, over an AverageValue of 5: 4 replicas.
	e.setQueue(10)
	eventually(t, 60*time.Second, "the HPA's scale-up to 4 on the external metric", func() bool { return specReplicas(t, w) == 4 })

	// Prometheus gone: the metric is an error (never 0), and the HPA holds at 4.
	p.Stop(t)
	eventually(t, 30*time.Second, "the HPA to report FailedGetExternalMetric", func() bool {
		h, err := kube.AutoscalingV2().HorizontalPodAutoscalers(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range h.Status.Conditions {
			if c.Type == autoscalingv2.ScalingActive && c.Reason == "FailedGetExternalMetric" {
				return true
			}
		}
		return false
	})
	if _, err := externalValue(kube, w.Namespace, w.Name+"-queue"); err == nil {
		t.Errorf("with Prometheus stopped: want an error, not a value")
	}
	time.Sleep(12 * time.Second) // past the 10 s scale-down window
	if got := specReplicas(t, w); got != 4 {
		t.Errorf("replicas %d with the metric missing, want 4 (held)", got)
	}
}
