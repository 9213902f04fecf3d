package scaler

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/prescale/prescale/policy"
)

func TestAnnotationIsBounded(t *testing.T) {
	dec := policy.Decision{CurrentReplicas: 4, DesiredReplicas: 6, Reason: policy.ReasonScaleUpLimit, Metric: "queue", Proposal: 9,
		Clamps: []policy.Clamp{{Reason: policy.ReasonScaleUpLimit, From: 9, To: 6}}}
	for i := 0; i < 200; i++ {
		dec.Metrics = append(dec.Metrics, policy.MetricResult{Name: "m" + strings.Repeat("x", 40), Target: 5, Error: strings.Repeat("e", 500)})
	}
	got := annotationFor(dec, nil, nil, nil, false)
	if len(got) > maxAnnotation {
		t.Fatalf("annotation is %d bytes, want at most %d", len(got), maxAnnotation)
	}
	var r struct {
		Desired int32 `json:"desired"`
		Reason  string
		Clamps  []policy.Clamp
		Metrics []json.RawMessage
	}
	if err := json.Unmarshal([]byte(got), &r); err != nil {
		t.Fatalf("annotation is not JSON: %v", err)
	}
	if r.Desired != 6 || r.Reason != "ScaleUpLimit" || len(r.Clamps) != 1 || len(r.Metrics) == 0 || len(r.Metrics) == 200 {
		t.Errorf("annotation = %+v; want the decision with some, not all, metrics", r)
	}
}

func TestDescribe(t *testing.T) {
	dec := policy.Decision{Reason: policy.ReasonCapacityLimited, Metric: "queue", Proposal: 12,
		Clamps: []policy.Clamp{{Reason: policy.ReasonScaleUpLimit, From: 12, To: 8}, {Reason: policy.ReasonCapacityLimited, From: 8, To: 5}}}
	want := "CapacityLimited (metric queue proposed 12); ScaleUpLimit 12->8; CapacityLimited 8->5"
	if got := describe(dec); got != want {
		t.Errorf("describe = %q, want %q", got, want)
	}
}
