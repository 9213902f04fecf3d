package scaler

// These tests drive a Controller through its stable surface only (New, Start, Tick,
// Status, Deps) against fake clients, and judge it by what it did to them: the scale
// updates the fake API server accepted, the actions each fake client recorded, the
// recorder's events, the log and the metrics. lead is the one place that touches the
// controller's internals.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	scalefake "k8s.io/client-go/scale/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// webPolicy drives Deployment default/web on one scalar metric, load, with an External
// AverageValue target of 10: its proposal is ceil(load / 10) (outside the 0.1 tolerance).
// Scale-ups are limited to 1 pod per 60 s, from the replicas at the start of the period.
const webPolicy = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 10
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleUp:
        stabilizationWindowSeconds: 0
        policies: [{type: Pods, value: 1, periodSeconds: 60}]
`

var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

// cluster is a fake API server holding Deployment default/web's scale subresource, the
// fake clients in front of it, and the rest of a Controller's Deps.
type cluster struct {
	t       *testing.T
	ctx     context.Context // carries a logger that writes to logs
	kube    *kubefake.Clientset
	dyn     *dynamicfake.FakeDynamicClient
	scales  *scalefake.FakeScaleClient
	mapper  *fakeMapper
	source  *fixedSource
	clock   *clocktesting.FakeClock
	events  *record.FakeRecorder
	metrics *Metrics

	mu sync.Mutex
	// scale is what the server holds; its resourceVersion changes with every write, and an
	// update carrying another one is a Conflict, as on a real API server.
	scale *autoscalingv1.Scale
	// getErr and updateErr, while set, answer every Get and Update of the scale.
	getErr, updateErr error
	// raceTo, when set, is another writer's spec.replicas, written just after the next Get
	// is answered: between the controller's read and its write.
	raceTo *int32
	// written holds spec.replicas of each Update the server accepted.
	written []int32
	logs    []string
	// writer, when set, makes the controller's writes (Deps.Writer).
	writer Writer
	// history, when set, loads the forecasts' history (Deps.History).
	history HistorySource
}

// newCluster serves Deployment default/web at replicas (uid-1), with a load of 0.
func newCluster(t *testing.T, replicas int32) *cluster {
	t.Helper()
	cl := &cluster{t: t, kube: kubefake.NewClientset(), scales: &scalefake.FakeScaleClient{},
		source: &fixedSource{samples: map[string]policy.Sample{"load": {Value: 0}}},
		clock:  clocktesting.NewFakeClock(epoch), events: record.NewFakeRecorder(100),
		metrics: NewMetrics(prometheus.NewRegistry())}
	cl.scale = &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1", ResourceVersion: "1"},
		Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
		Status:     autoscalingv1.ScaleStatus{Replicas: replicas, Selector: "app=web"},
	}
	cl.ctx = klog.NewContext(t.Context(), funcr.New(func(prefix, args string) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		cl.logs = append(cl.logs, args)
	}, funcr.Options{}))

	rm := meta.NewDefaultRESTMapper([]schema.GroupVersion{{Group: "apps", Version: "v1"}})
	rm.Add(schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, meta.RESTScopeNamespace)
	cl.mapper = &fakeMapper{RESTMapper: rm}

	deploy := &unstructured.Unstructured{}
	deploy.SetAPIVersion("apps/v1")
	deploy.SetKind("Deployment")
	deploy.SetNamespace("default")
	deploy.SetName("web")
	cl.dyn = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), deploy)

	cl.scales.AddReactor("get", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if cl.getErr != nil {
			return true, nil, cl.getErr
		}
		got := cl.scale.DeepCopy()
		if cl.raceTo != nil {
			cl.setLocked(*cl.raceTo)
			cl.raceTo = nil
		}
		return true, got, nil
	})
	cl.scales.AddReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		if cl.updateErr != nil {
			return true, nil, cl.updateErr
		}
		s := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		if s.ResourceVersion != cl.scale.ResourceVersion {
			return true, nil, apierrors.NewConflict(deployments, s.Name,
				errors.New("the object has been modified; please apply your changes to the latest version and try again"))
		}
		cl.setLocked(s.Spec.Replicas)
		cl.written = append(cl.written, s.Spec.Replicas)
		return true, cl.scale.DeepCopy(), nil
	})
	return cl
}

// setLocked writes spec.replicas (status follows at once) and a new resourceVersion.
func (cl *cluster) setLocked(replicas int32) {
	rv, _ := strconv.Atoi(cl.scale.ResourceVersion)
	cl.scale.ResourceVersion = strconv.Itoa(rv + 1)
	cl.scale.Spec.Replicas, cl.scale.Status.Replicas = replicas, replicas
}

// scaleTo is another writer (kubectl scale, an HPA, the leader seen by a follower) setting
// spec.replicas.
func (cl *cluster) scaleTo(replicas int32) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.setLocked(replicas)
}

// recreate deletes the Deployment and creates one of the same name with a new uid.
func (cl *cluster) recreate(uid types.UID, replicas int32) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	cl.setLocked(replicas)
	cl.scale.UID = uid
}

func (cl *cluster) set(f func(cl *cluster)) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	f(cl)
}

func (cl *cluster) replicas() int32 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.scale.Spec.Replicas
}

func (cl *cluster) writes() []int32 {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return append([]int32(nil), cl.written...)
}

// controller builds a Controller on the cluster for a policy file and starts its caches.
func (cl *cluster) controller(file string, opts Options) *Controller {
	cl.t.Helper()
	f, err := policy.Parse(strings.NewReader(file))
	if err != nil {
		cl.t.Fatalf("parse the policy file: %v", err)
	}
	c, err := New(opts, Deps{Kube: cl.kube, Dynamic: cl.dyn, Scales: cl.scales, Mapper: cl.mapper, Source: cl.source, Latency: cl.source,
		Clock: cl.clock, Recorder: cl.events, Metrics: cl.metrics, Writer: cl.writer, History: cl.history}, f.Policies)
	if err != nil {
		cl.t.Fatal(err)
	}
	if err := c.Start(cl.ctx); err != nil {
		cl.t.Fatal(err)
	}
	return c
}

// options are the defaults with the GPU capacity cap off (this fake cluster has no nodes)
// and the scale read through the scale client.
func options() Options {
	o := DefaultOptions()
	o.Capacity.Mode = CapacityOff
	o.WatchTargets = false // the scale is served by the scale client's reactors
	return o
}

// lead makes c the leader without running Lead's ticker: the tests tick by hand. It is the
// only place these tests touch the controller's internals.
func lead(c *Controller) { c.lease.Store(&leaseHold{ctx: context.Background()}) }

// tickAt ticks c once at epoch + at and returns the events it recorded.
func (cl *cluster) tickAt(c *Controller, at time.Duration) []string {
	cl.t.Helper()
	cl.clock.SetTime(epoch.Add(at))
	c.Tick(cl.ctx)
	c.awaitRecords() // the decision records, written after the tick
	var got []string
	for {
		select {
		case e := <-cl.events.Events:
			got = append(got, e)
		default:
			return got
		}
	}
}

// writeActions lists every action that would change an object, on every fake client.
func (cl *cluster) writeActions() []string {
	var out []string
	for _, c := range []struct {
		name string
		f    interface{ Actions() []clienttesting.Action }
	}{{"kube", cl.kube}, {"dynamic", cl.dyn}, {"scale", cl.scales}} {
		for _, a := range c.f.Actions() {
			switch a.GetVerb() {
			case "get", "list", "watch":
				continue
			}
			out = append(out, fmt.Sprintf("%s: %s %s/%s", c.name, a.GetVerb(), a.GetResource().Resource, a.GetSubresource()))
		}
	}
	return out
}

// scaleUpdates counts the scale updates attempted, accepted or not.
func (cl *cluster) scaleUpdates() int {
	n := 0
	for _, a := range cl.scales.Actions() {
		if a.GetVerb() == "update" {
			n++
		}
	}
	return n
}

// logged counts the log lines that contain s.
func (cl *cluster) logged(s string) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := 0
	for _, l := range cl.logs {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// reasons returns each event's type and reason ("Normal SuccessfulRescale").
func reasons(events []string) []string {
	var out []string
	for _, e := range events {
		f := strings.Fields(e)
		out = append(out, f[0]+" "+f[1])
	}
	return out
}

// fixedSource answers each query with a fixed sample; Sample.Err is returned as the error.
type fixedSource struct {
	mu      sync.Mutex
	samples map[string]policy.Sample
	// onSample, when set, runs at each query (outside mu): a test's hook into the middle
	// of a tick.
	onSample func()
}

func (s *fixedSource) Sample(_ context.Context, query string, _ time.Time, _ time.Duration) (policy.Sample, error) {
	s.mu.Lock()
	hook := s.onSample
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.samples[query]
	if !ok {
		return policy.Sample{}, fmt.Errorf("query %q: no such series", query)
	}
	return v, v.Err
}

// Latency answers as Sample does, with the value of a scalar sample: a result per pod is
// not one series.
func (s *fixedSource) Latency(ctx context.Context, query string, now time.Time, maxAge time.Duration) (float64, []string, error) {
	v, err := s.Sample(ctx, query, now, maxAge)
	switch {
	case err != nil:
		return 0, nil, err
	case v.PerPod != nil:
		return 0, nil, fmt.Errorf("query %q: want one series, got a result per pod", query)
	}
	return v.Value, v.Warnings, nil
}

func (s *fixedSource) set(query string, v policy.Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.samples[query] = v
}

// fakeMapper is a DefaultRESTMapper that counts its resets and can stop serving every kind,
// as a discovery mapper does for a CRD not installed.
type fakeMapper struct {
	meta.RESTMapper
	mu       sync.Mutex
	unserved bool
	resets   int
}

func (m *fakeMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	m.mu.Lock()
	unserved := m.unserved
	m.mu.Unlock()
	if unserved {
		return nil, &meta.NoKindMatchError{GroupKind: gk, SearchedVersions: versions}
	}
	return m.RESTMapper.RESTMapping(gk, versions...)
}

func (m *fakeMapper) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.resets++
}

func (m *fakeMapper) setUnserved(v bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.unserved = v
}

var _ meta.ResettableRESTMapper = (*fakeMapper)(nil)

// Another writer changes the scale between the tick's read and its write: the update, made
// from the old replicas, fails with a Conflict. prescale drops that decision (it does not
// write it over the other writer's change, record it, or report a rescale) and decides
// again from the fresh scale at the next tick.
func TestScaleConflict(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50}) // proposal ceil(50 / 10) = 5
	four := int32(4)
	cl.set(func(cl *cluster) { cl.raceTo = &four })

	// Read 2, decided 2 + 1 = 3; meanwhile another writer set 4: 3 is stale.
	events := cl.tickAt(c, 0)
	if got := cl.writes(); len(got) != 0 {
		t.Errorf("after the conflict the server accepted writes %v, want none", got)
	}
	if got := cl.replicas(); got != 4 {
		t.Errorf("after the conflict spec.replicas = %d, want 4, the other writer's", got)
	}
	if got := cl.scaleUpdates(); got != 1 {
		t.Errorf("%d scale updates attempted, want 1 (no retry of a decision made from a stale scale)", got)
	}
	if len(events) != 0 {
		t.Errorf("events after the conflict: %q, want none", events)
	}
	if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", "conflict")); got != 1 {
		t.Errorf(`prescale_scales_total{result="conflict"} = %v, want 1`, got)
	}
	for _, result := range []string{"ok", "error"} {
		if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", result)); got != 0 {
			t.Errorf(`prescale_scales_total{result=%q} = %v, want 0`, result, got)
		}
	}
	if got := cl.logged("another writer"); got != 1 {
		t.Errorf("the conflict was logged %d times, want once", got)
	}

	// 15 s: decided from 4. No scale-up of prescale's in the period (the other writer's
	// change is not prescale's while it leads), so the limit is 4 + 1 = 5 = the proposal.
	events = cl.tickAt(c, 15*time.Second)
	if diff := cmp.Diff([]int32{5}, cl.writes()); diff != "" {
		t.Errorf("accepted scale writes (-want +got):\n%s", diff)
	}
	if st := c.Status()[0]; count(st.Current) != "4" || count(st.Desired) != "5" {
		t.Errorf("the next tick decided %s -> %s, want 4 -> 5", count(st.Current), count(st.Desired))
	}
	if len(events) != 1 || !strings.HasPrefix(events[0], "Normal SuccessfulRescale New size: 5;") {
		t.Errorf("events of the next tick: %q, want one SuccessfulRescale to 5", events)
	}
}

// A target deleted and created again under the same name is another object: the decision
// history of the old one (its recent scale-up, which the rate policy counts) is dropped, and
// a TargetRecreated event says so. The same object keeps its history.
func TestRecreatedTarget(t *testing.T) {
	tests := []struct {
		name       string
		uid        types.UID
		wantWrites []int32
		wantEvents []string
	}{
		{
			// At 15 s the scale is 2 again; the t0 scale-up (+1) is within the 60 s period:
			// the period started at 2 - 1 = 1 replica, so the limit is 1 + 1 = 2: no write.
			name: "same uid: the scale-up at t0 still counts", uid: "uid-1",
			wantWrites: []int32{3},
			wantEvents: []string{"Normal SuccessfulRescale"},
		},
		{
			// A new object: no scale-up in its period, the limit is 2 + 1 = 3: written.
			name: "new uid: the history is reset", uid: "uid-2",
			wantWrites: []int32{3, 3},
			wantEvents: []string{"Normal SuccessfulRescale", "Normal TargetRecreated", "Normal SuccessfulRescale"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			c := cl.controller(webPolicy, options())
			lead(c)
			// load 50: proposal ceil(50 / 10) = 5, limited to 2 + 1 = 3.
			cl.source.set("load", policy.Sample{Value: 50})
			events := cl.tickAt(c, 0)
			cl.recreate(tc.uid, 2)
			events = append(events, cl.tickAt(c, 15*time.Second)...)
			if diff := cmp.Diff(tc.wantWrites, cl.writes()); diff != "" {
				t.Errorf("accepted scale writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantEvents, reasons(events)); diff != "" {
				t.Errorf("events (-want +got):\n%s\n%q", diff, events)
			}
			for _, e := range events {
				if strings.Contains(e, "TargetRecreated") && !strings.Contains(e, "uid uid-2, was uid-1") {
					t.Errorf("event %q does not name both uids", e)
				}
			}
		})
	}
}

// In dry-run prescale writes nothing, and counts another writer's change of spec.replicas
// in its rate policies as if it had been its own, so that its decisions are those it would
// have made in that writer's place.
func TestDryRunAdoptsAnotherWritersChange(t *testing.T) {
	cl := newCluster(t, 2)
	opts := options()
	opts.DryRun = true
	c := cl.controller(webPolicy, opts)
	// A leader: only dry-run keeps it from writing. Load 50: proposal ceil(50 / 10) = 5
	// throughout.
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50})

	steps := []struct {
		at          time.Duration
		otherWriter int32 // > 0: another writer sets spec.replicas to this before the tick
		missing     bool  // the load query fails (a leader would warn FailedGetMetric)
		want        int32
		reason      policy.Reason
	}{
		// 2 + 1 pod per 60 s = 3, not written.
		{at: 0, want: 3, reason: policy.ReasonScaleUpLimit},
		// Another writer scales 2 -> 3, seen at 15 s: the period started at 3 - 1 = 2
		// replicas, so the limit stays 2 + 1 = 3 (not 3 + 1 = 4, as without the change).
		{at: 15 * time.Second, otherWriter: 3, want: 3, reason: policy.ReasonScaleUpLimit},
		// 74 s: the change at 15 s is still within the period (74 - 60 = 14 < 15).
		{at: 74 * time.Second, want: 3, reason: policy.ReasonScaleUpLimit},
		// 75 s: it is not (a change exactly one period old no longer counts): 3 + 1 = 4.
		{at: 75 * time.Second, want: 4, reason: policy.ReasonScaleUpLimit},
		// The load is missing: the current 3 are held.
		{at: 90 * time.Second, missing: true, want: 3, reason: policy.ReasonFailedGetMetric},
	}
	var events []string
	for _, s := range steps {
		if s.otherWriter > 0 {
			cl.scaleTo(s.otherWriter)
		}
		if s.missing {
			cl.source.set("load", policy.Sample{Err: errors.New("empty result")})
		}
		events = append(events, cl.tickAt(c, s.at)...)
		st := c.Status()[0]
		if count(st.Desired) != fmt.Sprint(s.want) || st.Reason != s.reason {
			t.Errorf("at %s: decided %s (%s), want %d (%s)", s.at, count(st.Desired), st.Reason, s.want, s.reason)
		}
	}
	if got := cl.writeActions(); len(got) != 0 {
		t.Errorf("dry-run wrote: %q", got)
	}
	if len(events) != 0 {
		t.Errorf("dry-run recorded events: %q", events)
	}
	if got := cl.replicas(); got != 3 {
		t.Errorf("spec.replicas = %d, want 3, the other writer's", got)
	}
}

// The global dry-run is live: SetDryRun (a reload of dryRun) stops the writes from the next
// tick, a policy's own dryRun still overrides it, and turning it off writes again.
func TestSetDryRun(t *testing.T) {
	tests := []struct {
		name string
		// policyDryRun is the policy's own dryRun line, if any.
		policyDryRun string
		// wantWrites are the accepted scale writes of the ticks at 0 (global dry-run off),
		// 60 s (on) and 120 s (off again).
		wantWrites []int32
		// wantGauge is prescale_dry_run while it is on.
		wantGauge float64
	}{
		// Load 50: proposal 5, 1 pod per 60 s: 2 -> 3 at 0, 3 -> 4 due at 60 s and held by
		// the dry-run, 3 -> 4 at 120 s.
		{name: "a policy without its own dryRun stops writing", wantWrites: []int32{3, 4}, wantGauge: 1},
		// The policy's dryRun: false overrides the global switch: 3 at 0, 4 at 60 s, 5 at 120 s.
		{name: "a policy's dryRun: false overrides it", policyDryRun: "    dryRun: false\n", wantWrites: []int32{3, 4, 5}, wantGauge: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			c := cl.controller(webPolicy+tc.policyDryRun, options())
			lead(c)
			cl.source.set("load", policy.Sample{Value: 50})
			if got := testutil.ToFloat64(cl.metrics.DryRun); got != 0 {
				t.Errorf("prescale_dry_run at start = %v, want 0", got)
			}
			cl.tickAt(c, 0)

			c.SetDryRun(true)
			if got := testutil.ToFloat64(cl.metrics.DryRun); got != tc.wantGauge {
				t.Errorf("prescale_dry_run after SetDryRun(true) = %v, want %v", got, tc.wantGauge)
			}
			before := len(cl.writeActions())
			cl.tickAt(c, 60*time.Second)
			if tc.policyDryRun == "" {
				if got := cl.writeActions()[before:]; len(got) != 0 {
					t.Errorf("the tick after SetDryRun(true) wrote: %q", got)
				}
			}

			c.SetDryRun(false)
			cl.tickAt(c, 120*time.Second)
			if diff := cmp.Diff(tc.wantWrites, cl.writes()); diff != "" {
				t.Errorf("accepted scale writes (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(cl.metrics.DryRun); got != 0 {
				t.Errorf("prescale_dry_run after SetDryRun(false) = %v, want 0", got)
			}
		})
	}
}

// A sample that comes with Prometheus' warnings (a partial response) is used as it is; each
// is counted in prescale_query_warnings_total{policy,metric}, and the decision's annotation
// lists the warnings with the metric.
func TestQueryWarnings(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lead(c)
	const warning = "partial response: store 10.0.0.7:10901 did not answer"
	// Load 50 with warnings: proposal ceil(50 / 10) = 5, limited to 2 + 1 = 3, written.
	cl.source.set("load", policy.Sample{Value: 50, Warnings: []string{warning}})
	cl.tickAt(c, 0)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("a sample with warnings is used: accepted scale writes (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(cl.metrics.QueryWarnings.WithLabelValues("web", "load")); got != 1 {
		t.Errorf(`prescale_query_warnings_total{policy="web",metric="load"} = %v, want 1`, got)
	}
	var annotation string
	for _, a := range cl.dyn.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			annotation = string(p.GetPatch())
		}
	}
	if want := `\"warnings\":[\"` + warning + `\"]`; !strings.Contains(annotation, want) {
		t.Errorf("the decision annotation's patch %s does not contain %s", annotation, want)
	}

	// Without warnings, nothing more is counted.
	cl.source.set("load", policy.Sample{Value: 50})
	cl.tickAt(c, 15*time.Second)
	if got := testutil.ToFloat64(cl.metrics.QueryWarnings.WithLabelValues("web", "load")); got != 1 {
		t.Errorf(`prescale_query_warnings_total{policy="web",metric="load"} after a tick without warnings = %v, want 1`, got)
	}
}

