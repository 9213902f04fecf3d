package preflight

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMetricNames(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{name: "a selector", query: `vllm:num_requests_waiting{namespace="inference"}`, want: []string{"vllm:num_requests_waiting"}},
		{name: "the name as a matcher", query: `{__name__="x", pod="a"}`, want: []string{"x"}},
		{name: "a histogram's buckets in a quantile", query: `histogram_quantile(0.99, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket[1m])))`,
			want: []string{"vllm:e2e_request_latency_seconds_bucket"}},
		{name: "each name once, sorted", query: `sum by (pod) (b + a) / sum by (pod) (a)`, want: []string{"a", "b"}},
		{name: "a regular expression on the name names none", query: `{__name__=~"vllm:.*"}`},
		{name: "a number names none", query: `vector(1)`},
		{name: "a query that does not parse names none", query: `sum(`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, metricNames(tc.query)); diff != "" {
				t.Errorf("metricNames(%q) (-want +got):\n%s", tc.query, diff)
			}
		})
	}
}

func TestGroupsBy(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  bool
	}{
		{name: "sum by pod", query: `sum by (pod) (x)`, want: true},
		{name: "by pod and others", query: `avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL)`, want: true},
		{name: "by another label", query: `sum by (exported_pod) (DCGM_FI_DEV_GPU_UTIL)`},
		{name: "no aggregation", query: `x{pod=~"llama-.*"}`},
		{name: "without pod", query: `sum without (pod) (x)`},
		{name: "without another label keeps pod but does not ask for it", query: `sum without (container) (x)`},
		{name: "an outer sum drops the inner grouping", query: `sum(sum by (pod) (x))`},
		{name: "either side of a division", query: `sum by (pod) (x) / on (pod) y`, want: true},
		{name: "inside a function", query: `clamp_min(sum by (pod) (rate(x[1m])), 0)`, want: true},
		{name: "topk keeps the grouping inside", query: `topk(3, sum by (pod) (x))`, want: true},
		{name: "topk of a total does not", query: `topk(3, sum(x))`},
		{name: "a query that does not parse", query: `sum by (pod) (`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := groupsBy(tc.query, "pod"); got != tc.want {
				t.Errorf("groupsBy(%q, pod) = %t, want %t", tc.query, got, tc.want)
			}
		})
	}
}
