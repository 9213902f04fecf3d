package scaler

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/forecast"
	"github.com/prescale/prescale/policy"
)

// bufferWriter records the CapacityBuffers written and deleted, and keeps the applied ones
// in store, as the informer would see them.
type bufferWriter struct {
	Writer
	store   cache.Indexer
	applied []int64  // the replicas of each buffer applied
	deleted []string // namespace/name
	events  []string // type reason message
}

func (w *bufferWriter) Buffer(_ context.Context, u *unstructured.Unstructured) error {
	r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	w.applied = append(w.applied, r)
	return w.store.Update(u)
}

func (w *bufferWriter) Event(_ *corev1.ObjectReference, typ, reason, msg string) {
	w.events = append(w.events, typ+" "+reason+" "+msg)
}

func (w *bufferWriter) DeleteBuffer(_ context.Context, namespace, name string) error {
	w.deleted = append(w.deleted, namespace+"/"+name)
	return nil
}

// bufferController is a controller that leads, whose CapacityBuffers are in w.store.
func bufferController(opts Options) (*Controller, *bufferWriter) {
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	w := &bufferWriter{store: store}
	c := &Controller{opts: opts, writer: w, deps: Deps{Metrics: NewMetrics(prometheus.NewRegistry())},
		buffers:     cache.NewGenericLister(store, bufferGVR.GroupResource()),
		buffersSync: func() bool { return true }}
	lead(c)
	return c, w
}

// bufferPolicy forecasts the load with a linear fit (perReplica 10) 5 minutes ahead.
const bufferPolicy = `policies:
  - name: llm
    target: {apiVersion: apps/v1, kind: Deployment, namespace: models, name: llm}
    maxReplicas: 40
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    forecast:
      load: {query: lq, perReplica: 10}
      method: linear
      horizon: 5m
      history: 2h
`

