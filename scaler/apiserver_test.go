package scaler

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"
)

// startup is a controller whose pods' cache never syncs (listing pods is forbidden), whose
// API server check answers what the test sends on results, on a fake clock, with the log
// of Start and /readyz's answer at hand.
type startup struct {
	t       *testing.T
	c       *Controller
	clock   *clocktesting.FakeClock
	results chan error
	mu      sync.Mutex
	logs    []string
	done    chan error // Start's error
	cancel  context.CancelFunc
}

func newStartup(t *testing.T) *startup {
	s := &startup{t: t, clock: clocktesting.NewFakeClock(epoch), results: make(chan error), done: make(chan error, 1)}
	kube := kubefake.NewClientset()
	kube.PrependReactor("list", "pods", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("RBAC: no list"))
	})
	server := &APIServer{Host: "api.example:6443", Check: func(ctx context.Context) error {
		select {
		case err := <-s.results:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
	c, err := New(options(), Deps{Kube: kube, Clock: s.clock, Metrics: NewMetrics(prometheus.NewRegistry()), APIServer: server}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	ctx, cancel := context.WithCancel(klog.NewContext(t.Context(), funcr.New(func(_, args string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.logs = append(s.logs, args)
	}, funcr.Options{})))
	s.cancel = cancel
	go func() { s.done <- c.Start(ctx) }()
	// The other caches sync at once.
	for deadline := time.Now().Add(10 * time.Second); !slices.Equal(c.unsynced(), []string{"pods"}); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("caches not synced after 10 s: %q, want only pods", c.unsynced())
		}
	}
	return s
}

// check steps the clock to the next check (5 s on) and answers it with err; it returns once
// the check has it.
func (s *startup) check(err error) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !s.clock.HasWaiters() { // the ticker exists
		if time.Now().After(deadline) {
			s.t.Fatal("Start never waits on the clock")
		}
		time.Sleep(time.Millisecond)
	}
	s.clock.Step(syncCheckPeriod)
	select {
	case s.results <- err:
	case <-time.After(10 * time.Second):
		s.t.Fatal("no check of the API server 5 s on")
	}
}

// stop ends Start's context and returns its error, once it has returned: every warning it
// wrote is logged by then.
func (s *startup) stop() error {
	s.t.Helper()
	s.cancel()
	select {
	case err := <-s.done:
		return err
	case <-time.After(10 * time.Second):
		s.t.Fatal("Start did not return 10 s after its context ended")
		return nil
	}
}

// readyz waits (10 s at most) for /readyz to answer code and body: the check's outcome is
// recorded by Start's goroutine after the check has its answer.
func (s *startup) readyz(code int, body string) {
	s.t.Helper()
	var gotCode int
	var gotBody string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if gotCode, gotBody = getStatus(s.t, s.c, "/readyz"); gotCode == code && gotBody == body {
			return
		}
	}
	s.t.Errorf("/readyz: %d %q, want %d %q", gotCode, gotBody, code, body)
}

// warnings returns the log lines that contain the message msg.
func (s *startup) warnings(msg string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.logs {
		if strings.Contains(l, `"msg"="`+msg+`"`) {
			out = append(out, l)
		}
	}
	return out
}

var refused = &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}

// While the caches have not synced, Start checks the API server every 5 s and warns at
// most every 30 s: at once that it cannot be reached, naming it and the error; once it
// answers, that the caches still wait and which, after 30 s of waiting. /readyz says why it
// is not ready. Stopped, Start says what the checks found.
func TestStartWarnsWhileCachesWait(t *testing.T) {
	s := newStartup(t)
	s.check(refused) // 5 s: warned
	s.readyz(503, "informer caches not synced: cannot reach the API server api.example:6443: dial tcp: connect: connection refused\n")
	s.check(refused) // 10 s: 5 s after the warning, none
	for range 5 {    // 15 to 35 s: answered; at 35 s, 30 s after the warning: warned
		s.check(nil)
	}
	s.readyz(503, "informer caches not synced\n")
	err := s.stop()
	unreachable := s.warnings("Cannot reach the API server; the informer caches have not synced")
	if len(unreachable) != 1 || !strings.Contains(unreachable[0], `"server"="api.example:6443" "waited"="5s"`) ||
		!strings.Contains(unreachable[0], `"error"="dial tcp: connect: connection refused"`) {
		t.Errorf("warnings of a server that cannot be reached: %q, want one at 5 s naming the server and the error", unreachable)
	}
	waiting := s.warnings("The API server answers, but the informer caches have not synced: can prescale list and watch them?")
	if len(waiting) != 1 || !strings.Contains(waiting[0], `"waited"="35s" "waitingFor"=["pods"]`) {
		t.Errorf("warnings of caches that wait: %q, want one at 35 s naming pods", waiting)
	}
	if !errors.Is(err, ErrNotSynced) || err.Error() != "stopped before the informer caches synced: the API server api.example:6443 answers, but the caches of pods did not sync: can prescale list and watch them?" {
		t.Errorf("Start = %v", err)
	}
}

// Stopped before its caches synced, Start says what its checks of the API server found.
func TestStartStoppedBeforeSync(t *testing.T) {
	for _, tc := range []struct {
		name   string
		checks []error
		want   string
	}{
		{name: "no check yet", want: "stopped before the informer caches synced: waiting for pods"},
		{name: "never reached", checks: []error{refused, refused},
			want: "stopped before the informer caches synced: the API server api.example:6443 was never reached: dial tcp: connect: connection refused"},
		{name: "reached, then no more", checks: []error{nil, refused},
			want: "stopped before the informer caches synced: the API server api.example:6443 cannot be reached: dial tcp: connect: connection refused"},
		{name: "an answer of an error is reached", checks: []error{apierrors.NewUnauthorized("token expired")},
			want: "stopped before the informer caches synced: the API server api.example:6443 answers with an error: token expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStartup(t)
			for _, err := range tc.checks {
				s.check(err)
			}
			if err := s.stop(); !errors.Is(err, ErrNotSynced) || err.Error() != tc.want {
				t.Errorf("Start = %v, want %s", err, tc.want)
			}
		})
	}
}

// The API server as messages name it: host:port of the configuration's Host, whether a URL
// or a bare host:port, and never the credentials a URL carries.
func TestAPIServerHost(t *testing.T) {
	for host, want := range map[string]string{
		"https://10.96.0.1:443":                  "10.96.0.1:443",
		"https://admin:s3cret@kube.example:6443": "kube.example:6443",
		"https://kube.example/prefix":            "kube.example",
		"127.0.0.1:6443":                         "127.0.0.1:6443",
		"https://kube example":                   "(a host that does not parse)",
	} {
		if got := apiServerHost(host); got != want {
			t.Errorf("apiServerHost(%q) = %q, want %q", host, got, want)
		}
	}
}
