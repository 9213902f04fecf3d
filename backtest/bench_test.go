package backtest

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkBacktest14Days: the servegen trace (14 days per minute, 80,640 ticks of 15 s)
// through the baseline, the example policy and the oracle. Target: under 3 s on one core.
// Without the shared traces it skips, except in CI (CI=true), where it fails.
func BenchmarkBacktest14Days(b *testing.B) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "traces"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil && os.Getenv("CI") != "true" {
		b.Skipf("no shared traces beside the repository: %v", err)
	}
	tr := readTraceFile(b, filepath.Join(tracesDir(b), "servegen-m-small", "requests_per_minute.csv"))
	par := DefaultParams()
	cs, err := Contenders(examplePolicy(b), par)
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
