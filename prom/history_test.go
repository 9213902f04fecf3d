package prom

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/forecast"
)

func TestChunks(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	tests := []struct {
		name      string
		start     time.Time
		end       time.Time
		step      time.Duration
		maxPoints int
		want      []v1.Range
		wantErr   bool
	}{
		{
			// 0..9 s every 1 s is 10 points: one query
			name: "fewer points than the cap: one chunk", start: s(0), end: s(9), step: time.Second, maxPoints: 10,
			want: []v1.Range{{Start: s(0), End: s(9), Step: time.Second}},
		},
		{
			// 0..10 s is 11 points: 10 (0..9) then 1 (10..10)
			name: "one point over the cap: a second chunk of one point", start: s(0), end: s(10), step: time.Second, maxPoints: 10,
			want: []v1.Range{{Start: s(0), End: s(9), Step: time.Second}, {Start: s(10), End: s(10), Step: time.Second}},
		},
		{
			// 0..25 s every 5 s is 6 points (0, 5, 10, 15, 20, 25): 3 + 3
			name: "whole chunks", start: s(0), end: s(25), step: 5 * time.Second, maxPoints: 3,
			want: []v1.Range{{Start: s(0), End: s(10), Step: 5 * time.Second}, {Start: s(15), End: s(25), Step: 5 * time.Second}},
		},
		{
			// 0..27 s every 5 s: the points are 0..25 (27 is not on the grid): 6 points, as above
			name: "an end off the grid stops at the last step before it", start: s(0), end: s(27), step: 5 * time.Second, maxPoints: 3,
			want: []v1.Range{{Start: s(0), End: s(10), Step: 5 * time.Second}, {Start: s(15), End: s(25), Step: 5 * time.Second}},
		},
		{
			name: "start equals end: one point", start: s(5), end: s(5), step: time.Second, maxPoints: 11000,
			want: []v1.Range{{Start: s(5), End: s(5), Step: time.Second}},
		},
		{name: "end before start", start: s(5), end: s(4), step: time.Second, maxPoints: 10, wantErr: true},
		{name: "zero step", start: s(0), end: s(4), step: 0, maxPoints: 10, wantErr: true},
		{name: "zero points per query", start: s(0), end: s(4), step: time.Second, maxPoints: 0, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Chunks(tc.start, tc.end, tc.step, tc.maxPoints)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error %v, want error %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("chunks (-want +got):\n%s", diff)
			}
		})
	}
}

// 14 days every 15 s (the default history and interval) is 14*24*3600/15 + 1 = 80,641
// points: 7 chunks of 11,000 and one of 80,641 - 77,000 = 3,641.
func TestChunksFourteenDays(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	got, err := Chunks(t0, t0.Add(14*24*time.Hour), 15*time.Second, MaxPointsPerQuery)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 8 {
		t.Fatalf("%d chunks, want 8", len(got))
	}
	total := 0
	for i, r := range got {
		n := int(r.End.Sub(r.Start)/r.Step) + 1
		if n > MaxPointsPerQuery {
			t.Errorf("chunk %d has %d points, above %d", i, n, MaxPointsPerQuery)
		}
		if i > 0 && r.Start != got[i-1].End.Add(r.Step) {
			t.Errorf("chunk %d starts at %s, want one step after %s", i, r.Start, got[i-1].End)
		}
		total += n
	}
	if last := got[7]; total != 80641 || last.End.Sub(last.Start)/last.Step+1 != 3641 || !last.End.Equal(t0.Add(14*24*time.Hour)) {
		t.Errorf("%d points in all, last chunk %v..%v; want 80641, the last 3641 ending at the range's end", total, last.Start, last.End)
	}
}

func TestDecodeMatrix(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := func(n int) model.Time {
		return model.TimeFromUnixNano(t0.Add(time.Duration(n) * time.Second).UnixNano())
	}
	at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	pair := func(n int, v float64) model.SamplePair {
		return model.SamplePair{Timestamp: ts(n), Value: model.SampleValue(v)}
	}
	tests := []struct {
		name    string
		v       model.Value
		want    []forecast.Sample
		wantErr error
	}{
		{
			name: "one series in time order", v: model.Matrix{{Metric: model.Metric{}, Values: []model.SamplePair{pair(0, 1), pair(1, 2)}}},
			want: []forecast.Sample{{At: at(0), Value: 1}, {At: at(1), Value: 2}},
		},
		{
			// pod a: 1 at 0 s, 2 at 1 s; pod b: 10 at 1 s only -> 1 at 0 s, 12 at 1 s
			name: "per-pod series are summed at each step",
			v: model.Matrix{
				{Metric: model.Metric{"pod": "a"}, Values: []model.SamplePair{pair(0, 1), pair(1, 2)}},
				{Metric: model.Metric{"pod": "b"}, Values: []model.SamplePair{pair(1, 10)}},
			},
			want: []forecast.Sample{{At: at(0), Value: 1}, {At: at(1), Value: 12}},
		},
		{
			name: "NaN, infinite and negative values are missing, not zero",
			v: model.Matrix{{Metric: model.Metric{}, Values: []model.SamplePair{pair(0, math.NaN()), pair(1, math.Inf(1)),
				pair(2, -1), pair(3, 0), pair(4, 5)}}},
			want: []forecast.Sample{{At: at(3), Value: 0}, {At: at(4), Value: 5}},
		},
		{
			// pod b is NaN at 1 s: the step is missing, not a's 2 alone
			name: "a step with a NaN series is missing, not a partial sum",
			v: model.Matrix{
				{Metric: model.Metric{"pod": "a"}, Values: []model.SamplePair{pair(0, 1), pair(1, 2)}},
				{Metric: model.Metric{"pod": "b"}, Values: []model.SamplePair{pair(0, 3), pair(1, math.NaN())}},
			},
			want: []forecast.Sample{{At: at(0), Value: 4}},
		},
		{name: "an empty matrix is no samples", v: model.Matrix{}, want: []forecast.Sample{}},
		{
			name: "several series without the pod label",
			v: model.Matrix{{Metric: model.Metric{"x": "1"}, Values: []model.SamplePair{pair(0, 1)}},
				{Metric: model.Metric{"x": "2"}, Values: []model.SamplePair{pair(0, 1)}}},
			wantErr: ErrShape,
		},
		{name: "a vector is not a matrix", v: model.Vector{}, wantErr: ErrShape},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeMatrix(tc.v, DefaultPodLabel)
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" && tc.wantErr == nil {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}
