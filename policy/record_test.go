package policy

import (
	"encoding/json"
	"math"
	"testing"
)

func TestMetricResultJSON(t *testing.T) {
	tests := []struct {
		name string
		in   MetricResult
		want string
	}{
		{
			name: "a missing metric has no value, ratio or proposal",
			in:   MetricResult{Name: "gpu", Target: 70, Error: "timeout"},
			want: `{"name":"gpu","target":70,"error":"timeout"}`,
		},
		{
			name: "a zero value is written",
			in:   MetricResult{Name: "queue", Semantics: SemanticsPods, Target: 5, Proposal: 1, PodsWithSample: 1},
			want: `{"name":"queue","semantics":"Pods","value":0,"target":5,"ratio":0,"proposal":1,"podsWithSample":1}`,
		},
		{
			name: "warnings of a value",
			in:   MetricResult{Name: "queue", Semantics: SemanticsValue, Value: 3, Target: 5, Ratio: 0.6, Proposal: 2, Warnings: []string{"partial"}},
			want: `{"name":"queue","semantics":"Value","value":3,"target":5,"ratio":0.6,"proposal":2,"warnings":["partial"]}`,
		},
		{
			name: "warnings of a missing metric",
			in:   MetricResult{Name: "gpu", Target: 70, Error: "NaN", Warnings: []string{"partial"}},
			want: `{"name":"gpu","target":70,"error":"NaN","warnings":["partial"]}`,
		},
		{
			name: "an undefined ratio is null",
			in:   MetricResult{Name: "rps", Semantics: SemanticsAverageValue, Value: Float(math.Inf(1)), Ratio: Float(math.NaN()), Target: 5},
			want: `{"name":"rps","semantics":"AverageValue","value":null,"target":5,"ratio":null,"proposal":0}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}
