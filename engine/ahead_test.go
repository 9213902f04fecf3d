package engine

import (
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
		wantOK      bool
	}{
		// 200 + 1 × (15 min / 15 s = 60) = 260 → 26 replicas
		{name: "a rising load at the horizon plus the lead", maxReplicas: 40, slope: 1, history: true, lead: 10 * time.Minute, want: 26, wantOK: true},
		// 200 + 1 × (7.5 min / 15 s = 30) = 230 → 23
		{name: "a shorter lead asks for less", maxReplicas: 40, slope: 1, history: true, lead: 150 * time.Second, want: 23, wantOK: true},
		{name: "at most maxReplicas", maxReplicas: 20, slope: 1, history: true, lead: 10 * time.Minute, want: 20, wantOK: true},
		// Falling 1 a step: the first of the 4 instants, 5 min + 2.5 min ahead, is the
		// largest: 200 - 30 = 170 → 17 (at the lead's end it is 140 → 14).
		{name: "a falling load: the largest over the lead, not its end", maxReplicas: 40, slope: -1, history: true, lead: 10 * time.Minute, want: 17, wantOK: true},
		{name: "no lead, no answer", maxReplicas: 40, slope: 1, history: true, lead: 0},
		{name: "a forecast still warming up is not used", maxReplicas: 40, slope: 1, history: false, lead: 10 * time.Minute},
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
			got, ok := e.Ahead(tc.lead)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("Ahead(%s) = %d, %v; want %d, %v", tc.lead, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// A policy without a forecast has nothing ahead.
func TestAheadWithoutAForecast(t *testing.T) {
	e := newEngine(t, parse(t, limited), Options{})
	e.Step(input(2, 20, true), t0)
	if got, ok := e.Ahead(10 * time.Minute); ok {
		t.Errorf("Ahead = %d, true; want false", got)
	}
}
