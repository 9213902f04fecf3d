//go:build e2e

package prom

import (
	"context"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/prescale/prescale/internal/testutil/promtest"
)

// History against a real Prometheus: a range longer than Prometheus takes in one query is
// split, and every step comes back once, in order.
func TestHistoryChunks(t *testing.T) {
	p := promtest.Start(t, promtest.Options{})
	s := newSource(t, Options{URL: p.URL(), Timeout: 10 * time.Second})
	ctx := context.Background()
	end := time.Now().Truncate(time.Second)
	start := end.Add(-3 * time.Minute)
	step := 10 * time.Millisecond
	// 3 min every 10 ms, both ends included: 180 / 0.01 + 1 = 18,001 points, above 11,000.
	const points = 18001

	// Prometheus refuses the range in one query: the limit is real.
	if _, _, _, err := s.api.QueryRange(ctx, "vector(1)", v1.Range{Start: start, End: end, Step: step}); err == nil {
		t.Fatalf("one range query of %d points: want Prometheus to refuse it", points)
	}

	// vector(time()) is each step's own timestamp, in seconds.
	got, err := s.History(ctx, "vector(time())", start, end, step, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != points {
		t.Fatalf("%d samples, want %d", len(got), points)
	}
	for i, x := range got {
		want := start.Add(time.Duration(i) * step)
		if !x.At.Equal(want) || x.Value != float64(want.UnixMilli())/1000 {
			t.Fatalf("sample %d = %v at %v, want %v at %v", i, x.Value, x.At, float64(want.UnixMilli())/1000, want)
		}
	}
}
