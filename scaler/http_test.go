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
