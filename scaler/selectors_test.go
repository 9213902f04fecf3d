package scaler

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/prescale/prescale/policy"
)

// labelled is a pod of namespace ns with labels kv (key, value, ...).
func labelled(ns, name string, kv ...string) *corev1.Pod {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: l}}
}

// selectorOf is policy name's target (Deployment ns/name) with selector sel.
func selectorOf(t *testing.T, name, ns, sel string) targetSelector {
	t.Helper()
	s, err := labels.Parse(sel)
	if err != nil {
		t.Fatal(err)
	}
	return targetSelector{policy: name, target: policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: ns, Name: name}, selector: s}
}

// podsOf lists, as observe does, the pods of pool that each selector selects in its
// namespace.
func podsOf(selectors []targetSelector, pool []*corev1.Pod) map[string][]*corev1.Pod {
	out := map[string][]*corev1.Pod{}
	for _, s := range selectors {
		for _, p := range pool {
			if p.Namespace == s.target.Namespace && s.selector.Matches(labels.Set(p.Labels)) {
				out[s.policy] = append(out[s.policy], p)
			}
		}
	}
	return out
}

func TestSharedPods(t *testing.T) {
	// sel is a policy, its selector, and its namespace when not "a".
	type sel []string
	tests := []struct {
		name      string
		selectors []sel
		pods      []*corev1.Pod
		want      map[string][]string // policy -> the others that select its pods
	}{
		{
			name:      "disjoint selectors share nothing",
			selectors: []sel{{"web", "app=web"}, {"chat", "app=chat"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web"), labelled("a", "c", "app", "chat")},
		},
		{
			// The canary's pod carries app=web too: web's selector selects it.
			name:      "a canary's selector inside the stable one's: both share its pod",
			selectors: []sel{{"web", "app=web"}, {"canary", "app=web,track=canary"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web"), labelled("a", "c", "app", "web", "track", "canary")},
			want:      map[string][]string{"web": {"canary"}, "canary": {"web"}},
		},
		{
			name:      "overlapping selectors with no pod in common share nothing",
			selectors: []sel{{"web", "app=web"}, {"canary", "app=web,track=canary"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web")},
		},
		{
			name:      "the same selector in another namespace shares nothing",
			selectors: []sel{{"web", "app=web"}, {"web-b", "app=web", "b"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web"), labelled("b", "w", "app", "web")},
		},
		{
			name:      "a selector of no equality (exists) is matched against every pod of its namespace",
			selectors: []sel{{"web", "app=web"}, {"any", "app"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web")},
			want:      map[string][]string{"web": {"any"}, "any": {"web"}},
		},
		{
			name:      "a selector of no equality (!=) that the pods fail shares nothing",
			selectors: []sel{{"web", "app=web"}, {"other", "app!=web"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web"), labelled("a", "o", "app", "chat")},
		},
		{
			name:      "an in requirement is found under each of its values",
			selectors: []sel{{"web", "app=web"}, {"chat", "app=chat"}, {"both", "app in (chat,web)"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web"), labelled("a", "c", "app", "chat")},
			want:      map[string][]string{"web": {"both"}, "chat": {"both"}, "both": {"chat", "web"}},
		},
		{
			// Filed under one of its equalities, it still matches only a pod that meets both.
			name:      "a selector filed under one equality still needs all of it",
			selectors: []sel{{"web", "app=web"}, {"gpu", "tier=gpu,app=web"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web", "tier", "cpu"), labelled("a", "g", "app", "chat", "tier", "gpu")},
		},
		{
			name:      "three policies over one pod: each names the two others, sorted",
			selectors: []sel{{"c", "app=web"}, {"a", "app=web"}, {"b", "app=web"}},
			pods:      []*corev1.Pod{labelled("a", "w", "app", "web")},
			want:      map[string][]string{"a": {"b", "c"}, "b": {"a", "c"}, "c": {"a", "b"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var selectors []targetSelector
			for _, s := range tc.selectors {
				ns := "a"
				if len(s) > 2 {
					ns = s[2]
				}
				selectors = append(selectors, selectorOf(t, s[0], ns, s[1]))
			}
			got := map[string][]string{}
			for name, others := range sharedPods(selectors, podsOf(selectors, tc.pods)) {
				for _, o := range others {
					got[name] = append(got[name], o.policy)
				}
			}
			want := tc.want
			if want == nil {
				want = map[string][]string{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("shared (-want +got):\n%s", diff)
			}
		})
	}
}