// The warnings of the forecast's load and of the objective's latency are in their parts of
// the status, and counted as metric "forecast" and "objective".
func TestQueryWarningsOfLoadAndLatency(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(objectivePolicy, options())
	lead(c)
	warn := []string{"partial response"}
	cl.source.set("load", policy.Sample{Value: 20})
	cl.source.set("lq", policy.Sample{Value: 20, Warnings: warn})
	cl.source.set("lat", policy.Sample{Value: 1, Warnings: warn})
	cl.tickAt(c, 0)
	st := c.Status()[0]
	if st.Forecast == nil || !cmp.Equal(warn, st.Forecast.LoadWarnings) {
		t.Errorf("forecast status %+v, want load warnings %q", st.Forecast, warn)
	}
	if st.Objective == nil || !cmp.Equal(warn, st.Objective.LatencyWarnings) {
		t.Errorf("objective status %+v, want latency warnings %q", st.Objective, warn)
	}
	for _, metric := range []string{"load", "forecast", "objective"} {
		want := 1.0
		if metric == "load" {
			want = 0
		}
		if got := testutil.ToFloat64(cl.metrics.QueryWarnings.WithLabelValues("web", metric)); got != want {
			t.Errorf(`prescale_query_warnings_total{policy="web",metric=%q} = %v, want %v`, metric, got, want)
		}
	}
}

