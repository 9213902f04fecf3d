package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// policyYAML is one valid policy, as bench-soak writes them, on three lines.
func policyYAML(i int) string {
	return fmt.Sprintf(`  - name: d%05d
    target: {apiVersion: apps/v1, kind: Deployment, namespace: soak, name: d%05d}
    maxReplicas: 4
    metrics: [{name: queue, query: 'sum by (pod) (vllm:num_requests_waiting{namespace="soak",app="d%05d"})', target: {type: AverageValue, averageValue: 5}}]
`, i, i, i)
}

// manyPolicies returns a file of n valid policies as bench-soak writes them.
func manyPolicies(n int) string {
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := range n {
		b.WriteString(policyYAML(i))
	}
	return b.String()
}

// compactPolicies returns a file of n valid policies, each on one short line.
func compactPolicies(n int) string {
	var b strings.Builder
	b.WriteString("policies:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: d%d, target: {apiVersion: apps/v1, kind: Deployment, namespace: n, name: d%d}, maxReplicas: 4, metrics: [{name: q, query: q, target: {type: Value, value: 1}}]}\n", i, i)
	}
	return b.String()
}

// aliasBomb returns a file of about size bytes: one policy anchored &p whose metrics list
// repeats the anchored metric &x metrics times, then as many aliases *p as fit. Walking it
// naively visits every metric of every alias: about (size/5) * metrics * 9 nodes.
func aliasBomb(metrics, size int) string {
	var b strings.Builder
	b.WriteString("policies:\n  - &p {name: a, target: {apiVersion: apps/v1, kind: Deployment, namespace: n, name: a}, maxReplicas: 4, metrics: [&x {name: q, query: q, target: {type: Value, value: 1}}")
	for range metrics - 1 {
		b.WriteString(", *x")
	}
	b.WriteString("]}\n")
	for b.Len()+5 <= size {
		b.WriteString("  - *p\n")
	}
	return b.String()
}

// laughs returns the classic "billion laughs" of depth levels, each anchor a list of ten
// aliases to the one before, referenced where the file wants policies.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("l0: &l0 [{name: a}]\n")
	for i := 1; i < levels; i++ {
		fmt.Fprintf(&b, "l%d: &l%d [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]\n")
	}
	fmt.Fprintf(&b, "policies: [{name: a, metrics: *l%d}, {name: b, metrics: *l%d}]\n", levels-1, levels-1)
	return b.String()
}

// badMetrics returns a file of about size bytes of policies of limit metrics each, every
// metric with a name that fails validation and a value that fails to decode: each decoding
// failure is matched against every validation problem.
func badMetrics(limit, size int) string {
	var b, p strings.Builder
	b.WriteString("policies:\n")
	for i := 0; ; i++ {
		p.Reset()
		fmt.Fprintf(&p, "  - name: p%d\n    target: {apiVersion: apps/v1, kind: Deployment, namespace: n, name: p%d}\n    maxReplicas: 4\n    metrics:\n", i, i)
		for j := range limit {
			fmt.Fprintf(&p, "      - {name: Q%d, query: q, target: {type: Value, value: x}}\n", j)
		}
		if b.Len()+p.Len() > size {
			return b.String()
		}
		b.WriteString(p.String())
	}
}

// unknownKeys returns a file of about size bytes: one policy, a mapping of unknown keys.
func unknownKeys(size int) string {
	var b strings.Builder
	b.WriteString("policies:\n  - {k0: 1")
	for i := 1; b.Len()+len(", k999999: 1}\n") <= size; i++ {
		fmt.Fprintf(&b, ", k%d: 1", i)
	}
	b.WriteString("}\n")
	return b.String()
}

// parseProblems parses yaml and returns its problems' messages. It fails the test when Parse
// takes more than 5 s: the limits exist so that it takes well under one.
func parseProblems(t *testing.T, yaml string) []string {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := Parse(strings.NewReader(yaml))
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("Parse of %d bytes took more than 5 s, want well under 1 s", len(yaml))
	}
	var out []string
	for _, e := range unjoin(err) {
		out = append(out, e.Error())
	}
	return out
}

// TestParseLaughs checks that the "billion laughs", anchors of lists of aliases to anchors,
// is refused fast: the walk follows an alias only where the file's types want its value, and
// a list of lists is not a list of metrics.
func TestParseLaughs(t *testing.T) {
	problems := parseProblems(t, laughs(12))
	want := `policies[0].metrics[0]: want a mapping, got a list (line 11)`
	if !slices.Contains(problems, want) {
		t.Errorf("Parse problems %q, want among them %q", problems, want)
	}
}

