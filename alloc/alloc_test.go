package alloc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	gpu = "nvidia.com/gpu"
	mig = "nvidia.com/mig-1g.10gb"
	amd = "amd.com/gpu"
)

// nodes returns n nodes named prefix-0.. with free GPUs of kind each.
func nodes(prefix string, n int, free map[string]int64) []Node {
	out := make([]Node, n)
	for i := range out {
		out[i] = Node{Name: fmt.Sprintf("%s-%d", prefix, i), Free: free}
	}
	return out
}

func names(ns []Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.Name
	}
	return out
}

// outcome is what the table tests compare: granted replicas, and the pods held for a
// guarantee, by policy.
type outcome struct {
	Granted  int32
	Pending  int32
	Reserved int32
}

func outcomes(r Result) map[string]outcome {
	out := map[string]outcome{}
	for _, g := range r.Grants {
		out[g.Policy] = outcome{Granted: g.Granted, Pending: g.Pending, Reserved: g.Reserved}
	}
	return out
}

func TestAllocate(t *testing.T) {
	pool := nodes("gpu", 4, map[string]int64{gpu: 8}) // 32 GPUs, the pool
	all := names(pool)
	two := map[string]int64{gpu: 2}
	cases := []struct {
		name string
		in   Input
		want map[string]outcome
	}{
		{
			// 32 GPUs, 2 a pod: 16 pods. c's guarantee first: 3 pods (6 GPUs). a, priority
			// 100, then takes its 10 (20 GPUs): 3 pods left for b and c at priority 10. b is
			// at 0/8, c at 3/8: b, b (2/8), then b and c tie at 3/8 and b wins on its name.
			name: "three policies surge together on 32 GPUs: guarantee, then priority, then deficit",
			in: Input{Nodes: pool, Policies: []Policy{
				{Name: "a", Priority: 100, PerPod: two, Nodes: all, Wanted: 10},
				{Name: "b", Priority: 10, PerPod: two, Nodes: all, Wanted: 8},
				{Name: "c", Priority: 10, Guaranteed: 3, PerPod: two, Nodes: all, Wanted: 8},
			}},
			want: map[string]outcome{"a": {Granted: 10}, "b": {Granted: 3}, "c": {Granted: 3}},
		},
		{
			// Everything fits: 2+4+6 pods of 2 GPUs = 24 <= 32.
			name: "no scarcity: everyone gets what it wants",
			in: Input{Nodes: pool, Policies: []Policy{
				{Name: "a", Priority: 100, PerPod: two, Nodes: all, Wanted: 2},
				{Name: "b", PerPod: two, Nodes: all, Wanted: 4},
				{Name: "c", Guaranteed: 8, PerPod: two, Nodes: all, Wanted: 6},
			}},
			// c wants 6 of its guaranteed 8: the other 2 pods' GPUs are held.
			want: map[string]outcome{"a": {Granted: 2}, "b": {Granted: 4}, "c": {Granted: 6, Reserved: 2}},
		},
		{
			// Equal priority, 6 pods free: a wants 10, b wants 2. One pod at a time to the
			// smallest share granted: a (0/10 ties 0/2, name), b (0 < 1/10), then a until
			// 5/10 = b's 1/2, the last pod to a (4/10 < 1/2): a 5, b 1, both at half.
			name: "equal priority: the policy furthest below its need, relative to it, first",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 6}}}, Policies: []Policy{
				{Name: "a", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 10},
				{Name: "b", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 2},
			}},
			want: map[string]outcome{"a": {Granted: 5}, "b": {Granted: 1}},
		},
		{
			// No GPU free. a scales down from 4 placed pods to 2: granted, but its 4 GPUs
			// stay taken until the pods are gone, so b (priority 100) gets nothing this tick.
			name: "a scale-down frees no GPU in the tick it is decided",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 0}}}, Policies: []Policy{
				{Name: "a", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 4, Placed: 4, Wanted: 2},
				{Name: "b", Priority: 100, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 1, Placed: 1, Wanted: 3},
			}},
			want: map[string]outcome{"a": {Granted: 2}, "b": {Granted: 1}},
		},
		{
			// 4 GPUs free, 1 a pod. l asked for 6 before (2 placed, 4 Pending); g, of lower
			// priority, is guaranteed 3: it gets 3 first, l the last GPU: 3 of its 6, its 3
			// Pending pods beyond what fits given up.
			name: "Pending pods of one policy do not block another's guarantee",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 4}}}, Policies: []Policy{
				{Name: "l", Priority: 50, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 6, Placed: 2, Wanted: 6},
				{Name: "g", Priority: -5, Guaranteed: 3, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 3},
			}},
			want: map[string]outcome{"l": {Granted: 3}, "g": {Granted: 3}},
		},
		{
			// 2 GPUs free, 1 a pod. l asked for 3 at an earlier tick (1 placed, 2 not bound
			// yet): they keep their place against h's higher priority, so that no grant
			// moves between policies while pods start.
			name: "pods already asked for keep their place against a higher priority",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 2}}}, Policies: []Policy{
				{Name: "l", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 3, Placed: 1, Wanted: 3},
				{Name: "h", Priority: 100, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 1, Placed: 1, Wanted: 3},
			}},
			want: map[string]outcome{"l": {Granted: 3}, "h": {Granted: 1}},
		},
		{
			// The same, with 1 GPU free: l keeps 1 of its 2 Pending pods (2 of 3); h none.
			name: "pods already asked for beyond what fits are given up",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 1}}}, Policies: []Policy{
				{Name: "l", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 3, Placed: 1, Wanted: 3},
				{Name: "h", Priority: 100, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 1, Placed: 1, Wanted: 3},
			}},
			want: map[string]outcome{"l": {Granted: 2}, "h": {Granted: 1}},
		},
		{
			// g wants 1 and has it placed, guaranteed 4: 3 more pods' GPUs are held for it.
			// h, priority 100, gets the other 3 of the 6 free.
			name: "a guarantee is held even while its policy does not want it",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 6}}}, Policies: []Policy{
				{Name: "g", Guaranteed: 4, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Current: 1, Placed: 1, Wanted: 1},
				{Name: "h", Priority: 100, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 10},
			}},
			want: map[string]outcome{"g": {Granted: 1, Reserved: 3}, "h": {Granted: 3}},
		},
		{
			// Two nodes with 3 GPUs free each hold 6 GPUs, but only one 2-GPU pod each.
			name: "per-node fit: free GPUs split across nodes do not add up",
			in: Input{Nodes: nodes("n", 2, map[string]int64{gpu: 3}), Policies: []Policy{
				{Name: "a", PerPod: two, Nodes: []string{"n-0", "n-1"}, Wanted: 3},
			}},
			want: map[string]outcome{"a": {Granted: 2}},
		},
		{
			// a may only use n-0 (4 GPUs: 2 pods); b uses both and gets n-1's 2 pods. a's
			// higher priority does not reach n-1.
			name: "a policy is placed only on its eligible nodes",
			in: Input{Nodes: nodes("n", 2, map[string]int64{gpu: 4}), Policies: []Policy{
				{Name: "a", Priority: 10, PerPod: two, Nodes: []string{"n-0"}, Wanted: 5},
				{Name: "b", PerPod: two, Nodes: []string{"n-0", "n-1"}, Wanted: 5},
			}},
			want: map[string]outcome{"a": {Granted: 2}, "b": {Granted: 2}},
		},
		{
			// A pod of 1 GPU and 1 MIG slice fits only where both are free: n-0 has 8 GPUs
			// and no slice, n-1 4 GPUs and 2 slices: 2 pods.
			name: "a pod asking for two kinds fits where both are free",
			in: Input{Nodes: []Node{{Name: "n-0", Free: map[string]int64{gpu: 8}}, {Name: "n-1", Free: map[string]int64{gpu: 4, mig: 2}}},
				Policies: []Policy{{Name: "a", PerPod: map[string]int64{gpu: 1, mig: 1}, Nodes: []string{"n-0", "n-1"}, Wanted: 6}}},
			want: map[string]outcome{"a": {Granted: 2}},
		},
		{
			// n has 4 NVIDIA and 4 AMD GPUs. a (priority 100) wants 10 NVIDIA pods, b 3 AMD
			// pods: a's priority does not reach the AMD pool.
			name: "pools of different kinds are arbitrated separately",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 4, amd: 4}}}, Policies: []Policy{
				{Name: "a", Priority: 100, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 10},
				{Name: "b", PerPod: map[string]int64{amd: 1}, Nodes: []string{"n"}, Wanted: 3},
			}},
			want: map[string]outcome{"a": {Granted: 4}, "b": {Granted: 3}},
		},
		{
			// Nothing fits. The GPU pool allows 2 Pending pods, the MIG pool 1: a (priority
			// 10) takes both GPU ones, b none; c the MIG one.
			name: "the Pending allowance is per pool, in priority order",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 0, mig: 0}}},
				Allowance: map[string]int32{gpu: 2, mig: 1},
				Policies: []Policy{
					{Name: "a", Priority: 10, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 5},
					{Name: "b", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 3},
					{Name: "c", PerPod: map[string]int64{mig: 1}, Nodes: []string{"n"}, Wanted: 3},
				}},
			want: map[string]outcome{"a": {Granted: 2, Pending: 2}, "b": {Granted: 0}, "c": {Granted: 1, Pending: 1}},
		},
		{
			// 1 allowed Pending pod goes to g, below its guarantee of 1, before h's
			// higher priority.
			name: "the allowance serves guarantees first",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 0}}}, Allowance: map[string]int32{gpu: 1},
				Policies: []Policy{
					{Name: "g", Guaranteed: 1, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 2},
					{Name: "h", Priority: 100, PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 2},
				}},
			want: map[string]outcome{"g": {Granted: 1, Pending: 1}, "h": {Granted: 0}},
		},
		{
			name: "a policy whose pods need no GPU gets what it wants",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 0}}},
				Policies: []Policy{{Name: "cpu", Nodes: []string{"n"}, Current: 2, Placed: 2, Wanted: 40}}},
			want: map[string]outcome{"cpu": {Granted: 40}},
		},
		{
			// 1 GPU free: a (priority 10) needs 2 a pod and does not fit; b (priority 0)
			// needs 1 and does.
			name: "a lower priority's smaller pod takes what a larger pod cannot use",
			in: Input{Nodes: []Node{{Name: "n", Free: map[string]int64{gpu: 1}}}, Policies: []Policy{
				{Name: "a", Priority: 10, PerPod: two, Nodes: []string{"n"}, Wanted: 2},
				{Name: "b", PerPod: map[string]int64{gpu: 1}, Nodes: []string{"n"}, Wanted: 2},
			}},
			want: map[string]outcome{"a": {Granted: 0}, "b": {Granted: 1}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, outcomes(Allocate(tc.in))); diff != "" {
				t.Errorf("grants (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAllocateExplains(t *testing.T) {
	pool := nodes("gpu", 4, map[string]int64{gpu: 8})
	all := names(pool)
	two := map[string]int64{gpu: 2}
	r := Allocate(Input{Nodes: pool, Policies: []Policy{
		{Name: "llama", Priority: 100, PerPod: two, Nodes: all, Wanted: 10},
		{Name: "mistral", Priority: 10, PerPod: two, Nodes: all, Wanted: 8},
		{Name: "qwen", Priority: 10, Guaranteed: 3, PerPod: two, Nodes: all, Wanted: 8},
	}})
	// As in TestAllocate's first case: qwen holds 3 pods (6 GPUs) for its guarantee,
	// llama takes 10 pods (20 GPUs), mistral 3 (6 GPUs).
	g, _ := r.Grant("mistral")
	want := "wanted 8, granted 3: 20 nvidia.com/gpu went to policy llama of higher priority (100 > 10); " +
		"6 nvidia.com/gpu held for policy qwen's guaranteed minimum; " +
		"no more pods of 2 nvidia.com/gpu fit on its 4 eligible nodes, and nvidia.com/gpu allows no Pending pods"
	if g.Message != want {
		t.Errorf("mistral's message:\n got %q\nwant %q", g.Message, want)
	}
	g, _ = r.Grant("qwen")
	wantTakers := []Taker{
		{Policy: "llama", Priority: 100, Why: WhyPriority, Resource: gpu, GPUs: 20},
		{Policy: "mistral", Priority: 10, Why: WhyDeficit, Resource: gpu, GPUs: 6},
	}
	if diff := cmp.Diff(wantTakers, g.Takers); diff != "" {
		t.Errorf("qwen's takers (-want +got):\n%s", diff)
	}
	if g, _ := r.Grant("llama"); g.Message != "" || g.Takers != nil {
		t.Errorf("llama got what it wanted, yet its grant explains %q, takers %v", g.Message, g.Takers)
	}
	wantPools := []Pool{{Resource: gpu, Free: 32, Granted: 32}}
	if diff := cmp.Diff(wantPools, r.Pools); diff != "" {
		t.Errorf("pools (-want +got):\n%s", diff)
	}
}

func TestAllocateExplainsWhoHoldsTheGPUs(t *testing.T) {
	// The tick after the surge of TestAllocateExplains: every pod placed, nothing free.
	// llama holds 12 pods (24 GPUs) on its nodes, qwen 3 (6 GPUs, its guarantee), mistral 1;
	// mistral still wants 8.
	pool := nodes("gpu", 4, map[string]int64{gpu: 0})
	all := names(pool)
	two := map[string]int64{gpu: 2}
	r := Allocate(Input{Nodes: pool, Policies: []Policy{
		{Name: "llama", Priority: 100, PerPod: two, Nodes: all, Current: 12, Placed: 12, Wanted: 12,
			PlacedOn: map[string]int32{"gpu-0": 4, "gpu-1": 4, "gpu-2": 4}},
		{Name: "mistral", Priority: 10, PerPod: two, Nodes: all, Current: 1, Placed: 1, Wanted: 8, PlacedOn: map[string]int32{"gpu-3": 1}},
		{Name: "qwen", Priority: 10, Guaranteed: 2, PerPod: two, Nodes: all, Current: 3, Placed: 3, Wanted: 3,
			PlacedOn: map[string]int32{"gpu-3": 3}},
	}})
	g, _ := r.Grant("mistral")
	// qwen's 3 pods: 2 up to its guarantee (4 GPUs), 1 beyond it, at mistral's priority (2).
	want := []Taker{
		{Policy: "llama", Priority: 100, Why: WhyPriority, Resource: gpu, GPUs: 24},
		{Policy: "qwen", Priority: 10, Why: WhyGuarantee, Resource: gpu, GPUs: 4},
		{Policy: "qwen", Priority: 10, Why: WhyHeld, Resource: gpu, GPUs: 2},
	}
	if diff := cmp.Diff(want, g.Takers); diff != "" {
		t.Errorf("mistral's takers (-want +got):\n%s", diff)
	}
	wantMsg := "wanted 8, granted 1: 24 nvidia.com/gpu went to policy llama of higher priority (100 > 10); " +
		"4 nvidia.com/gpu held for policy qwen's guaranteed minimum; " +
		"2 nvidia.com/gpu held by the pods policy qwen runs or asked for before (priority 10; they are not preempted); " +
		"no more pods of 2 nvidia.com/gpu fit on its 4 eligible nodes, and nvidia.com/gpu allows no Pending pods"
	if g.Message != wantMsg {
		t.Errorf("mistral's message:\n got %q\nwant %q", g.Message, wantMsg)
	}
}

func TestGistIgnoresWhoTookWhat(t *testing.T) {
	a := Grant{Wanted: 12, Granted: 8, Takers: []Taker{
		{Policy: "llama", Why: WhyPriority, Resource: gpu, GPUs: 8},
		{Policy: "qwen", Why: WhyGuarantee, Resource: gpu, GPUs: 6},
	}}
	// Other takers, other GPUs, another reason: the same gist.
	b := Grant{Wanted: 12, Granted: 8, Takers: []Taker{
		{Policy: "qwen", Why: WhyGuarantee, Resource: gpu, GPUs: 10},
		{Policy: "gemma", Why: WhyHeld, Resource: gpu, GPUs: 2},
	}}
	want := "wanted 12, granted 8"
	if a.Gist() != want || b.Gist() != want {
		t.Errorf("gists %q and %q, want both %q", a.Gist(), b.Gist(), want)
	}
	c := b
	c.Granted = 9
	if c.Gist() == want {
		t.Errorf("a grant of 9 has the gist of a grant of 8: %q", c.Gist())
	}
}

func TestAllocateCostDoesNotGrowWithTheCounts(t *testing.T) {
	// The pool of the backtest (9e18 GPUs on one node), and three policies of
	// different priorities, so that one leads each round at a time: big, guaranteed
	// 10,000,000 1-GPU pods, wants them all; held, guaranteed 10,000,000, wants 1; small, of
	// the highest priority, wants 3,000,000. Everything fits: each is granted what it wants,
	// and held reserves 10,000,000 - 1 = 9,999,999. Placed a pod at a time, the events alone
	// would take 23,000,000 x 32 bytes, 736 MB; in runs, one a policy and round.
	const free = 9_000_000_000_000_000_000
	pool := []Node{{Name: "pool", Free: map[string]int64{gpu: free}}}
	one := map[string]int64{gpu: 1}
	in := Input{Nodes: pool, Policies: []Policy{
		{Name: "big", Guaranteed: 10_000_000, PerPod: one, Nodes: []string{"pool"}, Wanted: 10_000_000},
		{Name: "held", Priority: 5, Guaranteed: 10_000_000, PerPod: one, Nodes: []string{"pool"}, Wanted: 1},
		{Name: "small", Priority: 10, PerPod: one, Nodes: []string{"pool"}, Wanted: 3_000_000},
	}}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := Allocate(in)
	runtime.ReadMemStats(&after)
	want := map[string]outcome{
		"big":   {Granted: 10_000_000},
		"held":  {Granted: 1, Reserved: 9_999_999},
		"small": {Granted: 3_000_000},
	}
	if diff := cmp.Diff(want, outcomes(r)); diff != "" {
		t.Errorf("grants (-want +got):\n%s", diff)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Allocate allocated %d bytes for 23,000,000 pods; want under 1 MiB, whatever the counts", got)
	}
}

func TestAllocateInRunsAsPodByPod(t *testing.T) {
	// The rounds place a run of pods at once where the specification places them one at a
	// time: on random problems with counts in the hundreds (several nodes and kinds, equal
	// and different priorities and shares, guarantees, the allowance), the results are the
	// same, takers and messages included.
	for seed := range uint64(3000) {
		rng := rand.New(rand.NewPCG(seed, 23))
		var in Input
		nn := 1 + rng.IntN(4)
		for i := range nn {
			n := Node{Name: fmt.Sprintf("n%d", i), Free: map[string]int64{gpu: rng.Int64N(400)}}
			if rng.IntN(2) == 0 {
				n.Free[mig] = rng.Int64N(100)
			}
			in.Nodes = append(in.Nodes, n)
		}
		in.Allowance = map[string]int32{gpu: rng.Int32N(50), mig: rng.Int32N(20)}
		for i := range 1 + rng.IntN(5) {
			p := Policy{Name: fmt.Sprintf("p%d", i), Priority: rng.Int32N(2), Guaranteed: rng.Int32N(150),
				PerPod: map[string]int64{gpu: 1 + rng.Int64N(3)}, Placed: rng.Int32N(40)}
			if rng.IntN(4) == 0 {
				p.PerPod[mig] = 1 + rng.Int64N(2)
			}
			for _, n := range in.Nodes {
				if rng.IntN(3) > 0 {
					p.Nodes = append(p.Nodes, n.Name)
				}
			}
			if len(p.Nodes) > 0 && p.Placed > 0 {
				p.PlacedOn = map[string]int32{p.Nodes[0]: p.Placed}
			}
			p.Current = p.Placed + rng.Int32N(30)
			p.Wanted = rng.Int32N(300)
			in.Policies = append(in.Policies, p)
		}
		if diff := cmp.Diff(allocate(in, true), Allocate(in)); diff != "" {
			t.Fatalf("seed %d: runs differ from pods one by one (-pod by pod +runs):\n%s", seed, diff)
		}
	}
}

func TestAllocateTiers(t *testing.T) {
	two := map[string]int64{gpu: 2}
	one := map[string]int64{gpu: 1}
	pair := []Node{{Name: "a", Free: map[string]int64{gpu: 8}}, {Name: "b", Free: map[string]int64{gpu: 8}}}
	single := []Node{{Name: "a", Free: map[string]int64{gpu: 8}}}
	full := []Node{{Name: "a", Free: map[string]int64{gpu: 0}}}
	cases := []struct {
		name      string
		nodes     []Node
		allowance map[string]int32
		tiers     [][]Policy
		want      []map[string]outcome
	}{
		{
			// 16 GPUs free, 2 a pod: 8 pods. hi (priority 10) wants 6 more: all (12 GPUs);
			// lo 4 more, 2 fit (4 GPUs). dry, of the highest priority but in the second tier,
			// finds nothing left: it keeps its 1 placed pod.
			name:  "the second tier gets what the first leaves, whatever its priority",
			nodes: pair,
			tiers: [][]Policy{{
				{Name: "hi", Priority: 10, PerPod: two, Nodes: []string{"a", "b"}, Current: 1, Placed: 1, Wanted: 7},
				{Name: "lo", PerPod: two, Nodes: []string{"a", "b"}, Current: 1, Placed: 1, Wanted: 5},
			}, {
				{Name: "dry", Priority: 100, PerPod: two, Nodes: []string{"a", "b"}, Current: 1, Placed: 1, Wanted: 4},
			}},
			want: []map[string]outcome{{"hi": {Granted: 7}, "lo": {Granted: 3}}, {"dry": {Granted: 1}}},
		},
		{
			// 8 GPUs, 1 a pod: w takes 3, o the other 5 of the 6 it wants.
			name:  "what the first tier does not take is the second's",
			nodes: single,
			tiers: [][]Policy{
				{{Name: "w", PerPod: one, Nodes: []string{"a"}, Wanted: 3}},
				{{Name: "o", PerPod: one, Nodes: []string{"a"}, Wanted: 6}},
			},
			want: []map[string]outcome{{"w": {Granted: 3}}, {"o": {Granted: 5}}},
		},
		{
			// g's guarantee holds 6 of the 8 GPUs, 2 of them for the pods it wants and 4
			// reserved: 2 are left for o.
			name:  "GPUs held for a guarantee of the first tier are not the second's",
			nodes: single,
			tiers: [][]Policy{
				{{Name: "g", Guaranteed: 6, PerPod: one, Nodes: []string{"a"}, Wanted: 2}},
				{{Name: "o", PerPod: one, Nodes: []string{"a"}, Wanted: 8}},
			},
			want: []map[string]outcome{{"g": {Granted: 2, Reserved: 4}}, {"o": {Granted: 2}}},
		},
		{
			// Nothing fits; the pool allows 3 Pending pods: w asks for 2, o gets the 1 left.
			name:      "the first tier's Pending pods come off the allowance",
			nodes:     full,
			allowance: map[string]int32{gpu: 3},
			tiers: [][]Policy{
				{{Name: "w", PerPod: one, Nodes: []string{"a"}, Wanted: 2}},
				{{Name: "o", PerPod: one, Nodes: []string{"a"}, Wanted: 5}},
			},
			want: []map[string]outcome{{"w": {Granted: 2, Pending: 2}}, {"o": {Granted: 1, Pending: 1}}},
		},
		{
			name:  "an empty first tier leaves everything",
			nodes: single,
			tiers: [][]Policy{nil, {{Name: "o", PerPod: one, Nodes: []string{"a"}, Wanted: 4}}},
			want:  []map[string]outcome{{}, {"o": {Granted: 4}}},
		},
		{
			// 8 GPUs: 4, 4, then nothing: the third keeps min(wanted, placed) = 0.
			name:  "each tier gets what all the tiers before it leave",
			nodes: single,
			tiers: [][]Policy{
				{{Name: "x", PerPod: one, Nodes: []string{"a"}, Wanted: 4}},
				{{Name: "y", PerPod: one, Nodes: []string{"a"}, Wanted: 4}},
				{{Name: "z", PerPod: one, Nodes: []string{"a"}, Wanted: 4}},
			},
			want: []map[string]outcome{{"x": {Granted: 4}}, {"y": {Granted: 4}}, {"z": {Granted: 0}}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := fmt.Sprint(tc.nodes, tc.allowance)
			res := AllocateTiers(tc.nodes, tc.allowance, nil, tc.tiers...)
			got := make([]map[string]outcome, len(res))
			for i, r := range res {
				got[i] = outcomes(r)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("grants by tier (-want +got):\n%s", diff)
			}
			if after := fmt.Sprint(tc.nodes, tc.allowance); after != before {
				t.Errorf("the input changed: %s, was %s", after, before)
			}
		})
	}
}

// One tier is Allocate: the pool backtest allocates so.
func TestAllocateTiersOneTierIsAllocate(t *testing.T) {
	pool := nodes("gpu", 4, map[string]int64{gpu: 8})
	all := names(pool)
	two := map[string]int64{gpu: 2}
	in := Input{Nodes: pool, Allowance: map[string]int32{gpu: 2}, Policies: []Policy{
		{Name: "a", Priority: 100, PerPod: two, Nodes: all, Wanted: 10},
		{Name: "b", Priority: 10, PerPod: two, Nodes: all, Wanted: 8},
		{Name: "c", Priority: 10, Guaranteed: 3, PerPod: two, Nodes: all, Wanted: 8},
	}}
	got := AllocateTiers(in.Nodes, in.Allowance, nil, in.Policies)
	if diff := cmp.Diff([]Result{Allocate(in)}, got); diff != "" {
		t.Errorf("AllocateTiers with one tier (-Allocate +AllocateTiers):\n%s", diff)
	}
}

// Step hands each policy its own grant, by tier and index (the tiers' policies need not be
// sorted by name, as the grants are), and stops at act's first error.
func TestStep(t *testing.T) {
	one := map[string]int64{gpu: 1}
	single := []Node{{Name: "a", Free: map[string]int64{gpu: 8}}}
	tiers := [][]Policy{
		{{Name: "z", PerPod: one, Nodes: []string{"a"}, Wanted: 3}, {Name: "b", PerPod: one, Nodes: []string{"a"}, Wanted: 4}},
		{{Name: "o", PerPod: one, Nodes: []string{"a"}, Wanted: 6}},
	}
	type handed struct {
		tier, i int
		policy  string
		granted int32
	}
	var got []handed
	results, err := Step(single, nil, nil, func(tier, i int, g Grant) error {
		got = append(got, handed{tier, i, g.Policy, g.Granted})
		return nil
	}, tiers...)
	if err != nil {
		t.Fatal(err)
	}
	// 8 GPUs: z 3 and b 4 in the first tier, o the 1 left of the 6 it wants.
	want := []handed{{0, 0, "z", 3}, {0, 1, "b", 4}, {1, 0, "o", 1}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(handed{})); diff != "" {
		t.Errorf("grants handed to act (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(AllocateTiers(single, nil, nil, tiers...), results); diff != "" {
		t.Errorf("Step's results (-AllocateTiers +Step):\n%s", diff)
	}

	stop := errors.New("write failed")
	calls := 0
	_, err = Step(single, nil, nil, func(tier, i int, g Grant) error {
		calls++
		return stop
	}, tiers...)
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("act failing: error %v after %d calls, want %v after 1", err, calls, stop)
	}
}

// TestAllocateGrowth: a kind whose node pools can grow is granted Pending pods out of the
// GPUs they can add (a pod's request each), not out of its allowance, and the grant says
// where its pods go and when they are ready.
func TestAllocateGrowth(t *testing.T) {
	one, four := map[string]int64{gpu: 1}, map[string]int64{gpu: 4}
	eight := []Node{{Name: "a", Free: map[string]int64{gpu: 8}}}
	growth := func(gpus int64, lead time.Duration) map[string]Growth {
		return map[string]Growth{gpu: {GPUs: gpus, Lead: lead, Pools: "NodePool gpu"}}
	}
	cases := []struct {
		name      string
		allowance map[string]int32
		growth    map[string]Growth
		policies  []Policy
		want      map[string]Grant // Policy, Takers and Placements not compared
		wantPool  Pool
	}{
		{
			name:     "8 fit now, 4 on nodes the pool adds",
			growth:   growth(16, 9*time.Minute),
			policies: []Policy{{Name: "web", PerPod: one, Nodes: []string{"a"}, Wanted: 12}},
			want: map[string]Grant{"web": {Wanted: 12, Granted: 12, Fitted: 8, Pending: 4, Provisioning: 4, Lead: 9 * time.Minute,
				Message: "wanted 12: 8 fit now, 4 on nodes NodePool gpu can add, ready in ~9 min"}},
			wantPool: Pool{Resource: gpu, Free: 8, Granted: 8, Grows: true, Growth: 16, GrowthGranted: 4},
		},
		{
			name:      "the growth replaces the allowance",
			allowance: map[string]int32{gpu: 10},
			growth:    growth(2, 0),
			policies:  []Policy{{Name: "web", PerPod: one, Nodes: []string{"a"}, Current: 2, Placed: 2, Wanted: 14}},
			want: map[string]Grant{"web": {Wanted: 14, Granted: 12, Fitted: 8, Pending: 2, Provisioning: 2,
				Message: "wanted 14, granted 12: no more pods of 1 nvidia.com/gpu fit on its 1 eligible nodes; 10 fit now, 2 on nodes NodePool gpu can add, ready when they are (no node lead time measured yet), and NodePool gpu can add no more nvidia.com/gpu (2 more at most, all granted)"}},
			wantPool: Pool{Resource: gpu, Free: 8, Granted: 8, Allowance: 10, Grows: true, Growth: 2, GrowthGranted: 2},
		},
		{
			// 4 GPUs a pod: the 8 free hold 2 pods, the 10 the pool can add 2 more.
			name:     "a pod takes its request of the growth",
			growth:   growth(10, 90*time.Second),
			policies: []Policy{{Name: "big", PerPod: four, Nodes: []string{"a"}, Wanted: 6}},
			want: map[string]Grant{"big": {Wanted: 6, Granted: 4, Fitted: 2, Pending: 2, Provisioning: 2, Lead: 90 * time.Second,
				Message: "wanted 6, granted 4: no more pods of 4 nvidia.com/gpu fit on its 1 eligible nodes; 2 fit now, 2 on nodes NodePool gpu can add, ready in ~90 s, and NodePool gpu can add no more nvidia.com/gpu (10 more at most, all granted)"}},
			wantPool: Pool{Resource: gpu, Free: 8, Granted: 8, Grows: true, Growth: 10, GrowthGranted: 8},
		},
		{
			// Without a growth, the allowance of 0 holds the policy at what fits.
			name:     "no growth known: the allowance",
			policies: []Policy{{Name: "web", PerPod: one, Nodes: []string{"a"}, Wanted: 12}},
			want: map[string]Grant{"web": {Wanted: 12, Granted: 8, Fitted: 8,
				Message: "wanted 12, granted 8: no more pods of 1 nvidia.com/gpu fit on its 1 eligible nodes, and nvidia.com/gpu allows no Pending pods"}},
			wantPool: Pool{Resource: gpu, Free: 8, Granted: 8},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := Allocate(Input{Nodes: eight, Policies: tc.policies, Allowance: tc.allowance, Growth: tc.growth})
			for name, want := range tc.want {
				got, ok := res.Grant(name)
				if !ok {
					t.Fatalf("no grant for %s", name)
				}
				got.Policy, got.Takers, got.MoreTakers, got.Placements = "", nil, 0, nil
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("grant of %s (-want +got):\n%s", name, diff)
				}
			}
			if diff := cmp.Diff([]Pool{tc.wantPool}, res.Pools); diff != "" {
				t.Errorf("pools (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAllocateTiersShareTheGrowth: what the first tier is granted of a pool's growth, the
// second tier is not.
func TestAllocateTiersShareTheGrowth(t *testing.T) {
	one := map[string]int64{gpu: 1}
	nodes := []Node{{Name: "a", Free: map[string]int64{gpu: 2}}}
	growth := map[string]Growth{gpu: {GPUs: 5, Lead: time.Minute, Pools: "NodePool gpu"}}
	res := AllocateTiers(nodes, nil, growth, []Policy{{Name: "writer", PerPod: one, Nodes: []string{"a"}, Wanted: 6}},
		[]Policy{{Name: "dry", PerPod: one, Nodes: []string{"a"}, Wanted: 6}})
	w, _ := res[0].Grant("writer")
	d, _ := res[1].Grant("dry")
	if w.Granted != 6 || w.Provisioning != 4 {
		t.Errorf("writer granted %d, %d of them provisioning; want 6 and 4", w.Granted, w.Provisioning)
	}
	if d.Granted != 1 || d.Provisioning != 1 {
		t.Errorf("dry granted %d, %d of them provisioning; want 1 and 1 (the growth's last GPU)", d.Granted, d.Provisioning)
	}
	if growth[gpu].GPUs != 5 {
		t.Errorf("AllocateTiers changed its growth argument: %v", growth)
	}
}
