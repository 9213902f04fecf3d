package scaler

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"

	"github.com/prescale/prescale/policy"
)

// targetSelector is one policy's target's selector, for the check of selectors shared
// between policies.
type targetSelector struct {
	policy   string
	target   policy.TargetRef
	selector labels.Selector
}

// sharedPods returns, for each policy with pods (pods: its target's namespace and the
// pods its selector selects, by policy name), the other policies whose targets' selectors
// select one of them, sorted by name: the HPA's AmbiguousSelector, where each HPA checks
// that no pod its selector selects is also selected by another HPA's. Those policies know
// no longer which pods are theirs, and hold (policy.Observation.AmbiguousSelector).
// Selectors are matched only within their target's namespace. A policy absent from the
// result shares no pod.
func sharedPods(selectors []targetSelector, pods map[string][]*corev1.Pod) map[string][]targetSelector {
	idx := newSelectorIndex(selectors)
	var out map[string][]targetSelector
	for _, self := range selectors {
		var others []int
		for _, pod := range pods[self.policy] {
			for _, i := range idx.candidates(pod) {
				o := &selectors[i]
				if o.policy != self.policy && !slices.Contains(others, i) && o.selector.Matches(labels.Set(pod.Labels)) {
					others = append(others, i)
				}
			}
		}
		if len(others) == 0 {
			continue
		}
		if out == nil {
			out = map[string][]targetSelector{}
		}
		list := make([]targetSelector, len(others))
		for j, i := range others {
			list[j] = selectors[i]
		}
		slices.SortFunc(list, func(a, b targetSelector) int { return strings.Compare(a.policy, b.policy) })
		out[self.policy] = list
	}
	return out
}

// selectorIndex finds the selectors that may select a pod without matching every one
// against every pod: a thousand policies of a few pods each in one namespace would
// otherwise be millions of matches a tick. A selector with an equality (=, ==, in)
// requirement is filed under its first one's key and each of its values; one without
// (only !=, notin, exists, !key) is a candidate for every pod of its namespace.
type selectorIndex struct {
	byLabel map[labelKey][]int // by namespace, key and value
	always  map[string][]int   // by namespace
}

type labelKey struct{ namespace, key, value string }

func newSelectorIndex(selectors []targetSelector) selectorIndex {
	idx := selectorIndex{byLabel: map[labelKey][]int{}, always: map[string][]int{}}
	for i, s := range selectors {
		ns := s.target.Namespace
		filed := false
		if reqs, selectable := s.selector.Requirements(); selectable {
			for _, r := range reqs {
				switch r.Operator() {
				case selection.Equals, selection.DoubleEquals, selection.In:
					for _, v := range r.ValuesUnsorted() {
						k := labelKey{ns, r.Key(), v}
						idx.byLabel[k] = append(idx.byLabel[k], i)
					}
					filed = true
				}
				if filed {
					break
				}
			}
		}
		if !filed {
			idx.always[ns] = append(idx.always[ns], i)
		}
	}
	return idx
}

// candidates returns the indexes of the selectors that may select pod: each at most once
// (a selector is filed under one key, and a pod has one value of it).
func (idx selectorIndex) candidates(pod *corev1.Pod) []int {
	out := slices.Clone(idx.always[pod.Namespace])
	for k, v := range pod.Labels {
		out = append(out, idx.byLabel[labelKey{pod.Namespace, k, v}]...)
	}
	return out
}

// sharedMessage says which other policies' targets select pods of p's target (by sel),
// naming at most three.
func sharedMessage(p *policy.Policy, sel labels.Selector, others []targetSelector) string {
	names := make([]string, 0, 3)
	for _, o := range others[:min(3, len(others))] {
		names = append(names, fmt.Sprintf("policy %s (%s, selector %s)", o.policy, o.target, o.selector))
	}
	who := strings.Join(names, ", ")
	if n := len(others) - len(names); n > 0 {
		who += fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("pods that the selector %s of %s selects are also selected by the target of %s: neither knows which pods are its own, so prescale holds their replicas until no pod is selected by more than one",
		sel, p.Target, who)
}
