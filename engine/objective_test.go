package engine

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The status's JSON carries a +Inf latency as "+Inf" (JSON has no infinity), and reads back.
func TestObjectiveStatusJSON(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		st   ObjectiveStatus
		want string
	}{
		{
			name: "a latency",
			st:   ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, Latency: f(1.5), Quantile: 0.9, Minutes: 3, ViolatedMinutes: 1},
			want: `{"sloSeconds":2,"budget":0.001,"quantile":0.9,"minutes":3,"violatedMinutes":1,"latencySeconds":1.5}`,
		},
		{
			name: "+Inf, a latency beyond any bound",
			st:   ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, Latency: f(math.Inf(1)), Quantile: 0.9, Fixed: true},
			want: `{"sloSeconds":2,"budget":0.001,"quantile":0.9,"fixed":true,"minutes":0,"violatedMinutes":0,"latencySeconds":"+Inf"}`,
		},
		{
			name: "missing: the error, no latency",
			st:   ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, LatencyError: "empty result", Quantile: 0.9},
			want: `{"sloSeconds":2,"budget":0.001,"latencyError":"empty result","quantile":0.9,"minutes":0,"violatedMinutes":0}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(&tc.st)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("Marshal() = %s\nwant %s", b, tc.want)
			}
			var back ObjectiveStatus
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.st, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	var st ObjectiveStatus
	if err := json.Unmarshal([]byte(`{"latencySeconds":"fast"}`), &st); err == nil {
		t.Error(`Unmarshal of "fast" succeeded, want an error`)
	}
}
