package scaler

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// APIServer is the API server the controller's clients talk to, as Start names and checks
// it while the informer caches have not synced: client-go's informers retry a server they
// cannot reach without a word at the default verbosity.
type APIServer struct {
	// Host is the server's host:port, never credentials.
	Host string
	// Check asks the server for what any client may read (GET /version); nil when it
	// answers.
	Check func(ctx context.Context) error
}

// ErrNotSynced is Start's error when ctx ends before the informer caches have synced; the
// error wrapping it says why they had not (test it with errors.Is).
var ErrNotSynced = errors.New("stopped before the informer caches synced")

// While the caches have not synced, Start checks the API server every syncCheckPeriod (each
// check within syncCheckTimeout) and warns at most every syncWarnPeriod: at once when the
// server cannot be reached or answers an error, after syncWarnPeriod when it answers but
// the caches still wait (RBAC: list and watch of what they cache).
const (
	syncCheckPeriod  = 5 * time.Second
	syncCheckTimeout = 5 * time.Second
	syncWarnPeriod   = 30 * time.Second
)

// informer is one informer the controller waits for, by the resource it caches.
type informer struct {
	resource string
	synced   cache.InformerSynced
}

// unsynced names the informers whose caches have not synced.
func (c *Controller) unsynced() []string {
	var out []string
	for _, in := range c.informers {
		if !in.synced() {
			out = append(out, in.resource)
		}
	}
	return out
}

// syncCheck is what Start's checks of the API server found, for its warnings, /readyz and
// the error of a stop before the caches synced.
type syncCheck struct {
	mu      sync.Mutex
	checked bool  // a check ended
	reached bool  // a check got an answer from the server (an error status counts)
	err     error // the last check's error, nil when it answered /version
}

func (s *syncCheck) set(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked, s.err = true, err
	if !unreachable(err) {
		s.reached = true
	}
}

// unreachable reports whether err is a check's that got no answer from the server (a
// refused connection, a timeout, a TLS failure), not an answer of an error status.
func unreachable(err error) bool {
	var status apierrors.APIStatus
	return err != nil && !errors.As(err, &status)
}

func (s *syncCheck) get() (checked, reached bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checked, s.reached, s.err
}

// waitForSync waits until the informers' caches have synced, checking the API server and
// warning meanwhile (syncCheckPeriod), or until ctx ends: then it returns ErrNotSynced,
// wrapped in why.
func (c *Controller) waitForSync(ctx context.Context) error {
	funcs := make([]cache.InformerSynced, len(c.informers))
	for i, in := range c.informers {
		funcs[i] = in.synced
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { c.checkUntilSynced(ctx, stop) })
	synced := cache.WaitForCacheSync(ctx.Done(), funcs...)
	close(stop)
	wg.Wait()
	if synced {
		return nil
	}
	return c.notSynced()
}

// checkUntilSynced checks the API server every syncCheckPeriod until stop or ctx ends, and
// warns of a server that cannot be reached (or answers errors), or of caches that still
// wait, at most every syncWarnPeriod.
func (c *Controller) checkUntilSynced(ctx context.Context, stop <-chan struct{}) {
	logger := klog.FromContext(ctx)
	start := c.deps.Clock.Now()
	t := c.deps.Clock.NewTicker(syncCheckPeriod)
	defer t.Stop()
	var warned time.Time
	for {
		// The check is timed by its tick, not by when it ends: a check that answers late
		// does not move the warnings' clock.
		var now time.Time
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case now = <-t.C():
		}
		var err error
		if s := c.deps.APIServer; s != nil && s.Check != nil {
			cctx, cancel := context.WithTimeout(ctx, syncCheckTimeout)
			err = s.Check(cctx)
			cancel()
			if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return // stopped during the check: its error says nothing of the server
			}
			c.syncCheck.set(err)
		}
		waited := now.Sub(start).Round(time.Second)
		if !warned.IsZero() && now.Sub(warned) < syncWarnPeriod {
			continue
		}
		switch {
		case unreachable(err):
			logger.Error(err, "Cannot reach the API server; the informer caches have not synced", "server", c.serverHost(), "waited", waited)
		case err != nil:
			logger.Error(err, "The API server answers with an error; the informer caches have not synced", "server", c.serverHost(), "waited", waited)
		case now.Sub(start) >= syncWarnPeriod:
			logger.Info("The API server answers, but the informer caches have not synced: can prescale list and watch them?",
				"server", c.serverHost(), "waited", waited, "waitingFor", c.unsynced())
		default:
			continue
		}
		warned = now
	}
}

// serverHost is the API server's host:port as messages name it.
func (c *Controller) serverHost() string {
	if s := c.deps.APIServer; s != nil && s.Host != "" {
		return s.Host
	}
	return "(unknown)"
}

// notSynced is ErrNotSynced wrapped in why the caches had not synced, as far as the checks
// of the API server tell.
func (c *Controller) notSynced() error {
	checked, reached, err := c.syncCheck.get()
	host := c.serverHost()
	switch {
	case !checked:
		return fmt.Errorf("%w: waiting for %s", ErrNotSynced, strings.Join(c.unsynced(), ", "))
	case !reached:
		return fmt.Errorf("%w: the API server %s was never reached: %w", ErrNotSynced, host, err)
	case unreachable(err):
		return fmt.Errorf("%w: the API server %s cannot be reached: %w", ErrNotSynced, host, err)
	case err != nil:
		return fmt.Errorf("%w: the API server %s answers with an error: %w", ErrNotSynced, host, err)
	}
	return fmt.Errorf("%w: the API server %s answers, but the caches of %s did not sync: can prescale list and watch them?",
		ErrNotSynced, host, strings.Join(c.unsynced(), ", "))
}

// notReady says why the controller is not ready, for /readyz: the caches have not synced,
// and what the last check of the API server found.
func (c *Controller) notReady() string {
	msg := "informer caches not synced"
	switch _, _, err := c.syncCheck.get(); {
	case unreachable(err):
		msg += fmt.Sprintf(": cannot reach the API server %s: %v", c.serverHost(), err)
	case err != nil:
		msg += fmt.Sprintf(": the API server %s answers with an error: %v", c.serverHost(), err)
	}
	return msg
}
