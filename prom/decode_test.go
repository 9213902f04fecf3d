package prom

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/policy"
)

// podSample is one series of vllm:num_requests_waiting as Prometheus returns it.
func podSample(pod string, v float64) *model.Sample {
	return &model.Sample{
		Metric: model.Metric{"__name__": "vllm:num_requests_waiting", "namespace": "llm", "pod": model.LabelValue(pod)},
		Value:  model.SampleValue(v),
	}
}

func series(labels model.Metric, v float64) *model.Sample {
	return &model.Sample{Metric: labels, Value: model.SampleValue(v)}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      model.Value
		want    policy.Sample
		wantErr error
		// wantMsg are substrings the error message must hold.
		wantMsg []string
		// wantPodLabel, when set, is the *PodLabelError the error must be.
		wantPodLabel *PodLabelError
	}{
		{
			name: "per-pod vector gives one value per pod",
			in:   model.Vector{podSample("a", 1), podSample("b", 2.5), podSample("c", 0)},
			want: policy.Sample{PerPod: map[string]float64{"a": 1, "b": 2.5, "c": 0}},
		},
		{
			name: "a single pod is still per-pod",
			in:   model.Vector{podSample("a", 3)},
			want: policy.Sample{PerPod: map[string]float64{"a": 3}},
		},
		{
			name: "negative values pass through: the engine rejects them",
			in:   model.Vector{podSample("a", -1)},
			want: policy.Sample{PerPod: map[string]float64{"a": -1}},
		},
		{
			name: "one series without the pod label is a scalar",
			in:   model.Vector{series(model.Metric{"namespace": "llm"}, 42)},
			want: policy.Sample{Value: 42},
		},
		{
			name: "a series without labels (sum) is a scalar",
			in:   model.Vector{series(model.Metric{}, 7)},
			want: policy.Sample{Value: 7},
		},
		{
			name: "scalar result",
			in:   &model.Scalar{Value: 0.5},
			want: policy.Sample{Value: 0.5},
		},
		{
			name:    "empty vector is an error, never zero",
			in:      model.Vector{},
			wantErr: ErrEmpty,
		},
		{
			name:    "NaN in a pod's series names the pod",
			in:      model.Vector{podSample("a", 1), podSample("b", math.NaN())},
			wantErr: ErrNotFinite,
			wantMsg: []string{`pod "b"`, "NaN"},
		},
		{
			name:    "+Inf in a pod's series",
			in:      model.Vector{podSample("a", math.Inf(1))},
			wantErr: ErrNotFinite,
			wantMsg: []string{`pod "a"`, "+Inf"},
		},
		{
			name:    "-Inf in a single series names the series",
			in:      model.Vector{series(model.Metric{"__name__": "queue"}, math.Inf(-1))},
			wantErr: ErrNotFinite,
			wantMsg: []string{"queue", "-Inf"},
		},
		{
			name:    "NaN scalar",
			in:      &model.Scalar{Value: model.SampleValue(math.NaN())},
			wantErr: ErrNotFinite,
			wantMsg: []string{"scalar", "NaN"},
		},
		{
			name: "several series without the pod label: how many and a few label sets",
			in: model.Vector{
				series(model.Metric{"shard": "1"}, 1), series(model.Metric{"shard": "2"}, 1),
				series(model.Metric{"shard": "3"}, 1), series(model.Metric{"shard": "4"}, 1),
			},
			wantErr: ErrShape,
			wantMsg: []string{"4 series without the \"pod\" label", `{shard="1"}`, `{shard="3"}`, "..."},
			wantPodLabel: &PodLabelError{Label: "pod", Without: 4, Series: 4,
				Some: `{shard="1"}, {shard="2"}, {shard="3"}, ...`},
		},
		{
			name:         "some series with the pod label and some without",
			in:           model.Vector{podSample("a", 1), series(model.Metric{"shard": "1"}, 1)},
			wantErr:      ErrShape,
			wantMsg:      []string{"1 of 2 series", `{shard="1"}`},
			wantPodLabel: &PodLabelError{Label: "pod", Without: 1, Series: 2, Some: `{shard="1"}`},
		},
		{
			name: "one pod twice",
			in: model.Vector{
				podSample("a", 1),
				series(model.Metric{"pod": "b", "container": "x"}, 1),
				series(model.Metric{"pod": "b", "container": "y"}, 2),
			},
			wantErr: ErrShape,
			wantMsg: []string{`pod "b" in several series`, `container="x"`, `container="y"`},
		},
		{
			name:    "matrix result",
			in:      model.Matrix{{Metric: model.Metric{"pod": "a"}}},
			wantErr: ErrShape,
			wantMsg: []string{"matrix result"},
		},
		{
			name:    "string result",
			in:      &model.String{Value: "x"},
			wantErr: ErrShape,
			wantMsg: []string{"string result"},
		},
		{
			name:    "native histogram",
			in:      model.Vector{{Metric: model.Metric{"pod": "a"}, Histogram: &model.SampleHistogram{}}},
			wantErr: ErrShape,
			wantMsg: []string{"native histogram"},
		},
		{
			name:    "no result at all",
			in:      nil,
			wantErr: ErrShape,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decode(tc.in, DefaultPodLabel)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("decode() error = %v, want %v", err, tc.wantErr)
			}
			var pe *PodLabelError
			if errors.As(err, &pe) != (tc.wantPodLabel != nil) {
				t.Fatalf("decode() error = %v (%T), want a *PodLabelError: %t", err, err, tc.wantPodLabel != nil)
			}
			if tc.wantPodLabel != nil {
				if diff := cmp.Diff(tc.wantPodLabel, pe); diff != "" {
					t.Errorf("decode() PodLabelError mismatch (-want +got):\n%s", diff)
				}
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("decode() error = %q, want it to contain %q", err, m)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decode() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeOtherPodLabel(t *testing.T) {
	in := model.Vector{series(model.Metric{"kubernetes_pod_name": "a", "pod": "exporter"}, 1)}
	got, err := decode(in, "kubernetes_pod_name")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(policy.Sample{PerPod: map[string]float64{"a": 1}}, got); diff != "" {
		t.Errorf("decode() mismatch (-want +got):\n%s", diff)
	}
}
