package engine

import (
	"math"
	"testing"
	"time"

	"github.com/prescale/prescale/policy"
)

// BenchmarkStep is one tick of a policy with a forecast, fitted with no history and
// stepped for a day of 15 s ticks first (a warm forecaster, a full gate window): the
// engine's cost per policy per tick on top of the metrics' queries.
func BenchmarkStep(b *testing.B) {
	b.Run("forecast", func(b *testing.B) { benchmarkStep(b, predictive, false) })
	// The same with an objective, whose latency is sampled every tick.
	b.Run("objective", func(b *testing.B) { benchmarkStep(b, withObjective, true) })
}

func benchmarkStep(b *testing.B, item string, objective bool) {
	p := parse(b, item)
	e, err := New(p, Options{Tick: 15 * time.Second, DefaultStartup: DefaultStartup, HPAEquivalent: true})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	load := policy.Sample{}
	in := input(3, 30, true)
	in.Load = &load
	latency := policy.Sample{}
	if objective {
		in.Latency = &latency
	}
	step := func() {
		latency.Value = 0.5 + 2*math.Mod(float64(now.Unix())/15, 97)/97 // over 2 s about 1 tick in 4
		// a daily wave between 20 and 60 requests/s
		load.Value = 40 + 20*math.Sin(2*math.Pi*float64(now.Sub(t0))/float64(24*time.Hour))
		in.Metrics[0].Value = load.Value
		res := e.Step(in, now)
		in.SpecReplicas = res.Decision.DesiredReplicas
		now = now.Add(15 * time.Second)
	}
	for range 24 * 60 * 4 {
		step()
	}
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}
