package replay

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/prescale/prescale/policy"
)

// sameTimeLines is n observation lines that all carry one time, as a recorder that stamps
// a batch with one time writes them; with load and latency for a policy that takes them.
func sameTimeLines(n int, loadAndLatency bool) []byte {
	extra := ""
	if loadAndLatency {
		extra = `,"load":{"value":120},"latency":{"value":0.8}`
	}
	line := `{"time":"2026-01-01T00:00:15Z","specReplicas":4,"pods":[{"name":"a","ready":true},{"name":"b","ready":true}],"metrics":{"queue":{"perPod":{"a":12,"b":9}},"p95-latency":{"value":3.1},"gpu":{"error":"timeout"}}` + extra + "}\n"
	return []byte(strings.Repeat(line, n))
}

// BenchmarkRunSameTime replays 10k and 100k lines that share one timestamp, for the example
// policy and for one with a forecast and an objective: the cost per line must not grow
// with the lines (it did: each line's recommendation was kept, and every line scanned them
// all, 18 s for 100k lines).
func BenchmarkRunSameTime(b *testing.B) {
	for _, tc := range []struct {
		name string
		p    func() *policy.Policy
		more bool
	}{
		{"policy", llamaPolicy, false},
		{"forecast+objective", objectivePolicy, true},
	} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/lines=%d", tc.name, n), func(b *testing.B) {
				in := sameTimeLines(n, tc.more)
				b.ReportAllocs()
				for b.Loop() {
					if err := Run(tc.p(), opts, bytes.NewReader(in), io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
