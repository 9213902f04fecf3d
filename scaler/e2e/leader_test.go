//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prescale/prescale/internal/testutil"
)

// holderLog records who held the Lease when, polling every 100 ms.
type holderLog struct {
	mu      sync.Mutex
	changes []holderChange
}

type holderChange struct {
	at     time.Time
	holder string
}

func (h *holderLog) watch(ctx context.Context, t *testing.T, ns string) {
	_, kube := sharedSandbox(t)
	go func() {
		last := ""
		for ctx.Err() == nil {
			l, err := kube.CoordinationV1().Leases(ns).Get(ctx, "prescale", metav1.GetOptions{})
			if err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != last {
				last = *l.Spec.HolderIdentity
				at := time.Now()
				if l.Spec.AcquireTime != nil {
					at = l.Spec.AcquireTime.Time // the new holder's own clock: same machine
				}
				h.mu.Lock()
				h.changes = append(h.changes, holderChange{at: at, holder: last})
				h.mu.Unlock()
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

func (h *holderLog) current() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.changes) == 0 {
		return ""
	}
	return h.changes[len(h.changes)-1].holder
}

// since returns when holder last took the lease.
func (h *holderLog) since(holder string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var at time.Time
	for _, c := range h.changes {
		if c.holder == holder {
			at = c.at
		}
	}
	return at
}

// scaleWrite is one write of a scale subresource, from the API server's audit log.
type scaleWrite struct {
	at        time.Time
	userAgent string
}

// auditedScaleWrites reads the sandbox's audit log for writes of the namespace's scale
// subresources since a time.
func auditedScaleWrites(t *testing.T, ns string, since time.Time) []scaleWrite {
	t.Helper()
	var out []scaleWrite
	for _, ev := range auditEvents(t) {
		if ev.Stage == "ResponseComplete" && ev.ObjectRef.Namespace == ns && ev.ObjectRef.Subresource == "scale" &&
			(ev.Verb == "update" || ev.Verb == "patch") && ev.ResponseStatus.Code < 300 && !ev.StageTimestamp.Before(since) {
			out = append(out, scaleWrite{at: ev.StageTimestamp, userAgent: ev.UserAgent})
		}
	}
	return out
}

// auditEvents reads the sandbox API server's audit log (the policy is in
// sandbox.auditPolicyYAML).
func auditEvents(t *testing.T) []auditEvent {
	t.Helper()
	st, _ := sharedSandbox(t)
	f, err := os.Open(filepath.Join(st.Dir, "logs", "audit.log"))
	if err != nil {
		t.Fatalf("open the API server's audit log: %v", err)
	}
	defer f.Close()
	var out []auditEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev auditEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			out = append(out, ev)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read the audit log: %v", err)
	}
	return out
}

// 4: two prescale processes: exactly one writes; kill -9 the leader and the other takes over
// within the lease duration plus one tick; no write ever comes from a non-leader (the API
// server's audit log says who wrote when).
func TestLeaderElection(t *testing.T) {
	start := time.Now() // with -count > 1 the namespace, and its audit trail, is reused
	w := workload(t, "llm", 1, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var holders holderLog
	holders.watch(ctx, t, w.Namespace)
	cfg := config(p.URL(), w, "")
	a := startPrescale(t, "prescale-a", cfg)
	b := startPrescale(t, "prescale-b", cfg)
	eventually(t, 20*time.Second, "a leader", func() bool { return holders.current() != "" })
	byID := map[string]*instance{a.identity: a, b.identity: b}
	leader := byID[holders.current()]
	follower := a
	if leader == a {
		follower = b
	}
	if v, _ := follower.metric("prescale_leader", nil); v != 0 {
		t.Errorf("follower %s reports prescale_leader %v", follower.identity, v)
	}

	e.setQueue(10) // 1 -> 2 (and on while the queue stays high)
	eventually(t, 20*time.Second, "the leader's scale-up", func() bool { return specReplicas(t, w) >= 2 })
	e.setQueue(5) // at target: hold
	// Once the leader reports the queue at target, its tick that saw it has written, and
	// the ticks after it hold.
	waitMetric(t, leader, w, 5)
	before := specReplicas(t, w)

	killed := time.Now()
	leader.kill()
	eventually(t, 15*time.Second, "the follower to take the lease", func() bool { return holders.current() == follower.identity })
	took := holders.since(follower.identity).Sub(killed)
	// The follower polls the Lease every retryPeriod (200 ms) with up to 120% jitter: it
	// sees the last renewal at most 440 ms late and the expiry at most 440 ms late, so it
	// holds the Lease (its acquireTime) at most 4.88 s after the kill: within the lease
	// duration (4 s) plus one tick (1 s).
	if took > 5*time.Second {
		t.Errorf("takeover took %s, want within the lease duration plus one tick (5s)", took)
	}
	t.Logf("%s took over %s after %s was killed", follower.identity, took.Round(time.Millisecond), leader.identity)
	e.setQueue(10) // scale up again, now by the new leader
	eventually(t, 20*time.Second, "the new leader's scale-up", func() bool { return specReplicas(t, w) > before })

	// Every write came from the instance holding the lease at the time. The API server logs
	// a write's audit event as the response completes, so the new leader's write, seen in
	// the Deployment, may not be in the log yet: await it.
	var writes []scaleWrite
	testutil.Eventually(t, 20*time.Second, "a write of each leader in the audit log", func() error {
		writes = auditedScaleWrites(t, w.Namespace, start)
		by := map[string]int{}
		for _, wr := range writes {
			for _, in := range []*instance{leader, follower} {
				if strings.HasPrefix(wr.userAgent, "prescale/"+in.identity) {
					by[in.identity]++
				}
			}
		}
		if by[leader.identity] == 0 || by[follower.identity] == 0 {
			return fmt.Errorf("%d scale writes audited in %s, by instance %v", len(writes), w.Namespace, by)
		}
		return nil
	})
	followerSince := holders.since(follower.identity)
	for _, wr := range writes {
		switch {
		case strings.HasPrefix(wr.userAgent, "prescale/"+leader.identity):
			if wr.at.After(killed) {
				t.Errorf("write by %s at %s, after it was killed", leader.identity, wr.at)
			}
		case strings.HasPrefix(wr.userAgent, "prescale/"+follower.identity):
			if wr.at.Before(followerSince.Add(-200 * time.Millisecond)) {
				t.Errorf("write by %s at %s, before it took the lease at %s", follower.identity, wr.at, followerSince)
			}
		default:
			if strings.HasPrefix(wr.userAgent, "prescale") {
				t.Errorf("write by an unknown prescale %q", wr.userAgent)
			}
		}
	}
	t.Logf("%d scale writes audited, all from the lease holder", len(writes))
}

// With leaderElection.hotStandby, a follower decides every tick as the leader does and
// writes nothing: it serves <policy>-forecast-replicas (any replica behind the APIService
// answers an HPA), its gauges follow the leader's, and every scale write is the leader's.
func TestHotStandby(t *testing.T) {
	_, kube := sharedSandbox(t)
	w, p := rampingWorkload(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var holders holderLog
	holders.watch(ctx, t, w.Namespace)
	hot := func(extra string) string {
		return strings.Replace(forecastConfig(p.URL(), w, extra), "retryPeriod: 200ms}", "retryPeriod: 200ms, hotStandby: true}", 1)
	}
	start := time.Now()
	leader := startPrescale(t, "prescale-a", hot(""))
	eventually(t, 20*time.Second, "prescale-a to lead", func() bool { return holders.current() == leader.identity })
	// The follower serves the external metrics API, and would write (no dry-run) if it led.
	follower := startExternalMetrics(t, w, p.URL(), func(extra string) string {
		return hot(strings.Replace(extra, "dryRun: true", "dryRun: false", 1))
	})
	labels := map[string]string{"policy": w.Name}
	if v, ok := follower.metric("prescale_leader", nil); !ok || v != 0 {
		t.Fatalf("the follower reports prescale_leader %v (present %v), want 0", v, ok)
	}
	var last string
	eventually(t, 40*time.Second, "the follower's forecast through the external metrics API", func() bool {
		q, err := externalValue(kube, w.Namespace, w.Name+"-forecast-replicas")
		want, ok := follower.metric("prescale_forecast_replicas", labels)
		last = fmt.Sprintf("external %v (error %v), follower's metric %v (present %v)", q, err, want, ok)
		return err == nil && ok && float64(q.Value()) == want && want > 2
	})
	t.Logf("%s", last)
	// Both decide on the same data: the follower's desired replicas meet the leader's
	// (read a tick or two apart: retry).
	eventually(t, 20*time.Second, "the follower's decision to match the leader's", func() bool {
		a, ok1 := leader.metric("prescale_desired_replicas", labels)
		b, ok2 := follower.metric("prescale_desired_replicas", labels)
		last = fmt.Sprintf("leader %v, follower %v", a, b)
		return ok1 && ok2 && a == b
	})
	t.Logf("desired replicas: %s", last)
	// The API server logs a write's audit event as the response completes: await it.
	var writes []scaleWrite
	testutil.Eventually(t, 20*time.Second, "the leader's scale-up of the rising load in the audit log", func() error {
		if writes = auditedScaleWrites(t, w.Namespace, start); len(writes) == 0 {
			return fmt.Errorf("no scale write audited in %s since %s", w.Namespace, start.Format(time.RFC3339Nano))
		}
		return nil
	})
	for _, wr := range writes {
		if !strings.HasPrefix(wr.userAgent, "prescale/"+leader.identity) {
			t.Errorf("scale written by %q at %s, want only the leader %s", wr.userAgent, wr.at, leader.identity)
		}
	}
	t.Logf("%d scale writes, all by the leader", len(writes))
}

// A lease lost by a failed renewal (another holder took it over while prescale led and
// wrote every tick), not by a kill: from the moment prescale gives the lease up, it writes
// nothing, neither the scale, nor the decision annotation, nor an event (the API server's
// audit log says who wrote what when), its hot standby included.
func TestLeaseLostByAFailedRenewalWritesNothing(t *testing.T) {
	start := time.Now()
	w := workload(t, "llm", 1, 1, 0)
	_, kube := sharedSandbox(t)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(40) // above target: a scale-up each tick, and a decision annotation each tick
	cfg := strings.Replace(config(p.URL(), w, ""), "retryPeriod: 200ms}", "retryPeriod: 200ms, hotStandby: true}", 1)
	a := startPrescale(t, "prescale-a", cfg)
	testutil.Eventually(t, 30*time.Second, "prescale to lead and write", func() error {
		if got := specReplicas(t, w); got < 2 {
			return fmt.Errorf("replicas %d", got)
		}
		return nil
	})

	// Take the lease over: prescale's next renewal finds another holder, and it gives the
	// lease up at its renew deadline (3 s).
	// prescale renews every 200 ms: retry on its conflicting updates.
	testutil.Eventually(t, 10*time.Second, "the lease taken over", func() error {
		l, err := kube.CoordinationV1().Leases(w.Namespace).Get(context.Background(), "prescale", metav1.GetOptions{})
		if err != nil {
			return err
		}
		thief, long := "thief", int32(3600)
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.AcquireTime, l.Spec.RenewTime = &thief, &long, &now, &now
		_, err = kube.CoordinationV1().Leases(w.Namespace).Update(context.Background(), l, metav1.UpdateOptions{})
		return err
	})
	testutil.Eventually(t, 20*time.Second, "prescale to stop leading", metricIs(a, "prescale_leader", nil, "0", func(v float64) bool { return v == 0 }))
	lost := a.logTime(t, "Stopped leading")
	// Keep it wanting to write for a while: every tick of its hot standby decides a scale-up.
	e.setQueue(80)
	time.Sleep(5 * time.Second)

	var before int
	for _, ev := range auditEvents(t) {
		if ev.Stage != "ResponseComplete" || ev.ObjectRef.Namespace != w.Namespace || !strings.HasPrefix(ev.UserAgent, "prescale/"+a.identity) ||
			ev.ObjectRef.Resource == "leases" || ev.StageTimestamp.Before(start) {
			continue
		}
		switch ev.Verb {
		case "create", "update", "patch", "delete":
		default:
			continue
		}
		if ev.StageTimestamp.After(lost) {
			t.Errorf("%s %s/%s by prescale at %s, after it gave the lease up at %s", ev.Verb, ev.ObjectRef.Resource, ev.ObjectRef.Subresource,
				ev.StageTimestamp.Format(time.RFC3339Nano), lost.Format(time.RFC3339Nano))
		} else {
			before++
		}
	}
	if before == 0 {
		t.Error("no write by prescale audited before the lease was lost: the test saw nothing")
	}
	t.Logf("%d writes by prescale while it led; none after it gave the lease up at %s", before, lost.Format(time.RFC3339Nano))
}
