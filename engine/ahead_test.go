package engine

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// ramp returns n samples of a load rising slope a step (falling for a negative slope),
// step apart, ending at end with the value last.
func ramp(n int, step time.Duration, end time.Time, last, slope float64) []forecast.Sample {
	s := make([]forecast.Sample, n)
	for i := range s {
		back := n - 1 - i
		s[i] = forecast.Sample{At: end.Add(-time.Duration(back) * step), Value: last - slope*float64(back)}
	}
	return s
}

func TestAhead(t *testing.T) {
	// A linear forecast of the load (perReplica 10) with a 5-minute horizon, fitted on 2 h
	// of a straight ramp sampled every 15 s, stepped once at t0 with the ramp's next value,
	// 200: it predicts the ramp on, so at 5 min + lead the load is 200 + slope × (5 min +
	// lead) / 15 s.
	spec := func(maxReplicas int) *policy.Policy {
		return parse(t, strings.Replace(limited, "maxReplicas: 20", "maxReplicas: "+strconv.Itoa(maxReplicas), 1)+`    forecast:
      load: {query: lq, perReplica: 10}
      method: linear
      horizon: 5m
      history: 2h
`)
	}
	tests := []struct {
		name        string
		maxReplicas int
		slope       float64 // a 15-s step
		history     bool
		lead        time.Duration
		want        int32
		wantState   AheadState
	}{
		// 200 + 1 × (15 min / 15 s = 60) = 260 → 26 replicas
		{name: "a rising load at the horizon plus the lead", maxReplicas: 40, slope: 1, history: true, lead: 10 * time.Minute, want: 26, wantState: AheadKnown},
		// 200 + 1 × (7.5 min / 15 s = 30) = 230 → 23
		{name: "a shorter lead asks for less", maxReplicas: 40, slope: 1, history: true, lead: 150 * time.Second, want: 23, wantState: AheadKnown},
		{name: "at most maxReplicas", maxReplicas: 20, slope: 1, history: true, lead: 10 * time.Minute, want: 20, wantState: AheadKnown},
		// Falling 1 a step: the first of the 4 instants, 5 min + 2.5 min ahead, is the
		// largest: 200 - 30 = 170 → 17 (at the lead's end it is 140 → 14).
		{name: "a falling load: the largest over the lead, not its end", maxReplicas: 40, slope: -1, history: true, lead: 10 * time.Minute, want: 17, wantState: AheadKnown},
		{name: "no lead, nothing ahead", maxReplicas: 40, slope: 1, history: true, lead: 0, wantState: AheadOff},
		{name: "a forecast still warming up is not known yet", maxReplicas: 40, slope: 1, history: false, lead: 10 * time.Minute, wantState: AheadUnknown},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, spec(tc.maxReplicas), Options{})
			var history []forecast.Sample
			if tc.history {
				history = ramp(480, 15*time.Second, t0.Add(-15*time.Second), 200-tc.slope, tc.slope)
			}
			if _, err := e.Fit(history, nil, t0); err != nil {
				t.Fatal(err)
			}
			in := input(20, 200, true)
			in.Load = &policy.Sample{Value: 200}
			e.Step(in, t0)
			got, state := e.Ahead(tc.lead)
			if got != tc.want || state != tc.wantState {
				t.Errorf("Ahead(%s) = %d, %v; want %d, %v", tc.lead, got, state, tc.want, tc.wantState)
			}
		})
	}
}

// A policy without a forecast has nothing ahead; one whose history is loading, or whose
// load has gone missing for longer than a horizon, does not know yet.
func TestAheadOffOrUnknown(t *testing.T) {
	e := newEngine(t, parse(t, limited), Options{})
	e.Step(input(2, 20, true), t0)
	if got, state := e.Ahead(10 * time.Minute); state != AheadOff {
		t.Errorf("without a forecast: Ahead = %d, %v; want AheadOff", got, state)
	}

	loading := newEngine(t, parse(t, predictive), Options{})
	loading.SetHistoryLoading()
	in := input(2, 20, true)
	in.Load = &policy.Sample{Value: 20}
	loading.Step(in, t0)
	if got, state := loading.Ahead(10 * time.Minute); state != AheadUnknown {
		t.Errorf("history loading: Ahead = %d, %v; want AheadUnknown", got, state)
	}

	// Fitted on 2 h of a ramp and in use; then the load missing for longer than the
	// horizon (5 min): unknown.
	p := parse(t, predictive+"      method: linear\n      horizon: 5m\n")
	e = newEngine(t, p, Options{})
	if _, err := e.Fit(ramp(480, 15*time.Second, t0.Add(-15*time.Second), 199, 1), nil, t0); err != nil {
		t.Fatal(err)
	}
	in.Load = &policy.Sample{Value: 200}
	e.Step(in, t0)
	if _, state := e.Ahead(10 * time.Minute); state != AheadKnown {
		t.Fatalf("in use: state %v, want AheadKnown", state)
	}
	in.Load = &policy.Sample{Value: math.NaN()}
	e.Step(in, t0.Add(6*time.Minute))
	if got, state := e.Ahead(10 * time.Minute); state != AheadUnknown {
		t.Errorf("the load missing for 6 min: Ahead = %d, %v; want AheadUnknown", got, state)
	}
}
