package scaler

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

// LeaderOptions configure leader election on a Lease.
type LeaderOptions struct {
	Enabled       bool
	Namespace     string
	Name          string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// HotStandby makes a follower decide every tick as the leader does, without writing
	// (no scale, annotation or event): it serves the forecast's external metric, and takes
	// over with warm stabilization windows and forecasts. It doubles the queries.
	HotStandby bool
}

// DefaultLeaderOptions are client-go's usual timings.
func DefaultLeaderOptions() LeaderOptions {
	return LeaderOptions{Enabled: true, Namespace: "default", Name: "prescale",
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// Run ticks while this instance leads, until ctx ends. Without leader election it leads at
// once. With it, a follower keeps its caches warm and campaigns again after losing the lease;
// on losing it, the ticking context is cancelled, so no further write starts. When ctx ends
// (SIGTERM), a held lease is released.
func (c *Controller) Run(ctx context.Context, kube kubernetes.Interface, lo LeaderOptions) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	if !lo.Enabled {
		c.Lead(ctx)
		return nil
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: lo.Namespace, Name: lo.Name},
		Client:     kube.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.opts.Identity},
	}
	logger := klog.FromContext(ctx)
	if lo.HotStandby {
		go c.standby(ctx)
	}
	for ctx.Err() == nil {
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   lo.LeaseDuration,
			RenewDeadline:   lo.RenewDeadline,
			RetryPeriod:     lo.RetryPeriod,
			ReleaseOnCancel: true,
			Name:            lo.Name,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					logger.Info("Became the leader", "identity", c.opts.Identity, "lease", klog.KRef(lo.Namespace, lo.Name))
					c.Lead(ctx)
				},
				OnStoppedLeading: func() {
					// The lease's context, Lead's, is cancelled before this runs: the
					// right to write ended with it.
					logger.Info("Stopped leading", "identity", c.opts.Identity)
				},
				OnNewLeader: func(id string) {
					if id != c.opts.Identity {
						logger.Info("Following", "leader", id)
					}
				},
			},
		})
		if err != nil {
			return fmt.Errorf("set up leader election: %w", err)
		}
		le.Run(ctx)
	}
	return nil
}

// standby ticks every interval while this instance does not lead, until ctx ends: a hot
// standby decides and reports without writing (sync writes only while leading).
func (c *Controller) standby(ctx context.Context) {
	t := c.deps.Clock.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if !c.Leading() {
			c.Tick(ctx)
		}
	}
}