func TestParseLimits(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "a file over the size cap",
			yaml: "policies:\n" + strings.Repeat("# padding\n", MaxFileBytes/10),
			want: []string{"policy file is larger than the limit of 1048576 bytes (1 MiB)"},
		},
		{
			name: "too many policies",
			yaml: compactPolicies(MaxPolicies + 1),
			want: []string{"policies: at most 5000 policies, got 5001 (line 2)"},
		},
		{
			name: "too many metrics",
			yaml: "policies:\n  - name: a\n    target: {apiVersion: apps/v1, kind: Deployment, namespace: n, name: a}\n    maxReplicas: 4\n    metrics:\n" +
				strings.Repeat("      - {name: q, query: q, target: {type: Value, value: 1}}\n", MaxMetrics+1),
			want: []string{"policies[0].metrics: at most 64 metrics, got 65 (line 6)"},
		},
		{
			// Each metric {name, query, target: {type, value}} is 11 values (a mapping, 5
			// keys, 5 values), so the 63 *x of the anchored policy repeat 693. Each *p repeats
			// the policy: its mapping, 4 keys, name, target (1 + 4 keys + 4 values),
			// maxReplicas and metrics (1 + 64 * 11): 721. 693 + 137 * 721 = 99470 is within
			// 100000, the 138th *p crosses it: line 2 + 138.
			name: "aliases that expand beyond the budget",
			yaml: aliasBomb(MaxMetrics, 5000*7),
			want: []string{"policy file: the alias at line 140 repeats more than 100000 values in all (an alias counts every value and key it repeats)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, parseProblems(t, tc.yaml)); diff != "" {
				t.Errorf("Parse problems (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseAtTheLimits checks that files right at each limit are accepted.
func TestParseAtTheLimits(t *testing.T) {
	tests := []struct {
		name string
		yaml string
	}{
		{name: "the most policies", yaml: compactPolicies(MaxPolicies)},
		{
			name: "the most metrics",
			yaml: "policies:\n  - name: a\n    target: {apiVersion: apps/v1, kind: Deployment, namespace: n, name: a}\n    maxReplicas: 4\n    metrics:\n" +
				func() string {
					var b strings.Builder
					for j := range MaxMetrics {
						fmt.Fprintf(&b, "      - {name: q%d, query: q, target: {type: Value, value: 1}}\n", j)
					}
					return b.String()
				}(),
		},
		{
			// A behavior block shared by alias by the most policies: the block is 18 values
			// and keys (its mapping; scaleUp, its mapping, stabilizationWindowSeconds and its
			// value, policies and its list, the rate policy's mapping, 3 keys and 3 values;
			// scaleDown, its mapping, a key and its value), 5000 * 18 = 90000 in all.
			name: "a shared block repeated by alias within the budget",
			yaml: func() string {
				var b strings.Builder
				b.WriteString("behavior: &b {scaleUp: {stabilizationWindowSeconds: 0, policies: [{type: Pods, value: 4, periodSeconds: 15}]}, scaleDown: {stabilizationWindowSeconds: 300}}\npolicies:\n")
				for i := range MaxPolicies {
					fmt.Fprintf(&b, "  - {name: d%d, target: {apiVersion: apps/v1, kind: Deployment, namespace: n, name: d%d}, maxReplicas: 4, metrics: [{name: q, query: q, target: {type: Value, value: 1}}], behavior: *b}\n", i, i)
				}
				return b.String()
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.yaml) > MaxFileBytes {
				t.Fatalf("test file is %d bytes, over the cap", len(tc.yaml))
			}
			_, err := Parse(strings.NewReader(tc.yaml), "behavior")
			if err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

// TestParseManyBadMetrics checks that 10k metrics, each with a value that fails to decode and
// a name that fails validation, give their two problems each: the decoding failure, and the
// name, not the "value required" that would only repeat the decoding failure.
func TestParseManyBadMetrics(t *testing.T) {
	yaml := badMetrics(MaxMetrics, 1<<20-4096)
	got := parseProblems(t, yaml)
	var names, values, other int
	for _, p := range got {
		switch {
		case strings.Contains(p, `.name: must be a lowercase`):
			names++
		case strings.Contains(p, `.target.value: "x" is not a number`):
			values++
		default:
			other++
			if other < 3 {
				t.Errorf("unexpected problem %q", p)
			}
		}
	}
	metrics := strings.Count(yaml, "{name: Q")
	if metrics < 10000 {
		t.Fatalf("test file has %d metrics, want at least 10000", metrics)
	}
	if names != metrics || values != metrics || other != 0 {
		t.Errorf("got %d name, %d value and %d other problems, want %d, %d and 0", names, values, other, metrics, metrics)
	}
}

// BenchmarkParseWorstCase parses generated files at the size cap, each the worst of its kind
// that we know. Target: under 1 s and under 100 MB each. B/op, every byte allocated during
// one Parse, bounds its peak heap.
func BenchmarkParseWorstCase(b *testing.B) {
	for _, bc := range []struct {
		name string
		yaml string
	}{
		// 1 MiB of "*p" aliases to a policy of 64 metrics: stopped by the alias budget.
		{"alias-bomb", aliasBomb(MaxMetrics, MaxFileBytes)},
		// As many *p as the alias budget allows: the most work that passes it.
		{"alias-budget", aliasBomb(MaxMetrics, len(aliasBomb(MaxMetrics, 0))+137*7)},
		// Policies of 64 metrics each, every metric with two problems, up to the cap.
		{"bad-metrics", badMetrics(MaxMetrics, MaxFileBytes)},
		// One policy of about 95,000 unknown keys: one problem each.
		{"unknown-keys", unknownKeys(MaxFileBytes)},
		// Valid policies as bench-soak writes them, up to the cap.
		{"soak-policies", manyPolicies(MaxFileBytes / len(policyYAML(0)))},
		// The most policies, each on one line.
		{"compact-policies", compactPolicies(MaxPolicies)},
	} {
		if len(bc.yaml) > MaxFileBytes {
			b.Fatalf("%s: %d bytes, over the cap", bc.name, len(bc.yaml))
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.yaml)))
			for b.Loop() {
				Parse(strings.NewReader(bc.yaml))
			}
		})
	}
}
