package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

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
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
