package scaler

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/prescale/prescale/policy"
)

// A policy whose observation failed this tick still takes part with the selector it last
// observed: the other policy does not count the pods they share as its own. One not
// found has no selector any more.
func TestMarkSharedWithAFailedObservation(t *testing.T) {
	web, canary := selectorOf(t, "web", "a", "app=web"), selectorOf(t, "canary", "a", "app=web,track=canary")
	pod := labelled("a", "c", "app", "web", "track", "canary")
	policies := []policy.Policy{{Name: "web", Target: web.target}, {Name: "canary", Target: canary.target}}
	for _, tc := range []struct {
		name string
		last labels.Selector // canary's, as last observed
		want bool
	}{
		{name: "the last selector stands in", last: canary.selector, want: true},
		{name: "none after the target was not found", last: nil, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runs := []*pass{{p: &policies[0], obs: observed{selector: web.selector, pods: []*corev1.Pod{pod}}}, nil}
			targets := map[string]*policyState{"web": {selector: web.selector}, "canary": {selector: tc.last}}
			markShared(runs, policies, targets)
			if got := runs[0].obs.in.AmbiguousSelector; got != tc.want {
				t.Errorf("web's AmbiguousSelector = %v, want %v (why: %q)", got, tc.want, runs[0].shared)
			}
		})
	}
}
