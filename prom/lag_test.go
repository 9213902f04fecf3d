package prom

import (
	"strings"
	"testing"
	"time"
)

func TestLag(t *testing.T) {
	cases := []struct {
		name, query string
		want        time.Duration
	}{
		{name: "an instant selector trails by nothing", query: `vllm:num_requests_waiting{namespace="a"}`, want: 0},
		{name: "a rate trails by half its window", query: `sum(rate(gateway_requests_total[1m]))`, want: 30 * time.Second},
		{name: "deriv is centred like rate", query: `sum(deriv(vllm:num_requests_running[2m]))`, want: time.Minute},
		{name: "the longest path counts, not the sum of the branches",
			query: `sum(rate(a_total[1m])) + sum(deriv(b[4m])) + c`, want: 2 * time.Minute},
		{name: "an offset trails by all of it", query: `rate(a_total[1m] offset 5m)`, want: 5*time.Minute + 30*time.Second},
		{name: "an offset on an instant selector", query: `a offset 90s`, want: 90 * time.Second},
		{name: "a subquery adds half its range to its inner query's lag",
			query: `max_over_time(rate(a_total[1m])[10m:30s])`, want: 5*time.Minute + 30*time.Second},
		{name: "histogram_quantile over bucket rates", query: `histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))`,
			want: 150 * time.Second},
		{name: "a negative offset reads ahead of nothing: no lag below zero", query: `a offset -5m`, want: 0},
		{name: "a selector pinned by @ does not move", query: `rate(a_total[10m] @ 1700000000)`, want: 0},
		{name: "a number", query: `42`, want: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Lag(tc.query)
			if err != nil {
				t.Fatalf("Lag(%q): %v", tc.query, err)
			}
			if got != tc.want {
				t.Errorf("Lag(%q) = %s, want %s", tc.query, got, tc.want)
			}
		})
	}
}

func TestLagNamesTheQueryItCannotParse(t *testing.T) {
	_, err := Lag(`rate(x[1m]`)
	if err == nil || !strings.Contains(err.Error(), `"rate(x[1m]"`) {
		t.Fatalf("Lag of a malformed query: got %v, want an error naming the query", err)
	}
}
