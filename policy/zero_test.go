package policy

import (
	"strings"
	"testing"
	"time"
)

// zeroPolicy scales a model on its per-pod queue (AverageValue 5) with scaleToZero on a
// gateway's request rate, 4 requests/s per replica, idle delay 10 minutes, maxReplicas 20,
// the HPA's default behavior (scale-up max(4 pods, 100%) per 15 s), and a forecast of the
// same rate (so that wake-ahead is on).
func zeroPolicy() *Policy {
	return &Policy{
		Name: "llm", Target: TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "ns", Name: "llm"},
		MinReplicas: i32(0), MaxReplicas: 20,
		Metrics:  []Metric{avg("queue", "5")},
		Behavior: &Behavior{},
		ScaleToZero: &ScaleToZero{
			Activation: Activation{Query: "sum(rate(gateway_requests_total[1m]))", PerReplica: qty("4")},
			IdleDelay:  &Duration{10 * time.Minute},
		},
		Forecast: &Forecast{Load: Load{Query: "sum(rate(gateway_requests_total[1m]))", PerReplica: AutoFloat{Value: 4, set: true}}},
	}
}

// atZero is the history of a target that prescale scaled to zero long ago.
func atZero() History {
	h := seasoned()
	h.ScaledToZero = true
	return h
}

