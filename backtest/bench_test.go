package backtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prescale/prescale/policy"
)

// BenchmarkBacktest14Days: the servegen trace (14 days per minute, 80,640 ticks of 15 s)
// through the baseline, an example policy and the oracle. Target: under 3 s on one core.
// Without the shared traces it skips, except in CI (CI=true), where it fails.
func BenchmarkBacktest14Days(b *testing.B) {
	// The example of docs/benchmarks.md before the objective, and the objective's example.
	b.Run("backtest-policy", func(b *testing.B) { benchmarkBacktest14Days(b, examplePolicy(b)) })
	b.Run("slo-policy", func(b *testing.B) { benchmarkBacktest14Days(b, examplePolicyFile(b, "slo-policy.yaml")) })
}

func benchmarkBacktest14Days(b *testing.B, p *policy.Policy) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "traces"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil && os.Getenv("CI") != "true" {
		b.Skipf("no shared traces beside the repository: %v", err)
	}
	tr := readTraceFile(b, filepath.Join(tracesDir(b), "servegen-m-small", "requests_per_minute.csv"))
	par := DefaultParams()
	cs, err := Contenders(p, par)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Run(tr, cs, Options{Params: par}); err != nil {
			b.Fatal(err)
		}
	}
}
