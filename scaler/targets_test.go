package scaler

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/prescale/prescale/policy"
)

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