// A follower (a hot standby's ticks while another instance leads) decides and writes
// nothing: no scale, annotation or event, on any client, and no counter that only the
// leader counts. Each case is run as the leader too, to show that it would have written.
func TestFollowerNeverWrites(t *testing.T) {
	tests := []struct {
		name string
		// before changes the world before the tick at 0, between before the tick at 15 s
		before, between func(cl *cluster)
		// leaderEvents are the events the same ticks record as the leader
		leaderEvents []string
	}{
		{
			// load 50: proposal 5, limited to 3.
			name:         "a scale-up is due",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Value: 50}) },
			leaderEvents: []string{"Normal SuccessfulRescale"},
		},
		{
			name:         "the metric is missing",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Err: errors.New("empty result")}) },
			leaderEvents: []string{"Warning FailedGetMetric"},
		},
		{
			// load 20 at 2 replicas: ratio 20 / (10 x 2) = 1, within tolerance: no rescale.
			name:         "the target is recreated",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Value: 20}) },
			between:      func(cl *cluster) { cl.recreate("uid-2", 2) },
			leaderEvents: []string{"Normal TargetRecreated"},
		},
		{
			// Load 20 at 3 replicas: 20 / (10 x 3) = 0.67, proposal ceil(20 / 10) = 2; the
			// scale-down window holds nothing above 2, so the leader scales 3 -> 2.
			name:         "another writer scales",
			before:       func(cl *cluster) { cl.source.set("load", policy.Sample{Value: 20}) },
			between:      func(cl *cluster) { cl.scaleTo(3) },
			leaderEvents: []string{"Normal SuccessfulRescale"},
		},
	}
	for _, tc := range tests {
		for _, leading := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/leading=%v", tc.name, leading), func(t *testing.T) {
				cl := newCluster(t, 2)
				c := cl.controller(webPolicy, options())
				if leading {
					lead(c)
				}
				tc.before(cl)
				events := cl.tickAt(c, 0)
				if tc.between != nil {
					tc.between(cl)
				}
				events = append(events, cl.tickAt(c, 15*time.Second)...)
				writes := cl.writeActions()
				if leading {
					// The leader annotates its decision, at least.
					if len(writes) == 0 {
						t.Errorf("the leader wrote nothing: the case does not test a follower")
					}
					if diff := cmp.Diff(tc.leaderEvents, reasons(events)); diff != "" {
						t.Errorf("the leader's events (-want +got):\n%s", diff)
					}
					return
				}
				if len(writes) != 0 {
					t.Errorf("a follower wrote: %q", writes)
				}
				if len(events) != 0 {
					t.Errorf("a follower recorded events: %q", events)
				}
				for _, m := range []struct {
					name string
					c    prometheus.Collector
				}{{"prescale_scales_total", cl.metrics.Scales}, {"prescale_decisions_total", cl.metrics.Decisions}} {
					if n := testutil.CollectAndCount(m.c); n != 0 {
						t.Errorf("a follower counted %d series of %s", n, m.name)
					}
				}
				// A follower queries, and counts its query errors; it has no write errors.
				for _, kind := range []string{"scale_write", "annotation_write"} {
					if got := testutil.ToFloat64(cl.metrics.Errors.WithLabelValues(kind)); got != 0 {
						t.Errorf("a follower counted prescale_errors_total{kind=%q} = %v", kind, got)
					}
				}
				if st := c.Status()[0]; !st.Synced {
					t.Errorf("a follower did not decide: status %+v", st)
				}
			})
		}
	}
}

