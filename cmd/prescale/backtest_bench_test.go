package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// BenchmarkBacktestCompare14Days is `prescale backtest -f examples/slo-policy.yaml` on the
// 14-day servegen trace, as a user runs it: the policy, the baseline and the oracle, the 75
// HPA settings and the policy's front, with the command's garbage-collector setting. Target:
// under a minute on 2 cores. Without the shared traces it skips, except in CI (CI=true),
// where it fails.
func BenchmarkBacktestCompare14Days(b *testing.B) {
	const trace = "../../../shared/traces/servegen-m-small/requests_per_minute.csv"
	if _, err := os.Stat(trace); err != nil && os.Getenv("CI") != "true" {
		b.Skipf("no shared traces beside the repository: %v", err)
	}
	for b.Loop() {
		var out, errb bytes.Buffer
		if code := execute([]string{"backtest", "-f", "../../examples/slo-policy.yaml", "--trace", trace}, strings.NewReader(""), &out, &errb); code != 0 {
			b.Fatalf("exit %d: %s", code, errb.String())
		}
		if !strings.Contains(out.String(), "Benchmark criterion:") {
			b.Fatalf("no comparison in the output:\n%s", out.String())
		}
	}
}
