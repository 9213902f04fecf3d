package prom

import (
	"fmt"
	"math"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/policy"
)

// maxNamedSeries bounds how many label sets an error about several series lists.
const maxNamedSeries = 3

// decode turns an instant query's result into a sample. It is pure: the Source's I/O ends
// before it. An empty vector gives ErrEmpty, which the caller refines into ErrStale.
func decode(v model.Value, podLabel model.LabelName) (policy.Sample, error) {
	switch r := v.(type) {
	case model.Vector:
		return decodeVector(r, podLabel)
	case *model.Scalar:
		if r == nil {
			return policy.Sample{}, fmt.Errorf("no result: %w", ErrShape)
		}
		return scalarSample(float64(r.Value), "scalar")
	case nil:
		return policy.Sample{}, fmt.Errorf("no result: %w", ErrShape)
	default:
		return policy.Sample{}, fmt.Errorf("%s result, want a vector or a scalar: %w", v.Type(), ErrShape)
	}
}

func decodeVector(vec model.Vector, podLabel model.LabelName) (policy.Sample, error) {
	if len(vec) == 0 {
		return policy.Sample{}, ErrEmpty
	}
	withPod := 0
	for _, s := range vec {
		if s.Histogram != nil {
			return policy.Sample{}, fmt.Errorf("%s: native histogram, want a float: %w", s.Metric, ErrShape)
		}
		if _, ok := s.Metric[podLabel]; ok {
			withPod++
		}
	}
	switch {
	case withPod == 0 && len(vec) == 1:
		return scalarSample(float64(vec[0].Value), vec[0].Metric.String())
	case withPod < len(vec):
		return policy.Sample{}, &PodLabelError{Label: string(podLabel), Without: len(vec) - withPod, Series: len(vec),
			Some: someSeries(withoutLabel(vec, podLabel))}
	}
	perPod := make(map[string]float64, len(vec))
	for _, s := range vec {
		pod := string(s.Metric[podLabel])
		if _, dup := perPod[pod]; dup {
			return policy.Sample{}, fmt.Errorf("pod %q in several series (%s): %w",
				pod, someSeries(withLabel(vec, podLabel, s.Metric[podLabel])), ErrShape)
		}
		val := float64(s.Value)
		if !finite(val) {
			return policy.Sample{}, fmt.Errorf("pod %q: value %v: %w", pod, val, ErrNotFinite)
		}
		perPod[pod] = val
	}
	return policy.Sample{PerPod: perPod}, nil
}

// decodeLatency turns an instant query's result into one latency, in seconds: one series
// without the pod label, or a scalar. +Inf is a latency beyond any bound; NaN and -Inf are
// ErrNotFinite, a result per pod or several series ErrShape, an empty vector ErrEmpty.
func decodeLatency(v model.Value, podLabel model.LabelName) (float64, error) {
	var val float64
	series := "scalar"
	switch r := v.(type) {
	case model.Vector:
		if len(r) == 0 {
			return 0, ErrEmpty
		}
		s := r[0]
		if _, ok := s.Metric[podLabel]; ok {
			return 0, fmt.Errorf("want one series, got a result per pod (%s): %w", someSeries(r), ErrShape)
		}
		if len(r) > 1 {
			return 0, fmt.Errorf("want one series, got %d (%s): %w", len(r), someSeries(r), ErrShape)
		}
		if s.Histogram != nil {
			return 0, fmt.Errorf("%s: native histogram, want a float: %w", s.Metric, ErrShape)
		}
		val, series = float64(s.Value), s.Metric.String()
	case *model.Scalar:
		if r == nil {
			return 0, fmt.Errorf("no result: %w", ErrShape)
		}
		val = float64(r.Value)
	case nil:
		return 0, fmt.Errorf("no result: %w", ErrShape)
	default:
		return 0, fmt.Errorf("%s result, want a vector or a scalar: %w", v.Type(), ErrShape)
	}
	if math.IsNaN(val) || math.IsInf(val, -1) {
		return 0, fmt.Errorf("%s: value %v: %w", series, val, ErrNotFinite)
	}
	return val, nil
}

// PodLabelError is the ErrShape of a vector of several series of which some or all lack the
// pod label: neither one series nor one series per pod. errors.Is(err, ErrShape) holds for
// it; errors.As tells it from the other shapes (prescale validate names it so).
type PodLabelError struct {
	// Label is the pod label (Options.PodLabel).
	Label string
	// Without of the Series series lack it.
	Without, Series int
	// Some names the first few label sets of the series without it.
	Some string
}

func (e *PodLabelError) Error() string {
	if e.Without == e.Series {
		return fmt.Sprintf("%d series without the %q label, want one (%s): %v", e.Series, e.Label, e.Some, ErrShape)
	}
	return fmt.Sprintf("%d of %d series without the %q label (%s): %v", e.Without, e.Series, e.Label, e.Some, ErrShape)
}

// Unwrap returns ErrShape, the class of the error.
func (e *PodLabelError) Unwrap() error { return ErrShape }

func scalarSample(v float64, series string) (policy.Sample, error) {
	if !finite(v) {
		return policy.Sample{}, fmt.Errorf("%s: value %v: %w", series, v, ErrNotFinite)
	}
	return policy.Sample{Value: v}, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// someSeries names the first maxNamedSeries label sets of vec.
func someSeries(vec model.Vector) string {
	names := make([]string, 0, maxNamedSeries)
	for i, s := range vec {
		if i == maxNamedSeries {
			names = append(names, "...")
			break
		}
		names = append(names, s.Metric.String())
	}
	return strings.Join(names, ", ")
}

func withoutLabel(vec model.Vector, l model.LabelName) model.Vector {
	var out model.Vector
	for _, s := range vec {
		if _, ok := s.Metric[l]; !ok {
			out = append(out, s)
		}
	}
	return out
}

func withLabel(vec model.Vector, l model.LabelName, v model.LabelValue) model.Vector {
	var out model.Vector
	for _, s := range vec {
		if s.Metric[l] == v {
			out = append(out, s)
		}
	}
	return out
}