func TestDecideScaleToZero(t *testing.T) {
	two := readyPods("a", "b")
	idleQueue := perPod("a", 0, "b", 0)
	tests := []struct {
		name       string
		cur        int32
		pods       []Pod
		metric     Sample
		activation *Sample
		loadErr    bool
		forecast   *ForecastInput
		wakeGated  bool
		ambiguous  bool // Observation.AmbiguousSelector
		hist       History
		now        time.Time
		want       int32
		reason     Reason
		zeroReason Reason
	}{
		{
			// Idle since 0, now 599 s: one second short of the 600 s delay. The queue's
			// proposal 0 (no pod has a queue) is raised to the floor of one replica
			// (TooFewReplicas): the history's only recommendation is long past, so no
			// scale-down window holds the 2.
			name: "idle one second short of the delay: the floor of one replica",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)),
			hist: withIdle(seasoned(), at(0)), now: at(599), want: 1, reason: ReasonTooFewReplicas,
		},
		{
			name: "idle for exactly the delay: to zero",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)),
			hist: withIdle(seasoned(), at(0)), now: at(600), want: 0, reason: ReasonScaledToZero, zeroReason: ReasonScaledToZero,
		},
		{
			name: "idle long enough but the queue metric is missing: never to zero",
			cur:  2, pods: two, metric: failed("timeout"), activation: ptr(scalar(0)),
			hist: withIdle(seasoned(), at(0)), now: at(900), want: 2, reason: ReasonFailedGetMetric,
		},
		{
			name: "idle long enough but the forecast's load is missing: never to zero",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)), loadErr: true,
			hist: withIdle(seasoned(), at(0)), now: at(900), want: 2, reason: ReasonFailedGetMetric,
		},
		{
			// The activation is also a metric above zero: missing, it holds the scale-down.
			name: "activation missing resets the idle clock and holds the replicas",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(failed("no series")),
			hist: withIdle(seasoned(), at(0)), now: at(900), want: 2, reason: ReasonFailedGetMetric,
		},
		{
			// The activation's own proposal: ceil(0.001 / 4) = 1.
			name: "activation 0.001 above the threshold 0: not idle",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0.001)),
			hist: withIdle(seasoned(), at(0)), now: at(900), want: 1, reason: ReasonDesiredWithinRange,
		},
		{
			// Point 3 >= half of perReplica 4; value 9: ceil(9 / 4) = 3 replicas expected.
			name: "idle long enough but the forecast expects the load back: held awake",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)),
			forecast: &ForecastInput{Point: 3, Value: 9, Hi: 9, PerReplica: 4, PerReplicaKnown: true},
			hist:     withIdle(seasoned(), at(0)), now: at(600), want: 3, reason: ReasonDesiredWithinRange, zeroReason: ReasonWakeAhead,
		},
		{
			name: "the same with the wake-ahead gated: to zero",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)), wakeGated: true,
			forecast: &ForecastInput{Point: 3, Value: 9, Hi: 9, PerReplica: 4, PerReplicaKnown: true},
			hist:     withIdle(seasoned(), at(0)), now: at(600), want: 0, reason: ReasonScaledToZero, zeroReason: ReasonWakeAheadGated,
		},
		{
			// Point 1.9 < 2 (half of perReplica 4): no return expected.
			name: "a forecast point below half a replica expects nothing: to zero",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)),
			forecast: &ForecastInput{Point: 1.9, Value: 3, Hi: 3, PerReplica: 4, PerReplicaKnown: true},
			hist:     withIdle(seasoned(), at(0)), now: at(600), want: 0, reason: ReasonScaledToZero, zeroReason: ReasonScaledToZero,
		},
		{
			// 50 requests/s / 4 per replica = 12.5: 13 replicas, past the scale-up policy
			// (from 0: max(4 pods, 100% of 0) = 4).
			name: "at zero, the activation wakes straight to what it needs",
			cur:  0, activation: ptr(scalar(50)), hist: atZero(), now: at(0), want: 13, reason: ReasonActivated, zeroReason: ReasonActivated,
		},
		{
			// 200 / 4 = 50 > maxReplicas 20.
			name: "at zero, the activation's need is capped at maxReplicas",
			cur:  0, activation: ptr(scalar(200)), hist: atZero(), now: at(0), want: 20, reason: ReasonTooManyReplicas, zeroReason: ReasonActivated,
		},
		{
			// 0.5 / 4 = 0.125: one replica.
			name: "at zero, a trickle wakes one replica",
			cur:  0, activation: ptr(scalar(0.5)), hist: atZero(), now: at(0), want: 1, reason: ReasonActivated, zeroReason: ReasonActivated,
		},
		{
			name: "at zero, missing activation data keeps zero",
			cur:  0, activation: ptr(failed("stale")), hist: atZero(), now: at(0), want: 0, reason: ReasonFailedGetMetric,
			forecast: &ForecastInput{Point: 30, Value: 40, Hi: 40, PerReplica: 4, PerReplicaKnown: true},
		},
		{
			name: "at zero, a NaN activation is missing: keeps zero",
			cur:  0, activation: ptr(scalar(nan())), hist: atZero(), now: at(0), want: 0, reason: ReasonFailedGetMetric,
		},
		{
			name: "at zero, idle and no forecast: stays at zero",
			cur:  0, activation: ptr(scalar(0)), hist: atZero(), now: at(0), want: 0, reason: ReasonScaledToZero, zeroReason: ReasonScaledToZero,
		},
		{
			// ceil(22 / 4) = 6 replicas for the return.
			name: "at zero, the forecast expects the load back: wakes ahead to its replicas",
			cur:  0, activation: ptr(scalar(0)), hist: atZero(), now: at(0),
			forecast: &ForecastInput{Point: 15, Value: 22, Hi: 22, PerReplica: 4, PerReplicaKnown: true},
			want:     6, reason: ReasonWakeAhead, zeroReason: ReasonWakeAhead,
		},
		{
			// The chosen method, fitted on the idle zeros, says 0; the load one season
			// before now + horizon was 20: ceil(20 / 4) = 5.
			name: "at zero, the seasonal point expects the load back: wakes ahead",
			cur:  0, activation: ptr(scalar(0)), hist: atZero(), now: at(0),
			forecast: &ForecastInput{Point: 0, Value: 1, Hi: 1, Seasonal: 20, SeasonalKnown: true, PerReplica: 4, PerReplicaKnown: true},
			want:     5, reason: ReasonWakeAhead, zeroReason: ReasonWakeAhead,
		},
		{
			// Idle past the delay at 1 replica (the floor): the seasonal return needs
			// ceil(20 / 4) = 5, which the forecast's own proposal (ceil(1 / 4) = 1) does not.
			name: "idle at the floor, the seasonal point expects the load back: up to its replicas",
			cur:  1, pods: readyPods("a"), metric: perPod("a", 0), activation: ptr(scalar(0)),
			forecast: &ForecastInput{Point: 0, Value: 1, Hi: 1, Seasonal: 20, SeasonalKnown: true, PerReplica: 4, PerReplicaKnown: true},
			hist:     withIdle(seasoned(), at(0)), now: at(600), want: 5, reason: ReasonWakeAhead, zeroReason: ReasonWakeAhead,
		},
		{
			name: "at zero, the wake-ahead gated: stays at zero",
			cur:  0, activation: ptr(scalar(0)), hist: atZero(), now: at(0), wakeGated: true,
			forecast: &ForecastInput{Point: 15, Value: 22, Hi: 22, PerReplica: 4, PerReplicaKnown: true},
			want:     0, reason: ReasonScaledToZero, zeroReason: ReasonWakeAheadGated,
		},
		{
			name: "at zero, a gated forecast expects nothing",
			cur:  0, activation: ptr(scalar(0)), hist: atZero(), now: at(0),
			forecast: &ForecastInput{Point: 15, Value: 22, Hi: 22, PerReplica: 4, PerReplicaKnown: true, Gated: true},
			want:     0, reason: ReasonScaledToZero, zeroReason: ReasonScaledToZero,
		},
		{
			// Activation 10 / 4: 3; the forecast's 22 / 4: 6.
			name: "at zero, activated with a larger forecast: the forecast's replicas",
			cur:  0, activation: ptr(scalar(10)), hist: atZero(), now: at(0),
			forecast: &ForecastInput{Point: 15, Value: 22, Hi: 22, PerReplica: 4, PerReplicaKnown: true},
			want:     6, reason: ReasonActivated, zeroReason: ReasonActivated,
		},
		{
			name: "zero that prescale did not set: scaling disabled",
			cur:  0, activation: ptr(scalar(50)), hist: seasoned(), now: at(0), want: 0, reason: ReasonScalingDisabled,
		},
		{
			// The HPA at the zero it set computes metrics, and refuses first: 50 / 4 would
			// wake 13.
			name: "at zero, a selector shared with another policy's target: stays at zero",
			cur:  0, activation: ptr(scalar(50)), hist: atZero(), now: at(0), ambiguous: true, want: 0, reason: ReasonAmbiguousSelector,
		},
		{
			name: "idle long enough, a selector shared with another policy's target: never to zero",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)), ambiguous: true,
			hist: withIdle(seasoned(), at(0)), now: at(600), want: 2, reason: ReasonAmbiguousSelector,
		},
		{
			// The same with the forecast expecting the load back (which would hold 3).
			name: "idle long enough, the load expected back, a selector shared: held, not woken further",
			cur:  2, pods: two, metric: idleQueue, activation: ptr(scalar(0)), ambiguous: true,
			forecast: &ForecastInput{Point: 3, Value: 9, Hi: 9, PerReplica: 4, PerReplicaKnown: true},
			hist:     withIdle(seasoned(), at(0)), now: at(600), want: 2, reason: ReasonAmbiguousSelector,
		},
		{
			name: "zero that prescale did not set, a selector shared: still scaling disabled",
			cur:  0, activation: ptr(scalar(50)), hist: seasoned(), now: at(0), ambiguous: true, want: 0, reason: ReasonScalingDisabled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := zeroPolicy()
			in := Observation{SpecReplicas: tt.cur, StatusReplicas: tt.cur, Pods: tt.pods,
				Metrics: []Sample{tt.metric}, Activation: tt.activation, Forecast: tt.forecast, WakeGated: tt.wakeGated,
				AmbiguousSelector: tt.ambiguous}
			if tt.cur == 0 {
				in.Metrics = []Sample{{PerPod: map[string]float64{}}}
			}
			if tt.loadErr {
				in.LoadErr = errNoSample
			}
			d, _ := Decide(p, in, tt.hist, tt.now)
			if d.DesiredReplicas != tt.want || d.Reason != tt.reason {
				t.Errorf("Decide = %d (%s), want %d (%s); clamps %+v", d.DesiredReplicas, d.Reason, tt.want, tt.reason, d.Clamps)
			}
			var zr Reason
			if d.Zero != nil {
				zr = d.Zero.Reason
			}
			if zr != tt.zeroReason {
				t.Errorf("Zero.Reason = %q, want %q", zr, tt.zeroReason)
			}
		})
	}
}