// A scale write that fails is reported (a FailedRescale warning, prescale_errors_total
// {kind="scale_write"}) and not recorded: the next tick decides the same scale-up again,
// not limited by the rate policy as if it had happened.
func TestFailedScaleWrite(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{name: "internal error", err: apierrors.NewInternalError(errors.New("etcdserver: request timed out"))},
		{name: "forbidden", err: apierrors.NewForbidden(deployments, "web", errors.New(`cannot update resource "deployments/scale"`))},
		{name: "server error", err: apierrors.NewGenericServerResponse(http.StatusServiceUnavailable, "update", deployments, "web", "", 0, true)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			c := cl.controller(webPolicy, options())
			lead(c)
			// load 50: proposal 5, limited to 2 + 1 = 3.
			cl.source.set("load", policy.Sample{Value: 50})
			cl.set(func(cl *cluster) { cl.updateErr = tc.err })

			events := cl.tickAt(c, 0)
			if got := reasons(events); !cmp.Equal(got, []string{"Warning FailedRescale"}) || !strings.HasPrefix(events[0], "Warning FailedRescale New size: 3;") {
				t.Errorf("events after the failed write: %q, want one FailedRescale warning for 3", events)
			}
			if got := testutil.ToFloat64(cl.metrics.Errors.WithLabelValues("scale_write")); got != 1 {
				t.Errorf(`prescale_errors_total{kind="scale_write"} = %v, want 1`, got)
			}
			if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", "error")); got != 1 {
				t.Errorf(`prescale_scales_total{result="error"} = %v, want 1`, got)
			}

			// The server accepts writes again. Still 2 replicas, no scale-up in the
			// period: the limit is 2 + 1 = 3 again (2 + 0 had the failed write counted).
			cl.set(func(cl *cluster) { cl.updateErr = nil })
			events = cl.tickAt(c, 15*time.Second)
			if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
				t.Errorf("accepted scale writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"Normal SuccessfulRescale"}, reasons(events)); diff != "" {
				t.Errorf("events after the retry (-want +got):\n%s", diff)
			}
			if got := testutil.ToFloat64(cl.metrics.Scales.WithLabelValues("web", "ok")); got != 1 {
				t.Errorf(`prescale_scales_total{result="ok"} = %v, want 1`, got)
			}
		})
	}
}

