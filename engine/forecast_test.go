package engine

import (
	"errors"
	"math"
	"testing"

	"github.com/prescale/prescale/policy"
)

func TestLoadValue(t *testing.T) {
	tests := []struct {
		name    string
		s       policy.Sample
		want    float64
		wantErr bool
	}{
		{name: "a single value", s: policy.Sample{Value: 12.5}, want: 12.5},
		{name: "zero is a load", s: policy.Sample{Value: 0}, want: 0},
		// 1 + 2.5 + 0.5
		{name: "per-pod values are summed", s: policy.Sample{PerPod: map[string]float64{"a": 1, "b": 2.5, "c": 0.5}}, want: 4},
		{name: "a query error is missing", s: policy.Sample{Err: errors.New("empty result")}, wantErr: true},
		{name: "a per-pod result without series is missing, not 0", s: policy.Sample{PerPod: map[string]float64{}}, wantErr: true},
		{name: "negative is missing", s: policy.Sample{Value: -1}, wantErr: true},
		{name: "NaN is missing", s: policy.Sample{Value: math.NaN()}, wantErr: true},
		{name: "a NaN pod is missing", s: policy.Sample{PerPod: map[string]float64{"a": 1, "b": math.NaN()}}, wantErr: true},
		{name: "+Inf is missing", s: policy.Sample{Value: math.Inf(1)}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadValue(tc.s)
			if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
				t.Errorf("loadValue = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}