func withIdle(h History, since time.Time) History {
	h.IdleSince = since
	return h
}

// TestScaleToZeroCycle drives a target through idle, zero and a wake-up, one sync every
// 15 s, and checks the idle clock and the ScaledToZero condition that RecordScale keeps.
func TestScaleToZeroCycle(t *testing.T) {
	p := zeroPolicy()
	var h History
	cur := int32(1)
	step := func(s int, act float64) Decision {
		in := Observation{SpecReplicas: cur, StatusReplicas: cur, Activation: ptr(scalar(act))}
		if cur > 0 {
			in.Pods = readyPods("a")
			in.Metrics = []Sample{perPod("a", 0)}
		}
		d, next := Decide(p, in, h, at(s))
		h = next
		if d.DesiredReplicas != cur {
			h = h.RecordScale(p, cur, d.DesiredReplicas, at(s))
			cur = d.DesiredReplicas
		}
		return d
	}
	// Idle from 0 s: the delay of 600 s ends at the sync at 600 s.
	for s := 0; s < 600; s += 15 {
		if d := step(s, 0); d.DesiredReplicas != 1 {
			t.Fatalf("at %d s (idle %v s of 600): %d replicas, want 1", s, d.Zero.IdleSeconds, d.DesiredReplicas)
		}
	}
	if d := step(600, 0); d.DesiredReplicas != 0 || !h.ScaledToZero {
		t.Fatalf("at 600 s: %d replicas (ScaledToZero %v), want 0 (true)", d.DesiredReplicas, h.ScaledToZero)
	}
	if d := step(615, 0); d.DesiredReplicas != 0 {
		t.Fatalf("at 615 s: %d replicas, want 0", d.DesiredReplicas)
	}
	// 30 requests/s / 4 = 7.5: 8 replicas at once.
	if d := step(630, 30); d.DesiredReplicas != 8 || !h.IdleSince.IsZero() {
		t.Fatalf("at 630 s: %d replicas (idle since %v), want 8 (not idle)", d.DesiredReplicas, h.IdleSince)
	}
}