// A target that cannot be read (deleted, without a scale subresource, or of a kind the API
// server does not serve) is not written; the error is counted by kind, and the controller
// resumes, with the history it held, once the target is back.
func TestMissingTarget(t *testing.T) {
	tests := []struct {
		name     string
		miss     func(cl *cluster, missing bool)
		wantKind string // of prescale_errors_total
		wantLog  int    // "Target not found" lines over the two missing ticks: once per disappearance
		resets   int    // of the mapper
	}{
		{
			name: "deleted",
			miss: func(cl *cluster, missing bool) {
				cl.set(func(cl *cluster) {
					cl.getErr = nil
					if missing {
						cl.getErr = apierrors.NewNotFound(deployments, "web")
					}
				})
			},
			wantKind: "target_not_found", wantLog: 1,
		},
		{
			// What an API server answers for a subresource the resource does not have.
			name: "no scale subresource",
			miss: func(cl *cluster, missing bool) {
				cl.set(func(cl *cluster) {
					cl.getErr = nil
					if missing {
						cl.getErr = apierrors.NewGenericServerResponse(http.StatusNotFound, "get", deployments, "web",
							"the server could not find the requested resource", 0, true)
					}
				})
			},
			wantKind: "target_not_found", wantLog: 1,
		},
		{
			name:     "kind not served",
			miss:     func(cl *cluster, missing bool) { cl.mapper.setUnserved(missing) },
			wantKind: "target", resets: 2,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := newCluster(t, 2)
			c := cl.controller(webPolicy, options())
			lead(c)
			cl.source.set("load", policy.Sample{Value: 50}) // proposal 5
			steps := []struct {
				at      time.Duration
				missing bool
				writes  []int32 // accepted so far
				errors  float64 // of wantKind so far
			}{
				{at: 0, writes: []int32{3}}, // 2 + 1
				{at: 15 * time.Second, missing: true, writes: []int32{3}, errors: 1},
				{at: 30 * time.Second, missing: true, writes: []int32{3}, errors: 2},
				// Back at 3 replicas; the +1 at t0 is within the 60 s period: the limit is
				// 3 - 1 + 1 = 3, no write (the history was held).
				{at: 45 * time.Second, writes: []int32{3}, errors: 2},
				// 60 s: the t0 change is one period old: 3 + 1 = 4.
				{at: 60 * time.Second, writes: []int32{3, 4}, errors: 2},
			}
			for _, s := range steps {
				tc.miss(cl, s.missing)
				updates, patches := cl.scaleUpdates(), len(cl.dyn.Actions())
				events := cl.tickAt(c, s.at)
				if diff := cmp.Diff(s.writes, cl.writes()); diff != "" {
					t.Errorf("at %s: accepted scale writes (-want +got):\n%s", s.at, diff)
				}
				if got := testutil.ToFloat64(cl.metrics.Errors.WithLabelValues(tc.wantKind)); got != s.errors {
					t.Errorf("at %s: prescale_errors_total{kind=%q} = %v, want %v", s.at, tc.wantKind, got, s.errors)
				}
				if s.missing && (cl.scaleUpdates() != updates || len(cl.dyn.Actions()) != patches || len(events) != 0) {
					t.Errorf("at %s: the missing target was written to: %d scale updates, %d dynamic actions, events %q",
						s.at, cl.scaleUpdates()-updates, len(cl.dyn.Actions())-patches, events)
				}
			}
			if got := cl.logged("Target not found"); got != tc.wantLog {
				t.Errorf("logged %q %d times, want %d", "Target not found", got, tc.wantLog)
			}
			if cl.mapper.resets != tc.resets {
				t.Errorf("the mapper was reset %d times, want %d", cl.mapper.resets, tc.resets)
			}
		})
	}
}

