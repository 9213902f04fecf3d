package scaler

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/policy"
)

// run is a decided sync of a policy wanting want with cur replicas, placed of them on a node.
func run(name string, prio, guaranteed int32, cur, placed, want int32, writes bool) *pass {
	p := &policy.Policy{Name: name, Capacity: &policy.Capacity{Priority: &prio, Guaranteed: &guaranteed}}
	r := &pass{p: p, writes: writes, obs: observed{template: gpuPod("tpl-"+name, "", 2), placed: placed}}
	r.res.Decision = policy.Decision{CurrentReplicas: cur, DesiredReplicas: want, Reason: policy.ReasonDesiredWithinRange}
	return r
}

func TestAllocateOn(t *testing.T) {
	c := &Controller{opts: DefaultOptions(), deps: Deps{Metrics: NewMetrics(prometheus.NewRegistry())}}
	free := []alloc.Node{{Name: "a", Free: map[string]int64{"nvidia.com/gpu": 8}}, {Name: "b", Free: map[string]int64{"nvidia.com/gpu": 8}}}
	claim := func(*pass) (map[string]int64, []string) {
		return map[string]int64{"nvidia.com/gpu": 2}, []string{"a", "b"}
	}
	// 16 GPUs, 2 a pod: 8 pods. hi (priority 10) wants 6 more: all granted (12 GPUs). lo
	// wants 4 more, 2 fit. dry, in dry-run and of the highest priority, is allocated after
	// the writers, out of nothing left: it stays at its 1 placed pod.
	hi, lo, dry := run("hi", 10, 0, 1, 1, 7, true), run("lo", 0, 0, 1, 1, 5, true), run("dry", 100, 0, 1, 1, 4, false)
	c.allocateOn([]*pass{hi, nil, lo, dry}, free, claim)
	type got struct {
		Desired int32
		Reason  policy.Reason
		Clamps  []policy.Clamp
	}
	for _, tc := range []struct {
		r    *pass
		want got
	}{
		{hi, got{Desired: 7, Reason: policy.ReasonDesiredWithinRange}},
		{lo, got{Desired: 3, Reason: policy.ReasonCapacityLimited, Clamps: []policy.Clamp{{Reason: policy.ReasonCapacityLimited, From: 5, To: 3}}}},
		{dry, got{Desired: 1, Reason: policy.ReasonCapacityLimited, Clamps: []policy.Clamp{{Reason: policy.ReasonCapacityLimited, From: 4, To: 1}}}},
	} {
		d := tc.r.res.Decision
		if diff := cmp.Diff(tc.want, got{d.DesiredReplicas, d.Reason, d.Clamps}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.r.p.Name, diff)
		}
	}
	want := "wanted 5, granted 3: 12 nvidia.com/gpu went to policy hi of higher priority (10 > 0); " +
		"no more pods of 2 nvidia.com/gpu fit on its 2 eligible nodes, and nvidia.com/gpu allows no Pending pods"
	if lo.grant == nil || lo.grant.Message != want {
		t.Errorf("lo's grant: %+v, want the message %q", lo.grant, want)
	}
	// The pool: 16 free before the tick, 12 + 4 granted.
	if v := testutil.ToFloat64(c.deps.Metrics.PoolFree.WithLabelValues("nvidia.com/gpu")); v != 16 {
		t.Errorf("prescale_pool_free_gpus = %v, want 16", v)
	}
	if v := testutil.ToFloat64(c.deps.Metrics.PoolGranted.WithLabelValues("nvidia.com/gpu")); v != 16 {
		t.Errorf("prescale_pool_granted_gpus = %v, want 16", v)
	}
}

func TestAllocateOnPendingAllowancePerPool(t *testing.T) {
	o := DefaultOptions()
	o.Capacity.PendingAllowance = 1
	o.Capacity.Pools = []PoolOptions{{Resource: "nvidia.com/gpu", PendingAllowance: 3}}
	c := &Controller{opts: o, deps: Deps{Metrics: NewMetrics(prometheus.NewRegistry())}}
	free := []alloc.Node{{Name: "a", Free: map[string]int64{"nvidia.com/gpu": 0, "amd.com/gpu": 0}}}
	kinds := map[string]string{"n": "nvidia.com/gpu", "m": "amd.com/gpu"}
	claim := func(r *pass) (map[string]int64, []string) {
		return map[string]int64{kinds[r.p.Name]: 1}, []string{"a"}
	}
	// Nothing fits: the NVIDIA pool allows 3 Pending pods (its own setting), the AMD pool 1
	// (capacity.pendingAllowance).
	n, m := run("n", 0, 0, 0, 0, 5, true), run("m", 0, 0, 0, 0, 5, true)
	c.allocateOn([]*pass{n, m}, free, claim)
	if n.res.Decision.DesiredReplicas != 3 || m.res.Decision.DesiredReplicas != 1 {
		t.Errorf("granted n %d (want 3), m %d (want 1)", n.res.Decision.DesiredReplicas, m.res.Decision.DesiredReplicas)
	}
}

