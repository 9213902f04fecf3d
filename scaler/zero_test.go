package scaler

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prescale/prescale/policy"
)

// zeroPolicy is webPolicy at minReplicas 0 with scaleToZero on the query gateway: 20
// requests/s per replica, idle delay 60 s.
const zeroPolicy = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    minReplicas: 0
    maxReplicas: 10
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 0}
    scaleToZero:
      activation: {query: gateway, perReplica: 20}
      idleDelay: 60s
`

// TestScaleToZeroController: at 2 replicas with no load and an idle gateway the target
// goes to zero once the gateway has been idle for 60 s; a missing gateway sample holds
// zero and says so; 90 requests/s wake it straight to ceil(90 / 20) = 5 replicas (the
// scale-up policy would allow 4 from zero).
func TestScaleToZeroController(t *testing.T) {
	cl := newCluster(t, 2)
	cl.source.set("gateway", policy.Sample{Value: 0})
	c := cl.controller(zeroPolicy, options())
	lead(c)
	// Idle from the tick at 0 s: the floor of one replica until 60 s.
	cl.tickAt(c, 0)
	cl.tickAt(c, 30*time.Second)
	if got := cl.replicas(); got != 1 {
		t.Fatalf("idle 30 s of 60: %d replicas, want 1", got)
	}
	if got := testutil.ToFloat64(cl.metrics.IdleSeconds.WithLabelValues("web")); got != 30 {
		t.Errorf("prescale_scale_to_zero_idle_seconds = %v, want 30", got)
	}
	cl.tickAt(c, 60*time.Second)
	if got := cl.replicas(); got != 0 {
		t.Fatalf("idle 60 s: %d replicas, want 0", got)
	}
	cl.tickAt(c, 75*time.Second) // at zero: the metrics are not evaluated
	if n := testutil.CollectAndCount(cl.metrics.MetricValue); n != 0 {
		t.Errorf("at zero: %d prescale_metric_value series, want none (stale)", n)
	}
	st := c.Status()[0]
	if st.Zero == nil || st.Zero.Reason != policy.ReasonScaledToZero || st.Reason != policy.ReasonScaledToZero {
		t.Errorf("status at zero: reason %s, zero %+v", st.Reason, st.Zero)
	}
	// The load metric has no pod to read at zero: missing, as it would be.
	cl.source.set("load", policy.Sample{Err: errors.New("no series")})
	cl.source.set("gateway", policy.Sample{Err: errors.New("stale")})
	events := cl.tickAt(c, 90*time.Second)
	if got := cl.replicas(); got != 0 {
		t.Fatalf("gateway missing at zero: %d replicas, want 0", got)
	}
	if !containsReason(events, ReasonActivationMissing) {
		t.Errorf("gateway missing: events %v, want %s", events, ReasonActivationMissing)
	}
	cl.source.set("gateway", policy.Sample{Value: 90})
	events = cl.tickAt(c, 120*time.Second)
	if got := cl.replicas(); got != 5 {
		t.Fatalf("gateway at 90/s: %d replicas, want 5", got)
	}
	if !containsReason(events, ReasonSuccessfulRescale) {
		t.Errorf("wake-up: events %v, want %s", events, ReasonSuccessfulRescale)
	}
}

func containsReason(events []string, reason string) bool {
	for _, e := range events {
		if strings.Contains(e, " "+reason+" ") {
			return true
		}
	}
	return false
}
