package scaler

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/prescale/prescale/policy"
)

// NewForConfig builds a controller and every client it needs from a REST configuration:
// the typed, dynamic and scale clients, a discovery-backed REST mapper, and an event
// recorder that writes to the API. A source that is also a HistorySource (prom.Source)
// loads the forecasts' history, and one that is also a LatencySource samples the objectives'
// latency. It registers its metrics with reg. Call the returned stop
// function when done, to flush the events.
func NewForConfig(ctx context.Context, cfg *rest.Config, opts Options, source MetricSource, errorKind func(error) string,
	reg prometheus.Registerer, policies []policy.Policy) (*Controller, kubernetes.Interface, *Metrics, func(), error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("kubernetes client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("dynamic client: %w", err)
	}
	cached := memory.NewMemCacheClient(kube.Discovery())
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	scales, err := scale.NewForConfig(cfg, mapper, dynamic.LegacyAPIPathResolverFunc, scale.NewDiscoveryScaleKindResolver(cached))
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("scale client: %w", err)
	}
	metrics := NewMetrics(reg)
	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: kube.CoreV1().Events("")})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "prescale"})
	history, _ := source.(HistorySource)
	latency, _ := source.(LatencySource)
	server := &APIServer{Host: apiServerHost(cfg.Host), Check: func(ctx context.Context) error {
		return kube.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error()
	}}
	c, err := New(opts, Deps{Kube: kube, Dynamic: dyn, Scales: scales, Mapper: mapper, Source: source, History: history, Latency: latency,
		Clock: clock.RealClock{}, Recorder: recorder, Metrics: metrics, ErrorKind: errorKind, APIServer: server}, policies)
	if err != nil {
		broadcaster.Shutdown()
		return nil, nil, nil, nil, err
	}
	return c, kube, metrics, broadcaster.Shutdown, nil
}

// apiServerHost is the host:port of a REST configuration's Host (a URL, or a bare
// host:port), without the credentials a URL may carry: the API server as messages name it.
func apiServerHost(host string) string {
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		return "(a host that does not parse)"
	}
	return u.Host
}
