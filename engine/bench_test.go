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
	b.Run("forecast", func(b *testing.B) { benchmarkStep(b, predictive, nil) })
	// The same with an objective, whose latency is sampled every tick: over the SLO about
	// one tick in 4, so the budget is overspent and the knobs stay as written.
	b.Run("objective", func(b *testing.B) {
		benchmarkStep(b, withObjective, func(tick float64) float64 { return 0.5 + 2*math.Mod(tick, 97)/97 })
	})
	// Over the SLO one tick in 800: the bank fills and is spent, and the paced knobs (a
	// policy copy with scaled targets) change every minute.
	b.Run("paced", func(b *testing.B) {
		benchmarkStep(b, withObjective, func(tick float64) float64 { return 0.5 + 2.5*float64(boolInt(math.Mod(tick, 800) == 0)) })
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// benchmarkStep steps item; with latency set, the objective samples latency(tick) at each.
func benchmarkStep(b *testing.B, item string, latencyAt func(tick float64) float64) {
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
	if latencyAt != nil {
		in.Latency = &latency
	}
	step := func() {
		if latencyAt != nil {
			latency.Value = latencyAt(float64(now.Unix()) / 15)
		}
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

// BenchmarkAhead is a CapacityBuffer's sizing for a node lead of 10 minutes, after a day of
// 15 s ticks of predictive (auto's chosen method, warm): four predictions a tick, for each
// policy with a forecast.
func BenchmarkAhead(b *testing.B) {
	e, err := New(parse(b, predictive), Options{Tick: 15 * time.Second, DefaultStartup: DefaultStartup})
	if err != nil {
		b.Fatal(err)
	}
	now := t0
	in := input(3, 30, true)
	load := policy.Sample{}
	in.Load = &load
	for range 24 * 60 * 4 {
		load.Value = 40 + 20*math.Sin(2*math.Pi*float64(now.Sub(t0))/float64(24*time.Hour))
		in.Metrics[0].Value = load.Value
		in.SpecReplicas = e.Step(in, now).Decision.DesiredReplicas
		now = now.Add(15 * time.Second)
	}
	if _, state := e.Ahead(10 * time.Minute); state != AheadKnown {
		b.Fatal("no forecast in use after a day")
	}
	b.ReportAllocs()
	for b.Loop() {
		e.Ahead(10 * time.Minute)
	}
}