// An HPA on the same workload (here KEDA's, owned by a ScaledObject) and prescale not in
// dry-run: prescale writes nothing, says why once (a Warning event), in the metric and in
// the status; once the HPA is gone it writes again.
func TestConflictingAutoscaler(t *testing.T) {
	cl := newCluster(t, 2)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "keda-hpa-web",
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "keda.sh/v1alpha1", Kind: "ScaledObject", Name: "web", UID: "u1"}}},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    10,
		},
	}
	if _, err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Create(cl.ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c := cl.controller(webPolicy, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, limited to 2 + 1 = 3

	events := cl.tickAt(c, 0)
	want := "Warning ConflictingAutoscaler HorizontalPodAutoscaler default/keda-hpa-web (KEDA ScaledObject web) also scales Deployment default/web"
	if len(events) != 1 || !strings.HasPrefix(events[0], want) {
		t.Errorf("events: %q, want one starting %q", events, want)
	}
	if events = cl.tickAt(c, 15*time.Second); len(events) != 0 {
		t.Errorf("events at the second tick: %q, want none (the warning is sent on change)", events)
	}
	if diff := cmp.Diff([]string{"kube: create horizontalpodautoscalers/"}, cl.writeActions()); diff != "" {
		t.Errorf("writes while the HPA targets the workload, besides the test's HPA (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(cl.metrics.ConflictingAutoscaler.WithLabelValues("web")); got != 1 {
		t.Errorf("prescale_conflicting_autoscaler = %v, want 1", got)
	}
	if st := c.Status()[0]; !strings.Contains(st.NotWriting, "keda-hpa-web") || count(st.Desired) != "3" {
		t.Errorf("status: notWriting %q, desired %s; want the HPA named, and the decision (3) still made", st.NotWriting, count(st.Desired))
	}

	// The HPA is deleted: once the informer has seen it, prescale writes 3.
	if err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Delete(cl.ctx, "keda-hpa-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for at := 30 * time.Second; len(cl.writes()) == 0; at += 15 * time.Second {
		if time.Now().After(deadline) {
			t.Fatal("no scale write 10 s after the HPA was deleted")
		}
		cl.tickAt(c, at)
		time.Sleep(10 * time.Millisecond)
	}
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("scale writes after the HPA left (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(cl.metrics.ConflictingAutoscaler.WithLabelValues("web")); got != 0 {
		t.Errorf("prescale_conflicting_autoscaler = %v after the HPA left, want 0", got)
	}
	if st := c.Status()[0]; st.NotWriting != "" {
		t.Errorf("status notWriting %q after the HPA left, want none", st.NotWriting)
	}
}

// sharedPolicies are webPolicy and a canary's: Deployment default/canary scaled on the same
// load, from 1 replica, up by as many pods as it wants.
const sharedPolicies = webPolicy + `  - name: canary
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: canary}
    maxReplicas: 10
    metrics:
      - {name: load, query: load, target: {type: AverageValue, averageValue: 10}}
    behavior:
      scaleUp:
        stabilizationWindowSeconds: 0
        policies: [{type: Pods, value: 10, periodSeconds: 60}]
`

// Two policies whose targets' selectors overlap: the canary's pod carries app=web, so
// web's selector (app=web) selects it as well as the canary's (app=web,track=canary). As
// the HPA refuses two HPAs over the same pods (AmbiguousSelector), neither scales, though
// a load of 50 asks web for 3 (2 + 1 a minute) and the canary for ceil(50 / 10) = 5: each
// says why once (a Warning event naming the other policy), in its status and in its
// decision record. Once the canary's pods and selector no longer overlap web's, both scale.
func TestAmbiguousSelector(t *testing.T) {
	cl := newCluster(t, 2)
	canary := &autoscalingv1.Scale{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "canary", UID: "uid-c", ResourceVersion: "1"},
		Spec:       autoscalingv1.ScaleSpec{Replicas: 1},
		Status:     autoscalingv1.ScaleStatus{Replicas: 1, Selector: "app=web,track=canary"},
	}
	var canaryWrites []int32
	cl.scales.PrependReactor("get", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.(clienttesting.GetAction).GetName() != "canary" {
			return false, nil, nil
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		return true, canary.DeepCopy(), nil
	})
	cl.scales.PrependReactor("update", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		s := a.(clienttesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		if s.Name != "canary" {
			return false, nil, nil
		}
		cl.mu.Lock()
		defer cl.mu.Unlock()
		canaryWrites = append(canaryWrites, s.Spec.Replicas)
		canary.Spec.Replicas, canary.ResourceVersion = s.Spec.Replicas, canary.ResourceVersion+"1"
		return true, canary.DeepCopy(), nil
	})
	var objects []runtime.Object
	for _, name := range []string{"web", "canary"} {
		d := &unstructured.Unstructured{}
		d.SetAPIVersion("apps/v1")
		d.SetKind("Deployment")
		d.SetNamespace("default")
		d.SetName(name)
		objects = append(objects, d)
	}
	cl.dyn = dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objects...)
	pod := func(name string, labels map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, Labels: labels},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	}
	for _, p := range []*corev1.Pod{pod("web-1", map[string]string{"app": "web"}),
		pod("canary-1", map[string]string{"app": "web", "track": "canary"})} {
		if _, err := cl.kube.CoreV1().Pods("default").Create(cl.ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c := cl.controller(sharedPolicies, options())
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50})

	events := cl.tickAt(c, 0)
	var ambiguous []string
	for _, e := range events {
		if strings.HasPrefix(e, "Warning AmbiguousSelector ") {
			ambiguous = append(ambiguous, e)
		}
	}
	// One on each target, each naming the other policy.
	if len(ambiguous) != 2 || !strings.Contains(strings.Join(ambiguous, "\n"), "policy canary") ||
		!strings.Contains(strings.Join(ambiguous, "\n"), "policy web") {
		t.Errorf("AmbiguousSelector events: %q, want one naming policy canary and one naming policy web (all events %q)", ambiguous, events)
	}
	if events := cl.tickAt(c, 15*time.Second); len(events) != 0 {
		t.Errorf("events at the second tick: %q, want none (the warning is sent on change)", events)
	}
	if n := cl.scaleUpdates(); n != 0 {
		t.Errorf("%d scale updates (web %v, canary %v) while the selectors overlap, want none", n, cl.writes(), canaryWrites)
	}
	for _, st := range c.Status() {
		if st.Reason != "AmbiguousSelector" || st.Desired == nil || st.Current == nil || *st.Desired != *st.Current {
			t.Errorf("status of %s: %v -> %v (%s), want the current replicas held (AmbiguousSelector)", st.Policy, st.Current, st.Desired, st.Reason)
		}
	}
	var table strings.Builder
	WriteStatusTable(&table, c.Status())
	for _, want := range []string{"canary: not scaling: ", "web: not scaling: "} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("status table:\n%s\nwant a line starting %q", table.String(), want)
		}
	}
	recs := records(cl)
	// Each a merge patch whose annotation is the record's JSON, quoted.
	const held = `\"reason\":\"AmbiguousSelector\"`
	if len(recs) != 2 || !strings.Contains(recs[0], held) || !strings.Contains(recs[1], held) {
		t.Errorf("decision records: %q, want both with reason AmbiguousSelector", recs)
	}

	// The canary is relabelled apart: once the informer has seen it, both scale.
	if _, err := cl.kube.CoreV1().Pods("default").Update(cl.ctx, pod("canary-1", map[string]string{"app": "canary", "track": "canary"}),
		metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	cl.set(func(*cluster) { canary.Status.Selector = "app=canary,track=canary" })
	deadline := time.Now().Add(10 * time.Second)
	for at := 30 * time.Second; len(cl.writes()) == 0; at += 15 * time.Second {
		if time.Now().After(deadline) {
			t.Fatal("no scale write 10 s after the selectors stopped overlapping")
		}
		cl.tickAt(c, at)
		time.Sleep(10 * time.Millisecond)
	}
	cl.set(func(*cluster) {
		if diff := cmp.Diff([]int32{3}, cl.written); diff != "" {
			t.Errorf("web's scale writes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int32{5}, canaryWrites); diff != "" {
			t.Errorf("canary's scale writes (-want +got):\n%s", diff)
		}
	})
	table.Reset()
	WriteStatusTable(&table, c.Status())
	if strings.Contains(table.String(), "not scaling") {
		t.Errorf("status table after the overlap ended:\n%s\nwant no 'not scaling' line", table.String())
	}
}

// In dry-run an HPA beside prescale is the point: no warning, no conflict.
func TestDryRunBesideAnHPAIsNoConflict(t *testing.T) {
	cl := newCluster(t, 2)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MaxReplicas:    10,
		},
	}
	if _, err := cl.kube.AutoscalingV2().HorizontalPodAutoscalers("default").Create(cl.ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	opts := options()
	opts.DryRun = true
	c := cl.controller(webPolicy, opts)
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50})
	if events := cl.tickAt(c, 0); len(events) != 0 {
		t.Errorf("events in dry-run beside an HPA: %q, want none", events)
	}
	if got := testutil.ToFloat64(cl.metrics.ConflictingAutoscaler.WithLabelValues("web")); got != 0 {
		t.Errorf("prescale_conflicting_autoscaler = %v in dry-run, want 0", got)
	}
}

