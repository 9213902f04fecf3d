package scaler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// podLabelIndex indexes the cached pods by each of their labels, as "namespace/key=value":
// a target's pods are read from the pods that carry one of its selector's values, not by
// matching the selector against every pod of its namespace. In a namespace of a thousand
// workloads, that matching was a quarter of the controller's CPU (docs/performance.md).
const podLabelIndex = "labels"

// podLabelKeys is the index function of podLabelIndex.
func podLabelKeys(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, fmt.Errorf("index %s: want a *v1.Pod, got %T", podLabelIndex, obj)
	}
	keys := make([]string, 0, len(pod.Labels))
	for k, v := range pod.Labels {
		keys = append(keys, labelIndexKey(pod.Namespace, k, v))
	}
	return keys, nil
}

func labelIndexKey(namespace, key, value string) string {
	return namespace + "/" + key + "=" + value
}

// selectPods returns the cached pods of namespace that sel selects, in no particular
// order. It reads them through podLabelIndex, from the smallest set of the pods that carry
// one value sel requires; a selector that requires no single value (only set-based
// requirements, or none) is matched against every pod of the namespace. The pods are the
// cache's: read only.
func selectPods(indexer cache.Indexer, namespace string, sel labels.Selector) ([]*corev1.Pod, error) {
	var cands []string // an index key for each value that sel requires
	if reqs, selectable := sel.Requirements(); selectable {
		for _, r := range reqs {
			switch op := r.Operator(); {
			case r.Values().Len() != 1:
			case op == selection.Equals || op == selection.DoubleEquals || op == selection.In:
				cands = append(cands, labelIndexKey(namespace, r.Key(), r.Values().UnsortedList()[0]))
			}
		}
	}
	if len(cands) == 0 {
		pods, err := corelisters.NewPodLister(indexer).Pods(namespace).List(sel)
		if err != nil {
			return nil, fmt.Errorf("list the pods of namespace %s: %w", namespace, err)
		}
		return pods, nil
	}
	key := cands[0]
	if len(cands) > 1 { // the value that the fewest pods carry
		size := -1
		for _, k := range cands {
			keys, err := indexer.IndexKeys(podLabelIndex, k)
			if err != nil {
				return nil, fmt.Errorf("read the pods' label index: %w", err)
			}
			if size < 0 || len(keys) < size {
				key, size = k, len(keys)
			}
		}
	}
	objs, err := indexer.ByIndex(podLabelIndex, key)
	if err != nil {
		return nil, fmt.Errorf("read the pods' label index: %w", err)
	}
	var out []*corev1.Pod
	for _, obj := range objs {
		if pod, ok := obj.(*corev1.Pod); ok && sel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pod)
		}
	}
	return out, nil
}
