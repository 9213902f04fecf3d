package demo

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/scaler"
	"github.com/prescale/prescale/scaler/prom"
)

//go:embed policy.yaml
var policyYAML []byte

// startPrescale runs the prescale controller in this process against the sandbox, ticking
// every tick (real time), until the returned stop is called.
func startPrescale(ctx context.Context, cfg *rest.Config, promURL string, tick time.Duration, compression float64) (func(), error) {
	pf, err := policy.Parse(bytes.NewReader(policyYAML))
	if err != nil {
		return nil, fmt.Errorf("demo policy: %w", err)
	}
	source, err := prom.New(prom.Options{URL: promURL, Timeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	opts := scaler.DefaultOptions()
	opts.Interval = tick
	opts.Staleness = 10 * time.Second
	opts.Identity = "prescale-demo"
	// The demo tells its own story; the controller's logs would interleave with it.
	cctx, cancel := context.WithCancel(klog.NewContext(ctx, logr.Discard()))
	c, kube, _, stopEvents, err := scaler.NewForConfig(cctx, rest.CopyConfig(cfg), opts, source, prom.Kind, prometheus.NewRegistry(), pf.Policies)
	if err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(cctx, kube, scaler.LeaderOptions{})
	}()
	return func() {
		cancel()
		<-done
		stopEvents()
	}, nil
}