func TestValidateScaleToZero(t *testing.T) {
	base := func() Policy {
		p := validPolicy()
		p.MinReplicas = ptr[int32](0)
		p.ScaleToZero = &ScaleToZero{Activation: Activation{Query: "sum(rate(x[1m]))", PerReplica: qty("4")}}
		return p
	}
	tests := []validateCase{
		{name: "valid", modify: func(*Policy) {}},
		{name: "minReplicas 1", modify: func(p *Policy) { p.MinReplicas = ptr[int32](1) },
			want: []string{"scaleToZero: needs minReplicas: 0, got minReplicas 1"}},
		{name: "minReplicas unset", modify: func(p *Policy) { p.MinReplicas = nil },
			want: []string{"scaleToZero: needs minReplicas: 0, got minReplicas unset (1)"}},
		{name: "no query, no perReplica", modify: func(p *Policy) { p.ScaleToZero.Activation = Activation{} },
			want: []string{"scaleToZero.activation.perReplica: required (the activation value one replica carries)",
				"scaleToZero.activation.query: required"}},
		{name: "blank query", modify: func(p *Policy) { p.ScaleToZero.Activation.Query = " " },
			want: []string{`scaleToZero.activation.query: must not be blank, got " "`}},
		{name: "a metric named activation", modify: func(p *Policy) { p.Metrics[0].Name = "activation" },
			want: []string{`scaleToZero: the activation signal is the metric "activation" of the decision record: rename metrics[0]`}},
		{name: "perReplica 0", modify: func(p *Policy) { p.ScaleToZero.Activation.PerReplica = qty("0") },
			want: []string{"scaleToZero.activation.perReplica: must be > 0, got 0"}},
		{name: "threshold -1", modify: func(p *Policy) { p.ScaleToZero.Activation.Threshold = qty("-1") },
			want: []string{"scaleToZero.activation.threshold: must be >= 0, got -1"}},
		{name: "idleDelay 0 is allowed", modify: func(p *Policy) { p.ScaleToZero.IdleDelay = &Duration{0} }},
		{name: "idleDelay 24h is allowed", modify: func(p *Policy) { p.ScaleToZero.IdleDelay = &Duration{24 * time.Hour} }},
		{name: "idleDelay 25h", modify: func(p *Policy) { p.ScaleToZero.IdleDelay = &Duration{25 * time.Hour} },
			want: []string{"scaleToZero.idleDelay: must be 0s..24h, got 25h0m0s"}},
		{name: "wakeAhead without a forecast", modify: func(p *Policy) { p.ScaleToZero.WakeAhead = &WakeAhead{Enabled: ptr(true)} },
			want: []string{"scaleToZero.wakeAhead.enabled: true needs a forecast (the policy has none)"}},
		{name: "wakeAhead with the forecast's method off", modify: func(p *Policy) {
			p.Forecast = &Forecast{Load: Load{Query: "q", PerReplica: AutoFloat{Auto: true, set: true}}, Method: "off"}
			p.ScaleToZero.WakeAhead = &WakeAhead{Enabled: ptr(true)}
		}, want: []string{"scaleToZero.wakeAhead.enabled: true needs a forecast whose method is not off"}},
		{name: "wakeAhead gate out of range", modify: func(p *Policy) {
			p.ScaleToZero.WakeAhead = &WakeAhead{MaxWrong: ptr(1.0), Last: ptr[int32](0)}
		}, want: []string{"scaleToZero.wakeAhead.last: must be 1..100, got 0", "scaleToZero.wakeAhead.maxWrong: must be within [0, 1), got 1"}},
	}
	runValidateCases(t, base, tests)
}

