package backtest

import (
	"context"
	"errors"
	"net/http"
	neturl "net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestPrometheusLoadValidate(t *testing.T) {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		from, to time.Time
		step     time.Duration
		want     string // "" for none
	}{
		{name: "a day at the default step", from: day, to: day.Add(24 * time.Hour)},
		// 4,000,000 points at 1 s are 46 days, 7 h, 6 min, 40 s; a minute more is over.
		{name: "the most points", from: day, to: day.Add(4_000_000 * time.Second).Truncate(time.Minute), step: time.Second},
		{name: "a minute over the most points", from: day, to: day.Add(4_000_000 * time.Second).Truncate(time.Minute).Add(time.Minute), step: time.Second,
			want: "points: 2026-01-01T00:00:00Z to 2026-02-16T07:07:00Z at 1s is 4000020 points; at most 4000000 (46 days at 1s, 7.6 years at 1m)"},
		// The issue's: from 0 to 2026 at 1 s is 1,767,225,600 points (20,454 days x 86,400 s).
		{name: "56 years at 1s", from: time.Unix(0, 0), to: day, step: time.Second,
			want: "points: 1970-01-01T00:00:00Z to 2026-01-01T00:00:00Z at 1s is 1767225600 points; at most 4000000 (46 days at 1s, 7.6 years at 1m)"},
		{name: "before 1970", from: time.Unix(-60, 0), to: day,
			want: "from: must be 1970-01-01T00:00:00Z..2100-01-01T00:00:00Z, got 1969-12-31T23:59:00Z"},
		{name: "at 2100", from: day, to: MaxLoadTime,
			want: "to: must be 1970-01-01T00:00:00Z..2100-01-01T00:00:00Z, got 2100-01-01T00:00:00Z"},
		{name: "the zero time", to: day,
			want: "from: must be 1970-01-01T00:00:00Z..2100-01-01T00:00:00Z, got 0001-01-01T00:00:00Z"},
		{name: "to before from", from: day, to: day.Add(-time.Minute),
			want: "range: 2026-01-01T00:00:00Z to 2025-12-31T23:59:00Z: to must be after from"},
		{name: "not whole minutes", from: day, to: day.Add(90 * time.Second),
			want: "range: 2026-01-01T00:00:00Z to 2026-01-01T00:01:30Z: 1m30s, must be whole minutes"},
		{name: "a step that does not divide a minute", from: day, to: day.Add(time.Hour), step: 7 * time.Second,
			want: "step: must divide a minute, got 7s"},
		{name: "a negative step", from: day, to: day.Add(time.Hour), step: -time.Second,
			want: "step: must divide a minute, got -1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := PrometheusLoad{From: tc.from, To: tc.to, Step: tc.step}.Validate()
			got := ""
			if err != nil {
				got = err.Error()
				var pe *ParamError
				if !errors.As(err, &pe) {
					t.Errorf("%v is no *ParamError", err)
				}
			}
			if got != tc.want {
				t.Errorf("Validate: %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPrometheusLoadRefusesBeforeAllocating(t *testing.T) {
	// The range, with a client that would fail any query: refused before Load holds
	// a flag for each of its 1,767,225,600 steps (1.77 GB).
	l := PrometheusLoad{Client: failing{}, Query: "q", From: time.Unix(0, 0), To: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: time.Second}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := l.Load(context.Background())
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "is 1767225600 points; at most 4000000") {
		t.Errorf("Load: %v, want the points refused", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Load allocated %d bytes before refusing the range", got)
	}
}

// failing is a Prometheus client whose every request fails.
type failing struct{}

func (failing) URL(ep string, args map[string]string) *neturl.URL { return &neturl.URL{Path: ep} }

func (failing) Do(context.Context, *http.Request) (*http.Response, []byte, error) {
	return nil, nil, errors.New("no Prometheus here")
}
