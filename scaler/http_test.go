package scaler

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prescale/prescale/policy"
)

// getStatus answers GET path from c's handler: its status code and body.
func getStatus(t *testing.T, c *Controller, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	c.Handler(prometheus.NewRegistry()).ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Code, rec.Body.String()
}

// /status says "not synced" for a policy that no sync has decided yet, rather than
// replicas and a reason of zero: the JSON has synced false and no replicas or reason, the
// table dashes and "not synced". Once synced, a policy at zero shows its zeros: they are
// then a decision.
func TestStatusNotSynced(t *testing.T) {
	cl := newCluster(t, 2)
	cl.source.set("gateway", policy.Sample{Value: 0})
	c := cl.controller(zeroPolicy, options())

	_, body := getStatus(t, c, "/status")
	var got []map[string]any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode /status %q: %v", body, err)
	}
	want := []map[string]any{{"policy": "web", "target": "Deployment default/web", "synced": false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/status before the first sync (-want +got):\n%s", diff)
	}
	_, table := getStatus(t, c, "/status?format=table")
	if row := strings.Fields(strings.Split(table, "\n")[1]); !cmp.Equal(row[:8], []string{"web", "Deployment", "default/web", "-", "-", "-", "-", "not"}) ||
		row[8] != "synced" {
		t.Errorf("the table's row before the first sync: %q, want dashes for the replicas and the reason \"not synced\"", row)
	}

	// As in TestScaleToZeroController: idle from 0 s, at zero from the tick at 60 s; the tick
	// at 75 s decides 0 -> 0, ScaledToZero.
	lead(c)
	cl.tickAt(c, 0)
	cl.tickAt(c, 60*time.Second)
	cl.tickAt(c, 75*time.Second)
	_, body = getStatus(t, c, "/status")
	got = nil
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode /status %q: %v", body, err)
	}
	synced := map[string]any{}
	for _, k := range []string{"synced", "current", "desired", "reason"} {
		synced[k] = got[0][k]
	}
	if diff := cmp.Diff(map[string]any{"synced": true, "current": 0.0, "desired": 0.0, "reason": "ScaledToZero"}, synced); diff != "" {
		t.Errorf("/status of a policy synced at zero (-want +got):\n%s", diff)
	}
	if _, ok := got[0]["hpaEquivalent"]; !ok {
		t.Errorf("/status of a synced policy has no hpaEquivalent: %s", body)
	}
}

// wakePolicy is zeroPolicy with a forecast of its load lq at 10 requests/s per replica:
// with a history of a constant 100 (fakeHistory) and lq at 100 it expects 100 / 10 = 10
// replicas, so wake-ahead (on by default with a forecast) claims the load's return once
// the gateway has been idle for the idle delay, 60 s.
const wakePolicy = zeroPolicy + `    forecast:
      load: {query: lq, perReplica: 10}
      method: holt
`

// wakeCluster serves wakePolicy with an idle gateway and a forecast that expects 10 replicas.
func wakeCluster(t *testing.T) (*cluster, *Controller) {
	cl := newCluster(t, 2)
	cl.history = &fakeHistory{n: 500}
	cl.source.set("gateway", policy.Sample{Value: 0})
	cl.source.set("lq", policy.Sample{Value: 100})
	c := cl.controller(wakePolicy, options())
	lead(c)
	return cl, c
}

// A status, once read, shares nothing with the engine: the wake-ahead claim it shows stays
// the one pending when it was read, while the next ticks judge it and open another.
//
// At 15 s a tick, idle from 0 s: the claim opened at 60 s (idle for the idle delay) is due
// by now + horizon + load step = 60 + (180 start-up + 15 tick + 15 - 15) + 15 = 270 s.
// The first tick after it, 285 s, judges it wrong and opens the next, due by 285 + 210 =
// 495 s.
func TestStatusKeepsItsWakeClaim(t *testing.T) {
	cl, c := wakeCluster(t)
	for at := time.Duration(0); at <= 60*time.Second; at += 15 * time.Second {
		cl.tickAt(c, at)
	}
	kept := c.Status()[0]
	if kept.Wake == nil || kept.Wake.Pending == nil || !kept.Wake.Pending.Equal(epoch.Add(270*time.Second)) {
		t.Fatalf("at 60 s: wake-ahead %+v, want a claim due by 270 s", kept.Wake)
	}
	for at := 75 * time.Second; at <= 285*time.Second; at += 15 * time.Second {
		cl.tickAt(c, at)
	}
	if now := c.Status()[0]; now.Wake == nil || now.Wake.Pending == nil || !now.Wake.Pending.Equal(epoch.Add(495*time.Second)) {
		t.Fatalf("at 285 s: wake-ahead %+v, want the next claim due by 495 s", now.Wake)
	}
	if got := kept.Wake.Pending.Sub(epoch); got != 270*time.Second {
		t.Errorf("the status read at 60 s now says its claim is due by %s, want 270s", got)
	}
}

// /status read while the controller ticks reads nothing the ticks write: run with -race
// (make unit does), a read of the wake-ahead record (or of anything else of the status)
// outside the lock fails it. The ticks run 15 minutes of idle gateway, in which the
// claims are opened, judged wrong and opened again every 225 s (TestStatusKeepsItsWakeClaim).
func TestStatusDuringTicks(t *testing.T) {
	cl, c := wakeCluster(t)
	h := c.Handler(prometheus.NewRegistry())
	done := make(chan struct{})
	reads := make(chan int)
	go func() {
		n := 0
		defer func() { reads <- n }()
		for {
			select {
			case <-done:
				return
			default:
			}
			for _, path := range []string{"/status", "/status?format=table"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				if rec.Code != 200 {
					t.Errorf("GET %s: %d %s", path, rec.Code, rec.Body)
				}
			}
			n++
		}
	}()
	for at := time.Duration(0); at <= 15*time.Minute; at += 15 * time.Second {
		cl.tickAt(c, at)
	}
	close(done)
	if n := <-reads; n == 0 {
		t.Error("no /status read ran during the ticks: the case tests nothing")
	}
	if st := c.Status()[0]; st.Wake == nil || st.Wake.Judged == 0 {
		t.Errorf("wake-ahead after 15 minutes: %+v, want judged claims: the case does not test the claims", st.Wake)
	}
}
