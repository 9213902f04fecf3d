package sim

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// Family is one metric family of an imitated program, as its file in testdata/upstream
// defines it and the server modes export it: for drivers outside the sandbox that export
// the same series (the backtest's model), so that both take name, type, label names and
// bucket bounds from one definition.
type Family struct {
	// Name as exposed: a counter's with its _total, a histogram's without _bucket.
	Name string
	// Type is "counter", "gauge", "histogram" or "summary".
	Type string
	// Labels are the program's own label names, in registration order; the target labels
	// a scrape adds (PodTargetLabels) are not among them.
	Labels []string
	// Buckets are a histogram's upper bounds in the family's unit, without +Inf.
	Buckets []float64
}

// PodTargetLabels are the labels a PodMonitor or ServiceMonitor scrape adds to each
// series of a server's pod, in the order the server modes add them.
func PodTargetLabels() []string { return slices.Clone(podTarget) }

// VLLMFamilies returns the families of vLLM V1 as the vllm mode exports them, by name;
// maxModelLen sets the token histograms' buckets.
func VLLMFamilies(maxModelLen int) map[string]Family {
	return exported(newVLLM("", maxModelLen, 0).families())
}

// DCGMFamilies returns dcgm-exporter's families as the dcgm imitation exports them, by
// name. Their labels include the pod mapping's container, namespace and pod.
func DCGMFamilies() map[string]Family { return exported(newDCGM(defaultDCGMInterval, 1).families()) }

// GatewayFamilies returns the Gateway API Inference Extension endpoint picker's families as
// the gateway imitation exports them, by name.
func GatewayFamilies() map[string]Family {
	return exported(newGateway("", "", "", 1, time.Second).families())
}

// DefaultDCGMInterval is dcgm-exporter's default collection interval, at which
// DCGMFamilies' series change.
const DefaultDCGMInterval = defaultDCGMInterval

// DefaultPrefillRatio is the prompt tokens a server mode prefills in the time of one
// decode step without Options.PrefillRatio (Engine.PrefillRatio).
const DefaultPrefillRatio = defaultPrefillRatio

func exported(fs []*family) map[string]Family {
	out := make(map[string]Family, len(fs))
	for _, f := range fs {
		out[f.name] = Family{Name: f.name, Type: [...]string{"counter", "gauge", "histogram", "summary"}[f.kind],
			Labels: slices.Clone(f.labels), Buckets: slices.Clone(f.buckets)}
	}
	return out
}

// DCGMLabelValues returns the values of DCGMFamilies' labels, in their order, for the GPU
// of index index on node, held by container of pod in namespace: the UUID and bus id the
// dcgm imitation derives from them.
func DCGMLabelValues(node string, index int, container, namespace, pod string) []string {
	x := gpu{node: node, index: index}
	return []string{strconv.Itoa(index), x.uuid(), fmt.Sprintf("00000000:%02X:00.0", 0x18+index),
		"nvidia" + strconv.Itoa(index), gpuModelName, node, gpuDriver, container, namespace, pod}
}

// Export records one tick of a server-mode Sim without a cluster, as Run does: r is the
// fluid model's tick, ready the Ready pods, each holding a GPU on node node-0 in container
// server, now the wall time. It lets other packages hold their series against the
// simulator's (the backtest's model does).
func (s *Sim) Export(r Report, ready []string, now time.Time) {
	hs := make([]holder, len(ready))
	for i, p := range ready {
		hs[i] = holder{namespace: s.o.Namespace, pod: p, node: "node-0", container: "server"}
	}
	s.exportServers(r, ready, hs, now)
}