// The right to write is the lease's context, read as the tick begins: a lease lost in the
// middle of a tick (its context cancelled by a failed renewal, as client-go's elector does
// before OnStoppedLeading) writes nothing from then on, in that tick or later; and a Lead
// that starts after its lease was already lost grants nothing.
func TestLeaseLostMidTickWritesNothing(t *testing.T) {
	cl := newCluster(t, 2)
	c := cl.controller(webPolicy, options())
	lease, lose := context.WithCancel(context.Background())
	defer lose()
	c.lease.Store(&leaseHold{ctx: lease})           // as Lead stores it
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, 1 pod per 60 s
	cl.tickAt(c, 0)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Fatalf("writes while holding the lease (-want +got):\n%s", diff)
	}
	before := len(cl.writeActions())

	// The renewal fails while the tick queries Prometheus, after it read that it leads.
	cl.source.mu.Lock()
	cl.source.onSample = lose
	cl.source.mu.Unlock()
	cl.tickAt(c, 60*time.Second)
	cl.tickAt(c, 120*time.Second)
	if got := cl.writeActions()[before:]; len(got) != 0 {
		t.Errorf("writes after the lease was lost mid-tick: %q, want none", got)
	}
	if c.Leading() {
		t.Error("Leading() after the lease was lost, want false")
	}

	// The elector's OnStartedLeading goroutine may run after the lease it was given is
	// already lost: that Lead must grant nothing.
	done := make(chan struct{})
	go func() { c.Lead(lease); close(done) }()
	<-done
	if c.Leading() {
		t.Error("Leading() after a Lead on a lost lease, want false")
	}
	cl.tickAt(c, 180*time.Second)
	if got := cl.writeActions()[before:]; len(got) != 0 {
		t.Errorf("writes after a Lead on a lost lease: %q, want none", got)
	}
}

// gatedWriter writes to the cluster, but each annotation only once gate is closed (or
// fails with its context).
type gatedWriter struct {
	Writer
	gate chan struct{}
}

