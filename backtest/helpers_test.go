package backtest

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/prescale/prescale/policy"
)

// tracesDir returns shared/traces beside the repository: tests run in backtest/, so it is
// ../../shared/traces. It fails the test when the folder is missing: CI lays shared/ there.
func tracesDir(tb testing.TB) string {
	tb.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "shared", "traces"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		tb.Fatalf("the shared traces must be at <repo>/../shared/traces: %v", err)
	}
	return dir
}

// readTraceFile reads one trace file.
func readTraceFile(tb testing.TB, path string) Trace {
	tb.Helper()
	fh, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	tr, err := ReadTrace(fh)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return tr
}

// examplePolicy reads examples/backtest-policy.yaml.
func examplePolicy(tb testing.TB) *policy.Policy {
	tb.Helper()
	return examplePolicyFile(tb, "backtest-policy.yaml")
}

// examplePolicyFile reads the first policy of examples/name.
func examplePolicyFile(tb testing.TB, name string) *policy.Policy {
	tb.Helper()
	fh, err := os.Open(filepath.Join("..", "examples", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer fh.Close()
	f, err := policy.Parse(fh)
	if err != nil {
		tb.Fatal(err)
	}
	return &f.Policies[0]
}

// syntheticTrace returns minutes of a made-up daily load: a sine between 200 and 2200
// requests a minute, with a burst of 1.8 times the load for 5 minutes every 97 minutes.
func syntheticTrace(minutes int) Trace {
	tr := make(Trace, minutes)
	for m := range tr {
		tr[m] = 1200 + 1000*math.Sin(2*math.Pi*float64(m)/1440)
		if m%97 < 5 {
			tr[m] *= 1.8
		}
	}
	return tr
}
