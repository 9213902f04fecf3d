package prom

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/forecast"
)

// MaxPointsPerQuery is the most points History asks one range query for: Prometheus
// refuses a range query of more than 11,000 points per series.
const MaxPointsPerQuery = 11000

// History runs query as range queries from start to end (both included) every step, at
// most MaxPointsPerQuery points each, with lookback as the lookback delta, and returns the
// samples in time order. A result labelled by the pod label is summed over its series at
// each step (the total load); several series without it are ErrShape. Steps without a
// sample, or with a NaN, ±Inf or negative value in any series, are left out (missing,
// never zero). Errors
// name the query and the failing chunk and wrap the package's sentinels.
func (s *Source) History(ctx context.Context, query string, start, end time.Time, step, lookback time.Duration) ([]forecast.Sample, error) {
	chunks, err := Chunks(start, end, step, MaxPointsPerQuery)
	if err != nil {
		return nil, fmt.Errorf("range query %q: %w: %w", query, err, ErrBadQuery)
	}
	var out []forecast.Sample
	for _, r := range chunks {
		v, err := s.queryRange(ctx, query, r, lookback)
		if err != nil {
			return nil, fmt.Errorf("range query %q from %s to %s: %w", query,
				r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), err)
		}
		samples, err := decodeMatrix(v, s.podLabel)
		if err != nil {
			return nil, fmt.Errorf("range query %q: %w", query, err)
		}
		out = append(out, samples...)
	}
	return out, nil
}

// queryRange sends one range query; its error wraps the class's sentinel and the cause.
func (s *Source) queryRange(ctx context.Context, query string, r v1.Range, lookback time.Duration) (model.Value, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.queries.Add(1)
	v, _, _, err := s.api.QueryRange(ctx, query, r,
		v1.WithTimeout(wireDuration(s.timeout)), v1.WithLookbackDelta(wireDuration(max(lookback, minMaxAge))))
	if err == nil {
		return v, nil
	}
	err = refine(err)
	class := classify(ctx, err)
	if class == nil {
		return nil, err
	}
	return nil, fmt.Errorf("%w: %w", class, err)
}

// Chunks splits the range query from start to end (both included) every step into
// ranges of at most maxPoints points each, in time order, each starting one step after
// the previous one's end. The last may be shorter. start after end, a step below a
// millisecond or maxPoints below 1 are errors.
func Chunks(start, end time.Time, step time.Duration, maxPoints int) ([]v1.Range, error) {
	switch {
	case step < time.Millisecond:
		return nil, fmt.Errorf("step must be at least 1ms, got %s", step)
	case maxPoints < 1:
		return nil, fmt.Errorf("points per query must be at least 1, got %d", maxPoints)
	case end.Before(start):
		return nil, fmt.Errorf("range end %s is before its start %s", end.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
	}
	points := int(end.Sub(start)/step) + 1
	out := make([]v1.Range, 0, (points+maxPoints-1)/maxPoints)
	for first := 0; first < points; first += maxPoints {
		n := min(maxPoints, points-first)
		out = append(out, v1.Range{Start: start.Add(time.Duration(first) * step),
			End: start.Add(time.Duration(first+n-1) * step), Step: step})
	}
	return out, nil
}

// decodeMatrix turns a range query's matrix into one sample per step, in time order: the
// single series, or the sum of per-pod series at each step.
func decodeMatrix(v model.Value, podLabel model.LabelName) ([]forecast.Sample, error) {
	m, ok := v.(model.Matrix)
	if !ok {
		if v == nil {
			return nil, fmt.Errorf("no result: %w", ErrShape)
		}
		return nil, fmt.Errorf("%s result, want a matrix: %w", v.Type(), ErrShape)
	}
	if len(m) > 1 {
		for _, ss := range m {
			if _, ok := ss.Metric[podLabel]; !ok {
				return nil, fmt.Errorf("%d series, and %s has no %q label: want one series, or per-pod series to sum: %w",
					len(m), ss.Metric, podLabel, ErrShape)
			}
		}
	}
	// A step where some series is NaN, infinite or negative is missing altogether: its
	// sum over the other series would undercount.
	sums, bad := map[model.Time]float64{}, map[model.Time]bool{}
	for _, ss := range m {
		for _, p := range ss.Values {
			val := float64(p.Value)
			if math.IsNaN(val) || math.IsInf(val, 0) || val < 0 {
				bad[p.Timestamp] = true
				continue
			}
			sums[p.Timestamp] += val
		}
	}
	out := make([]forecast.Sample, 0, len(sums))
	for ts, val := range sums {
		if !bad[ts] {
			out = append(out, forecast.Sample{At: ts.Time(), Value: val})
		}
	}
	slices.SortFunc(out, func(a, b forecast.Sample) int { return a.At.Compare(b.At) })
	return out, nil
}