func (w gatedWriter) Annotate(ctx context.Context, gvr schema.GroupVersionResource, ref policy.TargetRef, text string) error {
	select {
	case <-w.gate:
		return w.Writer.Annotate(ctx, gvr, ref, text)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestRecordsAfterTheTick: the decision records are written after the tick, so neither a
// tick's scale writes nor the next tick wait for them; while a target's record is being
// written, no tick computes another for it (a record never overwrites a newer one), and the
// first tick after it is written writes the newest.
func TestRecordsAfterTheTick(t *testing.T) {
	cl := newCluster(t, 2)
	gate := make(chan struct{})
	cl.writer = gatedWriter{Writer: kubeWriter{scales: cl.scales, dynamic: cl.dyn, recorder: cl.events, manager: "prescale"}, gate: gate}
	c := cl.controller(webPolicy, options())
	lease, lose := context.WithCancel(context.Background())
	defer lose()
	c.lease.Store(&leaseHold{ctx: lease})
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, 1 pod per 60 s: 3
	tick := func(at time.Duration) chan struct{} {
		done := make(chan struct{})
		cl.clock.SetTime(epoch.Add(at))
		go func() { c.Tick(cl.ctx); close(done) }()
		return done
	}
	for _, at := range []time.Duration{0, time.Minute} {
		select {
		case <-tick(at):
		case <-time.After(30 * time.Second):
			t.Fatalf("the tick at %s waited for a decision record", at)
		}
	}
	if diff := cmp.Diff([]int32{3, 4}, cl.writes()); diff != "" {
		t.Errorf("scale writes of the two ticks (-want +got):\n%s", diff)
	}
	if n := len(records(cl)); n != 0 {
		t.Errorf("%d records written before the gate opened", n)
	}
	close(gate)
	c.awaitRecords()
	if got := records(cl); len(got) != 1 || !strings.Contains(got[0], `\"desired\":3`) {
		t.Errorf("records %q, want the first tick's only (desired 3): the second tick's waits for it", got)
	}
	<-tick(2 * time.Minute)
	c.awaitRecords()
	if got := records(cl); len(got) != 2 || !strings.Contains(got[1], `\"desired\":5`) {
		t.Errorf("records %q, want the third tick's second (desired 5)", got)
	}

}

// TestRecordsGivenUpWithTheLease: a decision record still pending when the lease is lost
// is never written.
func TestRecordsGivenUpWithTheLease(t *testing.T) {
	cl := newCluster(t, 2)
	cl.writer = gatedWriter{Writer: kubeWriter{scales: cl.scales, dynamic: cl.dyn, recorder: cl.events, manager: "prescale"},
		gate: make(chan struct{})} // never open
	c := cl.controller(webPolicy, options())
	lease, lose := context.WithCancel(context.Background())
	c.lease.Store(&leaseHold{ctx: lease})
	cl.source.set("load", policy.Sample{Value: 50})
	c.Tick(cl.ctx)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("scale writes of the tick (-want +got):\n%s", diff)
	}
	lose()
	done := make(chan struct{})
	go func() { c.awaitRecords(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the pending record was not given up when the lease was lost")
	}
	for _, a := range cl.dyn.Actions() {
		if a.GetVerb() == "patch" {
			t.Errorf("written after the lease was lost: %v", a)
		}
	}
}

// TestWatchTargets: with Options.WatchTargets the scale of a Deployment or a StatefulSet is
// read from the informers, as the API server renders its scale subresource, and written
// through the scale client; any other kind is read through its scale subresource; a
// missing object is NotFound.
func TestWatchTargets(t *testing.T) {
	cl := newCluster(t, 2)
	labels := map[string]string{"app": "web"}
	deploy := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1", ResourceVersion: "1"},
		Spec:   appsv1.DeploymentSpec{Replicas: ptr(int32(2)), Selector: &metav1.LabelSelector{MatchLabels: labels}},
		Status: appsv1.DeploymentStatus{Replicas: 3}}
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db", UID: "uid-2", ResourceVersion: "7"},
		Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"db", "cache"}}}}}, // replicas unset: 1
		Status: appsv1.StatefulSetStatus{Replicas: 1}}
	for _, obj := range []runtime.Object{deploy, sts} {
		if err := cl.kube.Tracker().Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	opts := options()
	opts.WatchTargets = true
	c := cl.controller(webPolicy, opts)
	apps := func(resource string) schema.GroupVersionResource {
		return schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: resource}
	}
	for _, tc := range []struct {
		gvr    schema.GroupVersionResource
		ref    policy.TargetRef
		cached bool
		want   *autoscalingv1.Scale
		err    func(error) bool
	}{
		{apps("deployments"), policy.TargetRef{Kind: "Deployment", Namespace: "default", Name: "web"}, true,
			&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1", ResourceVersion: "1"},
				Spec: autoscalingv1.ScaleSpec{Replicas: 2}, Status: autoscalingv1.ScaleStatus{Replicas: 3, Selector: "app=web"}}, nil},
		{apps("statefulsets"), policy.TargetRef{Kind: "StatefulSet", Namespace: "default", Name: "db"}, true,
			&autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "db", UID: "uid-2", ResourceVersion: "7"},
				Spec: autoscalingv1.ScaleSpec{Replicas: 1}, Status: autoscalingv1.ScaleStatus{Replicas: 1, Selector: "tier in (cache,db)"}}, nil},
		{apps("deployments"), policy.TargetRef{Kind: "Deployment", Namespace: "default", Name: "gone"}, true, nil, apierrors.IsNotFound},
		{apps("replicasets"), policy.TargetRef{Kind: "ReplicaSet", Namespace: "default", Name: "web"}, false, nil, nil},
		{schema.GroupVersionResource{Group: "leaderworkerset.x-k8s.io", Version: "v1", Resource: "leaderworkersets"},
			policy.TargetRef{Kind: "LeaderWorkerSet", Namespace: "default", Name: "web"}, false, nil, nil},
	} {
		got, cached, err := c.cachedScale(tc.gvr, tc.ref)
		if cached != tc.cached {
			t.Errorf("%s: cached %v, want %v", tc.ref, cached, tc.cached)
		}
		if tc.err != nil {
			if !tc.err(err) {
				t.Errorf("%s: error %v", tc.ref, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.ref, err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: scale (-want +got):\n%s", tc.ref, diff)
		}
	}

	// A tick reads the Deployment from the cache (no GET of its scale) and writes through
	// the scale client.
	lead(c)
	cl.source.set("load", policy.Sample{Value: 50}) // proposal 5, 1 pod per 60 s: 3
	cl.tickAt(c, 0)
	if diff := cmp.Diff([]int32{3}, cl.writes()); diff != "" {
		t.Errorf("scale writes (-want +got):\n%s", diff)
	}
	for _, a := range cl.scales.Actions() {
		if a.GetVerb() == "get" {
			t.Errorf("the scale was read from the API server: %v", a)
		}
	}
}

// TestRecordRefresh: a decision record whose gist is unchanged (only the metric's value
// moved, within the tolerance: the target holds) is rewritten only every recordRefresh; a
// changed decision is written at once.
func TestRecordRefresh(t *testing.T) {
	cl := newCluster(t, 5)
	c := cl.controller(webPolicy, options())
	lead(c)
	at := time.Duration(0)
	for i, load := range []float64{50, 52, 49, 51, 50} { // 5 replicas of 10: within the tolerance
		cl.source.set("load", policy.Sample{Value: load})
		cl.tickAt(c, at)
		if n := len(records(cl)); n != 1 {
			t.Fatalf("tick %d at %s (load %v): %d records written, want the first only", i, at, load, n)
		}
		at += time.Minute
	}
	cl.source.set("load", policy.Sample{Value: 52})
	cl.tickAt(c, recordRefresh)
	if got := records(cl); len(got) != 2 || !strings.Contains(got[1], `\"value\":10.4`) {
		t.Fatalf("after %s: records %q, want the second with the value 52 / 5 pods", recordRefresh, got)
	}
	cl.source.set("load", policy.Sample{Value: 80}) // desired 8, 1 pod per 60 s: 6
	cl.tickAt(c, recordRefresh+time.Minute)
	if got := records(cl); len(got) != 3 || !strings.Contains(got[2], `\"desired\":6`) {
		t.Fatalf("a scale-up: records %q, want the third at once, desired 6", got)
	}
}

// TestRecordsDue: every record whose gist changed is written; of the refreshes, the n
// that waited longest (first records since the start, then the oldest), by name on a tie.
func TestRecordsDue(t *testing.T) {
	write := func(context.Context) error { return nil }
	at := func(d time.Duration) *policyState { return &policyState{recordAt: epoch.Add(d)} }
	run := func(name string, tg *policyState, refresh bool) *pass {
		return &pass{p: &policy.Policy{Name: name}, t: tg, record: write, refresh: refresh}
	}
	runs := []*pass{
		run("changed", at(time.Minute), false),
		run("old", at(0), true),
		run("newer", at(time.Minute), true),
		run("first-b", &policyState{}, true),
		nil,                                              // its sync failed
		{p: &policy.Policy{Name: "unchanged"}, t: at(0)}, // nothing to write
		run("first-a", &policyState{}, true),
	}
	names := func(idx []int) []string {
		var out []string
		for _, i := range idx {
			out = append(out, runs[i].p.Name)
		}
		return out
	}
	for n, want := range map[int][]string{
		1: {"changed", "first-a"},
		3: {"changed", "first-a", "first-b", "old"},
		9: {"changed", "first-a", "first-b", "old", "newer"},
	} {
		if diff := cmp.Diff(want, names(recordsDue(runs, n))); diff != "" {
			t.Errorf("n = %d (-want +got):\n%s", n, diff)
		}
	}
	// Every record refreshed within recordRefresh (5 minutes), at least one a tick.
	for _, tc := range []struct {
		policies int
		interval time.Duration
		want     int
	}{{1000, 15 * time.Second, 50}, {1000, 5 * time.Second, 17}, {10, 15 * time.Second, 1}, {0, 15 * time.Second, 1}} {
		if got := refreshesPerTick(tc.policies, tc.interval); got != tc.want {
			t.Errorf("refreshesPerTick(%d, %s) = %d, want %d", tc.policies, tc.interval, got, tc.want)
		}
	}
}

// TestRecordMayWait: a record may wait for a refresh slot when only its values moved, or
// when it is the target's first since the start and a plain hold; a scale, a grant below
// what was wanted, or a changed gist is written at once.
func TestRecordMayWait(t *testing.T) {
	hold := policy.Decision{Time: epoch, CurrentReplicas: 3, DesiredReplicas: 3, Reason: policy.ReasonDesiredWithinRange}
	up := hold
	up.DesiredReplicas, up.Reason = 4, policy.ReasonScaleUpLimit
	limited := &alloc.Grant{Policy: "web", Wanted: 4, Granted: 3}
	before := withValue(hold, 5)
	full := &alloc.Grant{Policy: "web", Wanted: 3, Granted: 3}
	for _, tc := range []struct {
		name  string
		last  *policy.Decision // the record written before, 10 minutes earlier; nil: none
		dec   policy.Decision
		grant *alloc.Grant
		want  bool
	}{
		{"first, a hold", nil, hold, nil, true},
		{"first, a hold granted in full", nil, hold, full, true},
		{"first, a scale-up", nil, up, nil, false},
		{"first, a hold below what was wanted", nil, hold, limited, false},
		{"values moved", &before, withValue(hold, 7), nil, true},
		{"a scale-up after a hold", &hold, up, nil, false},
	} {
		eng, err := engine.New(&policy.Policy{Name: "web"}, engine.Options{Tick: 15 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		tg := &policyState{eng: eng}
		if tc.last != nil {
			tg.recordGist, tg.recordAt = recordGist(*tc.last, nil, nil, nil, false), epoch.Add(-10*time.Minute)
		}
		write, refresh := (&pass{t: tg}).recordFor(tc.dec, nil, nil, tc.grant)
		if write == nil || refresh != tc.want {
			t.Errorf("%s: write %v, may wait %v, want %v", tc.name, write != nil, refresh, tc.want)
		}
	}
}

// withValue is d with one metric of value v.
func withValue(d policy.Decision, v float64) policy.Decision {
	d.Metrics = []policy.MetricResult{{Name: "load", Value: policy.Float(v), Target: 10, Proposal: d.DesiredReplicas}}
	return d
}

// records are the decision records patched onto the target, in order.
func records(cl *cluster) []string {
	var out []string
	for _, a := range cl.dyn.Actions() {
		if p, ok := a.(clienttesting.PatchAction); ok {
			out = append(out, string(p.GetPatch()))
		}
	}
	return out
}