// parseBufferPolicy returns bufferPolicy's policy.
func parseBufferPolicy(t *testing.T) *policy.Policy {
	t.Helper()
	f, err := policy.Parse(strings.NewReader(bufferPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return &f.Policies[0]
}

// rampEngine is the policy's engine fitted on 2 h of a load rising 1 every 15 s, stepped
// at epoch with the ramp's next value, 200, and the target at current replicas.
func rampEngine(t *testing.T, p *policy.Policy, current int32) (*engine.Engine, policy.Decision) {
	t.Helper()
	e, err := engine.New(p, engine.Options{Tick: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	history := make([]forecast.Sample, 480)
	for i := range history {
		back := len(history) - i
		history[i] = forecast.Sample{At: epoch.Add(-time.Duration(back) * 15 * time.Second), Value: 200 - float64(back)}
	}
	if _, err := e.Fit(history, nil, epoch); err != nil {
		t.Fatal(err)
	}
	res := e.Step(engine.Input{Observation: policy.Observation{SpecReplicas: current, StatusReplicas: current,
		Metrics: []policy.Sample{{Value: 200}}}, Load: &policy.Sample{Value: 200}, Writes: true}, epoch)
	return e, res.Decision
}

func TestSizeBuffer(t *testing.T) {
	p := parseBufferPolicy(t)
	// The forecast 5 min (its horizon) + the node lead ahead, rising 1 a 15 s step from 200:
	// with a lead of 10 min, 200 + 60 = 260 → 26 replicas ahead. The decision itself plans
	// 5 min ahead: 200 + 20 = 220 → 22 replicas (the HPA's default behavior adds up to 4
	// pods at once). The buffer is 26 - 22 = 4.
	tests := []struct {
		name     string
		writes   bool
		nodeLead time.Duration
		have     *int64 // the buffer in the cluster before, nil for none
		want     []int64
	}{
		{name: "the forecast over the node lead, less the replicas asked for now", writes: true, nodeLead: 10 * time.Minute, want: []int64{4}},
		// a 2.5-min lead: the largest of the 4 instants is its end, 200 + 30 = 230 → 23
		{name: "a shorter node lead asks for less", writes: true, nodeLead: 150 * time.Second, want: []int64{1}},
		{name: "a buffer already at its size is not written", writes: true, nodeLead: 10 * time.Minute, have: ptr(int64(4))},
		{name: "a buffer at another size is written", writes: true, nodeLead: 10 * time.Minute, have: ptr(int64(9)), want: []int64{4}},
		{name: "a pass that does not write (dry-run, another autoscaler) writes no buffer", writes: false, nodeLead: 10 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.Capacity.NodeLead = tc.nodeLead
			c, w := bufferController(opts)
			if tc.have != nil {
				if err := w.store.Add(bufferFor(p, "prescale", "uid-1", int32(*tc.have))); err != nil {
					t.Fatal(err)
				}
			}
			eng, dec := rampEngine(t, p, 19) // 220 / (10 × 19) is beyond the tolerance: the forecast wins
			if dec.DesiredReplicas != 22 {
				t.Fatalf("desired %d, want 22 (the forecast at its horizon)", dec.DesiredReplicas)
			}
			r := &pass{c: c, p: p, t: &policyState{eng: eng}, writes: tc.writes, res: engine.Result{Decision: dec}}
			r.obs.scale = &autoscalingv1.Scale{}
			r.obs.scale.UID = "uid-1"
			if err := r.sizeBuffer(context.Background(), epoch); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, w.applied); diff != "" {
				t.Errorf("buffers applied (-want +got):\n%s", diff)
			}
		})
	}
}

// withStatus returns buffer u created at created, with the ReadyForProvisioning condition
// as Karpenter's CapacityBuffer controller writes it (none for an empty status).
func withStatus(u *unstructured.Unstructured, created time.Time, status, reason, message string) *unstructured.Unstructured {
	u = u.DeepCopy()
	u.SetCreationTimestamp(metav1.NewTime(created))
	if status != "" {
		u.Object["status"] = map[string]any{"conditions": []any{
			map[string]any{"type": "ReadyForProvisioning", "status": status, "reason": reason, "message": message,
				"lastTransitionTime": created.Format(time.RFC3339), "observedGeneration": int64(1)},
			map[string]any{"type": "Provisioning", "status": "False", "reason": "RequiresNewCapacity",
				"message": "2/2 virtual pods required new capacity, 0 failed", "lastTransitionTime": created.Format(time.RFC3339)},
		}}
	}
	return u
}

// What the node autoscaler made of a buffer is read back from its ReadyForProvisioning
// condition: True resolved, False says why not, and none at all within 2 minutes of the
// buffer's creation means no node autoscaler reads it (Karpenter without its gate).
func TestBufferAckOf(t *testing.T) {
	p := parseBufferPolicy(t)
	tests := []struct {
		name         string
		buffer       *unstructured.Unstructured
		known, ready bool
		messageHas   []string
	}{
		{name: "resolved", buffer: withStatus(bufferFor(p, "prescale", "u", 3), epoch.Add(-time.Second), "True", "Resolved", "Pod template resolved successfully"),
			known: true, ready: true},
		{name: "the target not found", buffer: withStatus(bufferFor(p, "prescale", "u", 3), epoch.Add(-time.Hour), "False", "ScalableRefNotFound", `deployments.apps "llm" not found`),
			known: true, messageHas: []string{"cannot resolve the pods of CapacityBuffer models/prescale-llm", "ScalableRefNotFound", `deployments.apps "llm" not found`}},
		{name: "no condition, just created", buffer: withStatus(bufferFor(p, "prescale", "u", 3), epoch.Add(-119*time.Second), "", "", "")},
		{name: "no condition 2 minutes after its creation", buffer: withStatus(bufferFor(p, "prescale", "u", 3), epoch.Add(-2*time.Minute), "", "", ""),
			known: true, messageHas: []string{"no node autoscaler has read CapacityBuffer models/prescale-llm", "within 2m0s of its creation", "--feature-gates=CapacityBuffer=true"}},
		{name: "no condition on a buffer of 0 replicas asks for nothing", buffer: withStatus(bufferFor(p, "prescale", "u", 0), epoch.Add(-time.Hour), "", "", "")},
		{name: "a condition of status Unknown", buffer: withStatus(bufferFor(p, "prescale", "u", 3), epoch.Add(-time.Hour), "Unknown", "Resolving", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bufferAckOf(tc.buffer, epoch)
			if got.known != tc.known || got.ready != tc.ready {
				t.Errorf("known %v, ready %v (%q); want %v, %v", got.known, got.ready, got.message, tc.known, tc.ready)
			}
			for _, want := range tc.messageHas {
				if !strings.Contains(got.message, want) {
					t.Errorf("message %q lacks %q", got.message, want)
				}
			}
		})
	}
}

// sizeBuffer reports what the node autoscaler made of the buffer: prescale_capacity_buffer_ready,
// and a CapacityBufferNotReady warning once per change of its message (ticks apart: the
// message does not move with the clock), again after the buffer was resolved in between or
// was gone (its gauge then absent).
func TestSizeBufferReportsTheBuffersStatus(t *testing.T) {
	p := parseBufferPolicy(t)
	opts := DefaultOptions()
	opts.Capacity.NodeLead = 10 * time.Minute
	c, w := bufferController(opts)
	eng, dec := rampEngine(t, p, 19)
	st := &policyState{eng: eng}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c.deps.Metrics.BufferReady)
	const gone = "gone"
	steps := []struct {
		status, reason string
		wantGauge      string // "" for no series
		wantEvents     int
	}{
		{status: "", wantGauge: "0", wantEvents: 1},                         // unread for an hour: said once
		{status: "", wantGauge: "0", wantEvents: 1},                         // and not again
		{status: "True", reason: "Resolved", wantGauge: "1", wantEvents: 1}, // resolved
		{status: "False", reason: "ScalableRefNotFound", wantGauge: "0", wantEvents: 2},
		{status: "False", reason: "ScalableRefNotFound", wantGauge: "0", wantEvents: 2},
		{status: "True", reason: "Resolved", wantGauge: "1", wantEvents: 2},
		{status: "", wantGauge: "0", wantEvents: 3}, // a condition gone: said again
		{status: gone, wantGauge: "", wantEvents: 3},
		{status: "", wantGauge: "0", wantEvents: 4}, // a new buffer, unread: said again
	}
	for i, step := range steps {
		now := epoch.Add(time.Duration(i) * 15 * time.Second)
		b := withStatus(bufferFor(p, "prescale", "uid-1", 4), epoch.Add(-time.Hour), step.status, step.reason, "because")
		if step.status == gone {
			if err := w.store.Delete(b); err != nil {
				t.Fatal(err)
			}
		} else if err := w.store.Update(b); err != nil {
			t.Fatal(err)
		}
		r := &pass{c: c, p: p, t: st, writes: true, res: engine.Result{Decision: dec}}
		r.obs.scale = &autoscalingv1.Scale{}
		r.obs.scale.UID = "uid-1"
		if err := r.sizeBuffer(context.Background(), now); err != nil {
			t.Fatal(err)
		}
		var got string
		if n := testutil.CollectAndCount(reg, "prescale_capacity_buffer_ready"); n == 1 {
			got = fmt.Sprint(testutil.ToFloat64(c.deps.Metrics.BufferReady.WithLabelValues(p.Name)))
		} else if n != 0 {
			t.Fatalf("step %d: %d series of prescale_capacity_buffer_ready, want at most 1", i, n)
		}
		if got != step.wantGauge {
			t.Errorf("step %d (%q %s): prescale_capacity_buffer_ready = %q, want %q", i, step.status, step.reason, got, step.wantGauge)
		}
		if len(w.events) != step.wantEvents {
			t.Errorf("step %d (%q %s): %d events %q, want %d", i, step.status, step.reason, len(w.events), w.events, step.wantEvents)
		}
	}
	for _, e := range w.events {
		if !strings.HasPrefix(e, "Warning CapacityBufferNotReady ") {
			t.Errorf("event %q, want a CapacityBufferNotReady warning", e)
		}
	}
	// The one write: the buffer created again after it was gone.
	if diff := cmp.Diff([]int64{4}, w.applied); diff != "" {
		t.Errorf("buffers applied (-want +got):\n%s", diff)
	}
}

// A forecast not known yet (warming up: no history) leaves the buffer as it is: missing
// data releases no capacity, and creates none.
func TestSizeBufferWithoutAForecast(t *testing.T) {
	p := parseBufferPolicy(t)
	for _, have := range []bool{false, true} {
		c, w := bufferController(DefaultOptions())
		if have {
			if err := w.store.Add(bufferFor(p, "prescale", "uid-1", 3)); err != nil {
				t.Fatal(err)
			}
		}
		e, err := engine.New(p, engine.Options{Tick: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		res := e.Step(engine.Input{Observation: policy.Observation{SpecReplicas: 2, StatusReplicas: 2,
			Metrics: []policy.Sample{{Value: 20}}}, Load: &policy.Sample{Value: 20}, Writes: true}, epoch)
		r := &pass{c: c, p: p, t: &policyState{eng: e}, writes: true, res: res}
		r.obs.scale = &autoscalingv1.Scale{}
		if err := r.sizeBuffer(context.Background(), epoch); err != nil {
			t.Fatal(err)
		}
		if len(w.applied) != 0 {
			t.Errorf("a buffer before: %v: applied %v, want nothing", have, w.applied)
		}
	}
}

// The buffer is the target's: its scalableRef names it, it is labelled as prescale's and
// the policy's, and owned by the target, so that the garbage collector deletes it with it.
func TestBufferFor(t *testing.T) {
	got := bufferFor(parseBufferPolicy(t), "prescale", "uid-7", 3)
	want := map[string]any{
		"apiVersion": "autoscaling.x-k8s.io/v1beta1",
		"kind":       "CapacityBuffer",
		"metadata": map[string]any{
			"name": "prescale-llm", "namespace": "models",
			"labels":          map[string]any{"app.kubernetes.io/managed-by": "prescale", "prescale.io/policy": "llm", "prescale.io/install": "prescale"},
			"ownerReferences": []any{map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "llm", "uid": "uid-7"}},
		},
		"spec": map[string]any{
			"scalableRef": map[string]any{"apiGroup": "apps", "kind": "Deployment", "name": "llm"},
			"replicas":    int64(3),
		},
	}
	if diff := cmp.Diff(want, got.Object); diff != "" {
		t.Errorf("buffer (-want +got):\n%s", diff)
	}
}

// The buffers of policies that left, lost their forecast or moved namespace are deleted;
// the others stay, and so do another installation's. A follower, or an instance in
// dry-run, deletes none.
func TestPruneBuffers(t *testing.T) {
	f, err := policy.Parse(strings.NewReader(bufferPolicy + `  - name: plain
    target: {apiVersion: apps/v1, kind: Deployment, namespace: models, name: plain}
    maxReplicas: 4
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
`))
	if err != nil {
		t.Fatal(err)
	}
	kept, plain := f.Policies[0], f.Policies[1]
	gone := kept
	gone.Name = "gone"
	moved := kept
	moved.Target.Namespace = "elsewhere"
	for _, tc := range []struct {
		name    string
		leading bool
		dryRun  bool
		want    []string
	}{
		{name: "the leader deletes the buffers no policy with a forecast stands for", leading: true,
			want: []string{"elsewhere/prescale-llm", "models/prescale-gone", "models/prescale-plain"}},
		{name: "a follower deletes none"},
		{name: "dry-run deletes none", leading: true, dryRun: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, w := bufferController(DefaultOptions())
			if !tc.leading {
				c.lease.Store(nil)
			}
			c.dryRun.Store(tc.dryRun)
			for _, p := range []policy.Policy{kept, gone, moved, plain} {
				if err := w.store.Add(bufferFor(&p, "prescale", "uid", 2)); err != nil {
					t.Fatal(err)
				}
			}
			other := gone
			other.Name = "theirs"
			if err := w.store.Add(bufferFor(&other, "another", "uid", 2)); err != nil {
				t.Fatal(err)
			}
			c.pruneBuffers(context.Background(), f.Policies)
			got := w.deleted
			slices.Sort(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
		})
	}
}

// A buffer is sized for the node lead of the NodePools that can add its pods' GPU kind,
// else the longest measured of any node pool, else capacity.nodeLead.
func TestNodeLeadFor(t *testing.T) {
	gpuPod := &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("1")}}}}}}
	for _, tc := range []struct {
		name     string
		growth   map[string]alloc.Growth
		leads    map[string]time.Duration
		template *corev1.Pod
		want     time.Duration
	}{
		{name: "the NodePools of the pods' kind", growth: map[string]alloc.Growth{"nvidia.com/gpu": {GPUs: 8, Lead: 3 * time.Minute}},
			leads: map[string]time.Duration{"gpu": 3 * time.Minute, "cpu": 9 * time.Minute}, template: gpuPod, want: 3 * time.Minute},
		{name: "another kind's NodePools: the longest of any pool", growth: map[string]alloc.Growth{"amd.com/gpu": {GPUs: 8, Lead: time.Minute}},
			leads: map[string]time.Duration{"gpu": 3 * time.Minute, "cpu": 9 * time.Minute}, template: gpuPod, want: 9 * time.Minute},
		{name: "no template (capacity.mode off): the longest of any pool",
			leads: map[string]time.Duration{"gpu": 3 * time.Minute}, want: 3 * time.Minute},
		{name: "nothing measured: capacity.nodeLead", template: gpuPod, want: 7 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := DefaultOptions()
			opts.Capacity.NodeLead = 7 * time.Minute
			c := &Controller{opts: opts, growth: tc.growth, leads: tc.leads}
			if got := c.nodeLeadFor(tc.template); got != tc.want {
				t.Errorf("nodeLeadFor = %s, want %s", got, tc.want)
			}
		})
	}
}