func TestParseScaleToZero(t *testing.T) {
	const file = `policies:
  - name: llm
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: llm}
    minReplicas: 0
    maxReplicas: 8
    metrics:
      - {name: queue, query: "sum by (pod) (q)", target: {type: AverageValue, averageValue: 5}}
    scaleToZero:
      activation: {query: "sum(rate(gateway_requests_total[1m]))", perReplica: 4, threshold: 0.1}
      idleDelay: 15m
      wakeAhead: {enabled: false, maxWrong: 0.25, last: 8}
`
	f, err := Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	z := f.Policies[0].ScaleToZero
	if z == nil || z.IdleDelayOrDefault() != 15*time.Minute || z.Activation.Threshold.Float64() != 0.1 {
		t.Fatalf("scaleToZero = %+v", z)
	}
	if mw, last := z.WakeGateOrDefault(); mw != 0.25 || last != 8 {
		t.Errorf("wake gate = %v, %d; want 0.25, 8", mw, last)
	}
	_, err = Parse(strings.NewReader(strings.Replace(file, "idleDelay: 15m", "idleDelay: 15m\n      idle: 1m", 1)))
	if err == nil || !strings.Contains(err.Error(), "policies[0].scaleToZero.idle: unknown field") {
		t.Errorf("unknown key: err = %v", err)
	}
}
