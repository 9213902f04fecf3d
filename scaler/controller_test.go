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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
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
	awaitHistories(cl.t, c)
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

// awaitHistories waits for the forecast histories a tick started loading in the background.
// The fakes answer at once, but on a busy machine their goroutines may not have run before
// the next tick, and the tests tick without pause: the forecast would then be fitted
// ticks later than in a controller, whose history arrives within an interval (or, in
// TestStatusDuringTicks, after the claims it counts on). A load still running after 10 s
// fails the test: a test of a slow history drives observeHistory itself.
func awaitHistories(t testing.TB, c *Controller) {
	t.Helper()
	_, targets := c.snapshot()
	deadline := time.After(10 * time.Second)
	for name, tg := range targets {
		if h := tg.history; h != nil {
			select {
			case <-h.done:
			case <-deadline:
				t.Fatalf("policy %s: its forecast history still loading 10 s after the tick", name)
			}
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
