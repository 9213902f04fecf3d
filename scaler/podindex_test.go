package scaler

import (
	"slices"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// TestSelectPods: the pods read through the label index are those of the namespace that
// the selector matches, for selectors that require one value, several, a set of values, or
// none.
func TestSelectPods(t *testing.T) {
	indexer := newPodIndexer()
	var pods []*corev1.Pod
	for _, p := range []struct {
		ns, name string
		labels   map[string]string
	}{
		{"a", "web-1", map[string]string{"app": "web", "tier": "front"}},
		{"a", "web-2", map[string]string{"app": "web", "tier": "back"}},
		{"a", "db-1", map[string]string{"app": "db"}},
		{"a", "bare", nil},
		{"b", "web-1", map[string]string{"app": "web", "tier": "front"}},
		{"b", "cache-1", map[string]string{"app": "cache", "tier": "front"}},
	} {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, Labels: p.labels}}
		pods = append(pods, pod)
		if err := indexer.Add(pod); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ ns, selector string }{
		{"a", "app=web"},
		{"a", "app==web"},
		{"a", "app=web,tier=front"},
		{"a", "tier=front,app=web"},
		{"a", "app in (web)"},
		{"a", "app in (web,db)"},
		{"a", "app=web,tier notin (back)"},
		{"a", "app!=web"},
		{"a", "app"},
		{"a", "!app"},
		{"a", ""},
		{"a", "app=cache"},
		{"b", "app=web"},
		{"b", "tier=front"},
		{"c", "app=web"},
	} {
		sel, err := labels.Parse(tc.selector)
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for _, p := range pods {
			if p.Namespace == tc.ns && sel.Matches(labels.Set(p.Labels)) {
				want = append(want, p.Name)
			}
		}
		got, err := selectPods(indexer, tc.ns, sel)
		if err != nil {
			t.Fatalf("%s %q: %v", tc.ns, tc.selector, err)
		}
		var names []string
		for _, p := range got {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			t.Errorf("namespace %s, selector %q: got pods %v, want %v", tc.ns, tc.selector, names, want)
		}
	}
	// A pod's labels changed: the index follows.
	moved := pods[0].DeepCopy()
	moved.Labels = map[string]string{"app": "db"}
	if err := indexer.Update(moved); err != nil {
		t.Fatal(err)
	}
	got, err := selectPods(indexer, "a", labels.SelectorFromSet(labels.Set{"app": "db"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("after web-1 was relabelled app=db: got %d pods of app=db, want 2", len(got))
	}
}

// BenchmarkSelectPods: a target's pods among the pods of a thousand workloads of one
// namespace (the soak's layout, docs/performance.md), through the label index and by
// matching every pod of the namespace as the lister does.
func BenchmarkSelectPods(b *testing.B) {
	indexer := newPodIndexer()
	for i := range 1000 {
		for j := range 2 {
			app := "d" + strconv.Itoa(i)
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "soak", Name: app + "-" + strconv.Itoa(j),
				Labels: map[string]string{"app": app, "pod-template-hash": "abc" + strconv.Itoa(i)}}}
			if err := indexer.Add(pod); err != nil {
				b.Fatal(err)
			}
		}
	}
	sel := labels.SelectorFromSet(labels.Set{"app": "d500"})
	b.Run("index", func(b *testing.B) {
		for b.Loop() {
			if pods, err := selectPods(indexer, "soak", sel); err != nil || len(pods) != 2 {
				b.Fatalf("got %d pods, %v", len(pods), err)
			}
		}
	})
	b.Run("namespace", func(b *testing.B) {
		for b.Loop() {
			n := 0
			if err := cache.ListAllByNamespace(indexer, "soak", sel, func(any) { n++ }); err != nil || n != 2 {
				b.Fatalf("got %d pods, %v", n, err)
			}
		}
	})
}

// newPodIndexer is a pod cache with the informer's namespace index and podLabelIndex.
func newPodIndexer() cache.Indexer {
	return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
		cache.NamespaceIndex: cache.MetaNamespaceIndexFunc, podLabelIndex: podLabelKeys})
}
