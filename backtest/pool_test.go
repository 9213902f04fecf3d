package backtest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

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