func TestStatusTableCapacity(t *testing.T) {
	st := []PolicyStatus{
		{Policy: "a", Target: "Deployment default/a", Capacity: &CapacityStatus{Priority: 100, Wanted: 10, Granted: 10}},
		{Policy: "b", Target: "Deployment default/b"},
		{Policy: "c", Target: "Deployment default/c", Capacity: &CapacityStatus{Priority: 10, Guaranteed: 3, Wanted: 8, Granted: 3,
			Message: "wanted 8, granted 3: 20 nvidia.com/gpu went to policy a of higher priority (100 > 10)"}},
	}
	var b strings.Builder
	WriteStatusTable(&b, st)
	_, table, ok := strings.Cut(b.String(), "\nPOLICY  PRIORITY")
	if !ok {
		t.Fatalf("no capacity table:\n%s", b.String())
	}
	want := []string{
		"  GUARANTEED  WANTED  GRANTED  PENDING  RESERVED",
		"a       100       0           10      10       0        0",
		"c       10        3           8       3        0        0",
		"c: wanted 8, granted 3: 20 nvidia.com/gpu went to policy a of higher priority (100 > 10)",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimRight(table, "\n"), "\n")); diff != "" {
		t.Errorf("capacity table (-want +got):\n%s", diff)
	}
	b.Reset()
	WriteStatusTable(&b, st[1:2])
	if strings.Contains(b.String(), "GUARANTEED") {
		t.Errorf("a capacity table without a policy allocated:\n%s", b.String())
	}
}

// TestAllocateOnGrowth: with what Karpenter's NodePools can add known (observeGrowth), the
// pods beyond what fits are granted out of it, not the allowance, and the grant says where
// they go and when they are ready.
func TestAllocateOnGrowth(t *testing.T) {
	c := &Controller{opts: DefaultOptions(), deps: Deps{Metrics: NewMetrics(prometheus.NewRegistry())},
		growth: map[string]alloc.Growth{"nvidia.com/gpu": {GPUs: 8, Lead: 9 * time.Minute, Pools: "NodePool gpu"}}}
	free := []alloc.Node{{Name: "a", Free: map[string]int64{"nvidia.com/gpu": 8}}}
	claim := func(*pass) (map[string]int64, []string) {
		return map[string]int64{"nvidia.com/gpu": 2}, []string{"a"}
	}
	// 8 free GPUs, 2 a pod: 4 pods fit; web wants 7 more than its 1: 3 more on the 8 GPUs
	// the NodePool can add (4 pods' worth), the allowance (0 by default) not used.
	web := run("web", 0, 0, 1, 1, 8, true)
	c.allocateOn([]*pass{web}, free, claim)
	if d := web.res.Decision; d.DesiredReplicas != 8 || d.Reason != policy.ReasonDesiredWithinRange {
		t.Errorf("decision: %d replicas (%s), want 8 (DesiredWithinRange)", d.DesiredReplicas, d.Reason)
	}
	want := "wanted 8: 5 fit now, 3 on nodes NodePool gpu can add, ready in ~9 min"
	if web.grant == nil || web.grant.Message != want || web.grant.Provisioning != 3 || web.grant.Lead != 9*time.Minute {
		t.Errorf("grant: %+v, want 3 pods provisioning in 9 min and the message %q", web.grant, want)
	}
	// The growth: 8 GPUs, 6 granted; none of the allowance.
	for _, m := range []struct {
		name string
		g    *prometheus.GaugeVec
		want float64
	}{{"prescale_pool_growth_gpus", c.deps.Metrics.PoolGrowth, 8}, {"prescale_pool_growth_granted_gpus", c.deps.Metrics.PoolGrowthGranted, 6},
		{"prescale_pool_pending_pods", c.deps.Metrics.PoolPending, 0}} {
		if v := testutil.ToFloat64(m.g.WithLabelValues("nvidia.com/gpu")); v != m.want {
			t.Errorf("%s = %v, want %v", m.name, v, m.want)
		}
	}
}
