package backtest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/policy"
)

// poolMember is the baseline policy named name, with its capacity block, on trace tr.
func poolMember(t *testing.T, par Params, name string, priority, guaranteed int32, tr Trace) PoolMember {
	t.Helper()
	base, err := Baseline(par)
	if err != nil {
		t.Fatal(err)
	}
	p := clonePolicy(base)
	p.Name = name
	p.Capacity = &policy.Capacity{Priority: &priority, Guaranteed: &guaranteed}
	return PoolMember{Policy: p, Trace: tr}
}

// surge is 30 minutes at 100 requests, then 60 at 400 (the peak), then 30 at 100.
func surge() Trace {
	var tr Trace
	for m := range 120 {
		v := 100.0
		if m >= 30 && m < 90 {
			v = 400
		}
		tr = append(tr, v)
	}
	return tr
}

func poolParams() Params {
	par := DefaultParams()
	par.PeakReplicas = 8 // each trace's peak needs 8 replicas of 1 GPU
	par.Startup = 0
	return par
}

func TestRunPoolWithRoomIsRun(t *testing.T) {
	// A pool larger than the sum of every policy's largest total: no grant is ever below
	// what a policy wants, so each policy scores as it does alone.
	par := poolParams()
	a, b := poolMember(t, par, "a", 10, 0, surge()), poolMember(t, par, "b", 0, 0, surge())
	res, err := RunPool([]PoolMember{a, b}, 1000, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range []PoolMember{a, b} {
		alone, err := Run(m.Trace, []Contender{{Name: m.Policy.Name, Policy: m.Policy}}, Options{Params: par})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(alone.Policies[0], res.Policies[i].PolicyResult); diff != "" {
			t.Errorf("policy %s in a roomy pool (-alone +pool):\n%s", m.Policy.Name, diff)
		}
		if res.Policies[i].UnservedGPUHours != 0 || res.Policies[i].LimitedMinutes != 0 {
			t.Errorf("policy %s limited in a roomy pool: %+v", m.Policy.Name, res.Policies[i])
		}
	}
}

func TestRunPoolPriorityAndGuarantee(t *testing.T) {
	// Two policies surge together; each alone would hold up to 8 GPUs (more while the
	// HPA's rules overshoot), the pool has 10: never more is held, and the one of higher
	// priority goes short of fewer GPUs and violates its SLO in fewer minutes; swapping the
	// priorities swaps the outcomes.
	par := poolParams()
	for _, tc := range []struct {
		name   string
		hi, lo string
	}{
		{name: "a first", hi: "a", lo: "b"},
		{name: "b first", hi: "b", lo: "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prio := map[string]int32{tc.hi: 10, tc.lo: 0}
			res, err := RunPool([]PoolMember{poolMember(t, par, "a", prio["a"], 0, surge()), poolMember(t, par, "b", prio["b"], 0, surge())},
				10, Options{Params: par})
			if err != nil {
				t.Fatal(err)
			}
			if res.PeakGPUs > 10 {
				t.Errorf("the policies held %d GPUs of a pool of 10", res.PeakGPUs)
			}
			got := map[string]PoolPolicyResult{}
			for _, p := range res.Policies {
				got[p.Name] = p
			}
			// The running pods of the other are not preempted: the higher priority may be
			// limited too, but less.
			h, l := got[tc.hi], got[tc.lo]
			if !(h.UnservedGPUHours < l.UnservedGPUHours && h.SLOViolationMinutes < l.SLOViolationMinutes && l.LimitedMinutes > 0) {
				t.Errorf("priority %s over %s: %s unserved %.2f GPU-hours, %d SLO minutes; %s unserved %.2f, %d SLO minutes",
					tc.hi, tc.lo, tc.hi, h.UnservedGPUHours, h.SLOViolationMinutes, tc.lo, l.UnservedGPUHours, l.SLOViolationMinutes)
			}
			t.Logf("%s: unserved %.2f GPU-hours, %d SLO minutes; %s: %.2f, %d", tc.hi, h.UnservedGPUHours, h.SLOViolationMinutes,
				tc.lo, l.UnservedGPUHours, l.SLOViolationMinutes)
		})
	}
	// With a guarantee of 5 for b, of lower priority: a can no longer take b's 5 GPUs, so b
	// is limited less than without it, and a more.
	without, err := RunPool([]PoolMember{poolMember(t, par, "a", 10, 0, surge()), poolMember(t, par, "b", 0, 0, surge())}, 10, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	with, err := RunPool([]PoolMember{poolMember(t, par, "a", 10, 0, surge()), poolMember(t, par, "b", 0, 5, surge())}, 10, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	if !(with.Policies[1].UnservedGPUHours < without.Policies[1].UnservedGPUHours && with.Policies[0].UnservedGPUHours > without.Policies[0].UnservedGPUHours) {
		t.Errorf("b's guarantee of 5: unserved GPU-hours a %v -> %v, b %v -> %v; want b's down and a's up",
			without.Policies[0].UnservedGPUHours, with.Policies[0].UnservedGPUHours, without.Policies[1].UnservedGPUHours, with.Policies[1].UnservedGPUHours)
	}
}

// hungry is a member that asks, at its first tick, for 100,000,008 replicas: on 120
// minutes of 1e9 requests (the peak: 8 replicas at first), its one metric, the arrival rate
// with an AverageValue of 1m, proposes ceil(1e9/60 / 0.001) = 1.7e10 replicas, over its
// maxReplicas of 2e9, and its scale-up rule allows 8 + 100,000,000.
func hungry(t *testing.T, par Params, name string) PoolMember {
	t.Helper()
	tr := make(Trace, 120)
	for m := range tr {
		tr[m] = 1e9
	}
	m := poolMember(t, par, name, 0, 0, tr)
	p := m.Policy
	p.MaxReplicas = 2_000_000_000
	p.Metrics = []policy.Metric{{Name: "arrival", Query: "sum(rate(inference_objective_request_total[1m]))",
		Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: ptr(policy.MustQuantity("1m"))}}}
	p.Behavior.ScaleUp.Policies = []policy.RatePolicy{{Type: policy.PodsPolicy, Value: 100_000_000, PeriodSeconds: 15}}
	return m
}

func TestRunPoolErrors(t *testing.T) {
	par := poolParams()
	a := poolMember(t, par, "a", 0, 0, surge())
	for _, tc := range []struct {
		name    string
		members []PoolMember
		gpus    int64
		par     func(*Params)
		want    string
	}{
		{name: "no policy", gpus: 10, want: "a pool backtest needs at least one policy"},
		{name: "the same policy twice", members: []PoolMember{a, a}, gpus: 10, want: `policy "a" given twice`},
		{name: "a fraction of a GPU a pod", members: []PoolMember{a}, gpus: 10, par: func(p *Params) { p.GPUsPerReplica = 0.5 },
			want: "gpusPerReplica: must be a whole number of GPUs in a pool backtest, got 0.5"},
		// The surge starts at 100 of a peak of 400 requests, 8 replicas: 2 replicas.
		{name: "a pool smaller than the first replicas", members: []PoolMember{a}, gpus: 1,
			want: "the pool of 1 GPUs is smaller than the 2 the policies' first replicas hold"},
		// The issue's: a guarantee that validation allows (at most maxReplicas) in a pool of
		// 9e18 GPUs, which the allocator would reserve pod by pod.
		{name: "a guarantee over the model's replicas", members: []PoolMember{poolMember(t, par, "a", 0, 2_000_000_000, surge())},
			gpus: 9_000_000_000_000_000_000,
			want: "policy a: capacity.guaranteed 2000000000: a pool backtest holds at most 1000000 replicas a policy"},
		// Two policies of one priority, each asking for 100,000,008 replicas: stopped before
		// the allocator grants them, a pod each in turn.
		{name: "policies asking for more than the model's replicas", members: []PoolMember{hungry(t, par, "a"), hungry(t, par, "b")},
			gpus: 9_000_000_000_000_000_000,
			want: "policy a wants 100000008 replicas at minute 0: the model simulates at most 1000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := par
			if tc.par != nil {
				tc.par(&p)
			}
			_, err := RunPool(tc.members, tc.gpus, Options{Params: p})
			if err == nil || err.Error() != tc.want {
				t.Errorf("RunPool: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestRunPoolUnservedIsTheTracesDemand(t *testing.T) {
	// The issue's: a policy held at 1 replica for the whole trace, by a pool of 1 GPU. Its
	// trace needs 1 replica in minute 0 (50 of a peak of 400 requests, 8 replicas: 50 / 400
	// x 8 = 1), then 8. From tick 4 (minute 1) on, it wants more at every tick (its GPUs at
	// 100%, its queue growing) and is granted 1: 236 ticks limited, in 59 minutes. The trace
	// carried 8 - 1 = 7 replicas more than were granted at each: 236 x 7 x 15 s = 6.883
	// GPU-hours unserved. Counted as what it wanted (its scale-up rules' step, 1 + 4 pods),
	// it was 236 x 4 x 15 s = 3.933.
	par := poolParams()
	tr := make(Trace, 60)
	for m := range tr {
		tr[m] = 400
	}
	tr[0] = 50
	res, err := RunPool([]PoolMember{poolMember(t, par, "a", 0, 0, tr)}, 1, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Policies[0]
	// 240 ticks x 1 GPU x 15 s = 1 GPU-hour.
	if !testutil.Near(a.UnservedGPUHours, 236*7*15.0/3600, 1e-9) || a.LimitedMinutes != 59 || !testutil.Near(a.GPUHours, 1, 1e-9) {
		t.Errorf("unserved %v GPU-hours, limited %d minutes, %v GPU-hours; want %v, 59, 1", a.UnservedGPUHours, a.LimitedMinutes, a.GPUHours, 236*7*15.0/3600)
	}
}

func TestRunPoolSLOIsTheMembers(t *testing.T) {
	// In a roomy pool, a member whose SLO is 5 s (its objective's) scores as it does alone on
	// a model of that SLO; the other keeps Params.SLO, 2 s.
	par := poolParams()
	a, b := poolMember(t, par, "a", 0, 0, surge()), poolMember(t, par, "b", 0, 0, surge())
	a.SLO = 5 * time.Second
	res, err := RunPool([]PoolMember{a, b}, 1000, Options{Params: par})
	if err != nil {
		t.Fatal(err)
	}
	for i, slo := range []time.Duration{5 * time.Second, 2 * time.Second} {
		mp := par
		mp.SLO = slo
		m := []PoolMember{a, b}[i]
		alone, err := Run(m.Trace, []Contender{{Name: m.Policy.Name, Policy: m.Policy}}, Options{Params: mp})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(alone.Policies[0], res.Policies[i].PolicyResult); diff != "" {
			t.Errorf("policy %s at SLO %v (-alone +pool):\n%s", m.Policy.Name, slo, diff)
		}
		if res.Policies[i].SLOSeconds != slo.Seconds() {
			t.Errorf("policy %s: sloSeconds %v, want %v", m.Policy.Name, res.Policies[i].SLOSeconds, slo.Seconds())
		}
	}
}

func TestRunPoolWarnsOfGuaranteesOverThePool(t *testing.T) {
	// Two policies guaranteed 40 replicas of 1 GPU: 80 GPUs. A pool of 79 cannot hold them
	// (the was 30); one of 80 can.
	par := poolParams()
	members := []PoolMember{poolMember(t, par, "a", 0, 40, surge()), poolMember(t, par, "b", 0, 40, surge())}
	for _, tc := range []struct {
		gpus int64
		want []string
	}{
		{gpus: 79, want: []string{"the guarantees (a 40, b 40 replicas; 80 GPUs at 1 a replica) exceed the pool's 79 GPUs: not all can be held"}},
		{gpus: 80},
	} {
		res, err := RunPool(members, tc.gpus, Options{Params: par})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, res.Warnings); diff != "" {
			t.Errorf("a pool of %d: warnings (-want +got):\n%s", tc.gpus, diff)
		}
	}
}
