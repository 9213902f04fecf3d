package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/scaler"
	"github.com/prescale/prescale/scaler/external"
)

// serveHTTP serves h (/metrics, /healthz, /readyz, /status) on addr in the background. It
// returns the address listened on and a function that shuts the server down, waiting up to
// 5 seconds for requests in flight.
func serveHTTP(ctx context.Context, addr string, h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := newHTTPServer(h)
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			klog.FromContext(ctx).Error(err, "HTTP server stopped")
		}
	}()
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	return ln.Addr().String(), stop, nil
}

// The HTTP server's timeouts. Its requests are small GETs (probes, scrapes, prescale status)
// and its answers are produced in milliseconds, so a connection that takes longer is a
// slow or stuck client, which must not hold a connection and its goroutine for ever.
const (
	// httpReadHeaderTimeout bounds reading a request's headers, httpReadTimeout the whole
	// request (headers and body).
	httpReadHeaderTimeout = 10 * time.Second
	httpReadTimeout       = 30 * time.Second
	// httpWriteTimeout bounds a request from the end of its headers to the end of the
	// answer: ample for /metrics of a thousand policies to a slow scraper.
	httpWriteTimeout = time.Minute
	// httpIdleTimeout closes a keep-alive connection idle this long: beyond a 1-minute
	// scrape interval, so that a scraper reuses its connection.
	httpIdleTimeout = 2 * time.Minute
)

// newHTTPServer returns the server of h with the timeouts above.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: httpReadHeaderTimeout, ReadTimeout: httpReadTimeout,
		WriteTimeout: httpWriteTimeout, IdleTimeout: httpIdleTimeout}
}

// serveExternalMetrics starts the external metrics API over the controller's policies and
// source; if the server stops on its own, it cancels ctx with the reason.
func serveExternalMetrics(ctx context.Context, cancel context.CancelCauseFunc, s Settings, kubeconfig string,
	source scaler.MetricSource, c *scaler.Controller) error {
	p, err := external.NewProvider(external.Options{Source: source, Policies: c.Policies, Staleness: s.Staleness, Forecasts: c})
	if err != nil {
		return err
	}
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	o := external.ServeOptions{Address: s.ExternalMetrics.ListenAddress, CertFile: s.ExternalMetrics.TLS.CertFile,
		KeyFile: s.ExternalMetrics.TLS.KeyFile, Kubeconfig: kubeconfig}
	go func() {
		err := external.Serve(ctx, o, p)
		if err == nil {
			err = errors.New("external metrics server stopped")
		}
		if ctx.Err() == nil {
			cancel(err)
		}
	}()
	klog.FromContext(ctx).Info("Serving the external metrics API", "address", o.Address)
	return nil
}

// apiServiceTimeout bounds the start-up read of the APIService.
const apiServiceTimeout = 10 * time.Second

// checkAPIService reads, once at start-up, where the APIService
// v1beta1.external.metrics.k8s.io routes. Another owner (KEDA, prometheus-adapter) receives
// the HPAs' external metrics requests instead of prescale: it logs an error naming that owner
// and sets conflict to 1. prescale keeps running: its own scaling does not go through the
// API. A missing APIService is logged too; a failed read is logged and leaves conflict at 0.
func checkAPIService(ctx context.Context, client dynamic.Interface, own ServiceSettings, conflict prometheus.Gauge) {
	logger := klog.FromContext(ctx)
	ctx, cancel := context.WithTimeout(ctx, apiServiceTimeout)
	defer cancel()
	owner, route, err := external.APIServiceOwner(ctx, client)
	want := types.NamespacedName{Namespace: own.Namespace, Name: own.Name}
	switch {
	case err != nil:
		logger.Error(err, "Cannot check who owns the external metrics APIService", "apiService", external.APIServiceName, "want", want)
	case route == external.RouteAbsent:
		logger.Info("No external metrics APIService: HPAs cannot read prescale's external metrics until one routes to its Service",
			"apiService", external.APIServiceName, "want", want)
	case route == external.RouteLocal || owner != want:
		conflict.Set(1)
		logger.Error(nil, "The external metrics APIService routes to another server: HPAs read their external metrics from it, not from prescale; only one server may own it (docs/external-metrics.md)",
			"apiService", external.APIServiceName, "owner", ownerName(owner, route), "want", want)
	default:
		logger.Info("The external metrics APIService routes to prescale", "apiService", external.APIServiceName, "service", want)
	}
}

// ownerName is the owner as logged: "namespace/name", or "local" for an APIService the API
// server serves itself.
func ownerName(owner types.NamespacedName, route external.Route) string {
	if route == external.RouteLocal {
		return "local"
	}
	return owner.String()
}

// withProfiling serves Go's profiles (net/http/pprof: heap, goroutine, CPU, trace, ...)
// under /debug/pprof/, and everything else from h: for `prescale run --profiling`, to see
// where a controller's memory or time goes (docs/operations.md).
func withProfiling(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}
