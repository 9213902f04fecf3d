package alloc

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fuzzInput builds a small allocation problem from data: up to 5 nodes, 2 kinds, 6 policies.
func fuzzInput(data []byte) Input {
	next := func() int {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return int(b)
	}
	kinds := []string{gpu, mig}
	var in Input
	nn := 1 + next()%5
	for i := range nn {
		n := Node{Name: fmt.Sprintf("n%d", i), Free: map[string]int64{}}
		for _, k := range kinds {
			if v := next() % 10; v < 9 {
				n.Free[k] = int64(v)
			}
		}
		in.Nodes = append(in.Nodes, n)
	}
	in.Allowance = map[string]int32{gpu: int32(next() % 3), mig: int32(next() % 3)}
	np := 1 + next()%6
	for i := range np {
		p := Policy{Name: fmt.Sprintf("p%d", i), Priority: int32(next() % 3), Guaranteed: int32(next() % 5),
			PerPod: map[string]int64{}}
		if v := next() % 4; v > 0 {
			p.PerPod[gpu] = int64(v)
		}
		if v := next() % 3; v > 0 {
			p.PerPod[mig] = int64(v)
		}
		mask := next()
		for j := range nn {
			if mask&(1<<j) != 0 {
				p.Nodes = append(p.Nodes, in.Nodes[j].Name)
			}
		}
		p.Placed = int32(next() % 5)
		if len(p.Nodes) > 0 && p.Placed > 0 {
			p.PlacedOn = map[string]int32{p.Nodes[0]: p.Placed}
		}
		p.Current = p.Placed + int32(next()%4)
		p.Wanted = int32(next() % 13)
		in.Policies = append(in.Policies, p)
	}
	// Last, so that the seeds written before it read as they did: node pools that can add
	// GPUs of a kind (bit 0: nvidia, bit 1: MIG), 0 to 15 of them.
	if g := next(); g%4 != 0 {
		in.Growth = map[string]Growth{}
		for i, k := range kinds {
			if g&(1<<i) != 0 {
				in.Growth[k] = Growth{GPUs: int64(g>>2) % 16, Lead: time.Duration(g) * time.Second, Pools: "NodePool " + k}
			}
		}
	}
	return in
}

// FuzzAllocate checks, on any small problem, that the grants never exceed what fits plus
// the allowance, or the GPUs node pools can add for a kind with a growth, node by node and
// pool by pool; that the pods on nodes being provisioned are the Pending pods whose kinds
// all grow; never go below min(wanted, placed) nor
// above wanted; that another policy's scale-up never takes a guaranteed minimum; that the
// result does not depend on the order of the input; and that placing runs of pods at once
// gives what placing them one by one does.
func FuzzAllocate(f *testing.F) {
	f.Add([]byte{3, 8, 8, 8, 8, 8, 8, 1, 1, 3, 2, 3, 2, 0, 255, 0, 0, 12, 1, 1, 1, 0, 255, 0, 2, 12})
	f.Add([]byte{0, 4, 9, 0, 0, 2, 2, 0, 1, 1, 255, 2, 3, 6, 0, 3, 1, 0, 255, 0, 0, 3})
	f.Add([]byte{1, 3, 3, 3, 3, 0, 0, 5, 1, 4, 2, 1, 3, 1, 1, 5, 2, 0, 2, 1, 3, 0, 1, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := fuzzInput(data)
		r := Allocate(in)
		checkInvariants(t, in, r)
		if diff := cmp.Diff(allocate(in, true), r); diff != "" {
			t.Fatalf("runs of pods differ from pods one by one (-pod by pod +runs):\n%s", diff)
		}

		// Shuffled policies, nodes and node lists: the same result.
		rng := rand.New(rand.NewPCG(uint64(len(data)), 7))
		sh := Input{Allowance: in.Allowance, Growth: in.Growth, Nodes: append([]Node(nil), in.Nodes...)}
		for _, p := range in.Policies {
			p.Nodes = append([]string(nil), p.Nodes...)
			rng.Shuffle(len(p.Nodes), func(i, j int) { p.Nodes[i], p.Nodes[j] = p.Nodes[j], p.Nodes[i] })
			sh.Policies = append(sh.Policies, p)
		}
		rng.Shuffle(len(sh.Nodes), func(i, j int) { sh.Nodes[i], sh.Nodes[j] = sh.Nodes[j], sh.Nodes[i] })
		rng.Shuffle(len(sh.Policies), func(i, j int) { sh.Policies[i], sh.Policies[j] = sh.Policies[j], sh.Policies[i] })
		if diff := cmp.Diff(r, Allocate(sh)); diff != "" {
			t.Fatalf("the result depends on the input's order (-in order +shuffled):\n%s", diff)
		}

		// The guarantee: with every other policy wanting no more than its own guarantee
		// (no scale-up beyond it), each policy's guaranteed part is the same.
		for i, p := range in.Policies {
			alone := Input{Allowance: in.Allowance, Growth: in.Growth, Nodes: in.Nodes}
			for j, o := range in.Policies {
				if j != i {
					o.Wanted = min(o.Wanted, max(o.Placed, o.Guaranteed))
				}
				alone.Policies = append(alone.Policies, o)
			}
			g, _ := r.Grant(p.Name)
			ga, _ := Allocate(alone).Grant(p.Name)
			if min(g.Granted, p.Guaranteed) < min(ga.Granted, p.Guaranteed) {
				t.Fatalf("policy %s (guaranteed %d) is granted %d, but %d when no other policy scales up beyond its guarantee",
					p.Name, p.Guaranteed, g.Granted, ga.Granted)
			}
		}
	})
}

func checkInvariants(t *testing.T, in Input, r Result) {
	t.Helper()
	if len(r.Grants) != len(in.Policies) {
		t.Fatalf("%d grants for %d policies", len(r.Grants), len(in.Policies))
	}
	free := map[string]map[string]int64{}
	for _, n := range in.Nodes {
		free[n.Name] = n.Free
	}
	used := map[string]map[string]int64{}
	pending := map[string]int32{}  // pods, of the kinds without a growth
	provided := map[string]int64{} // GPUs, of the kinds with one
	for _, p := range in.Policies {
		g, ok := r.Grant(p.Name)
		if !ok {
			t.Fatalf("no grant for policy %s", p.Name)
		}
		arbitrated := len(p.PerPod) > 0 && p.Wanted > p.Placed
		switch {
		case !arbitrated && g.Granted != p.Wanted:
			t.Fatalf("policy %s wants %d with %d placed and %v a pod, granted %d", p.Name, p.Wanted, p.Placed, p.PerPod, g.Granted)
		case g.Granted > p.Wanted:
			t.Fatalf("policy %s granted %d above the %d it wants", p.Name, g.Granted, p.Wanted)
		case g.Granted < min(p.Wanted, p.Placed):
			t.Fatalf("policy %s granted %d below min(wanted %d, placed %d)", p.Name, g.Granted, p.Wanted, p.Placed)
		case arbitrated && g.Granted != p.Placed+g.Fitted+g.Pending:
			t.Fatalf("policy %s: granted %d != placed %d + fitted %d + pending %d", p.Name, g.Granted, p.Placed, g.Fitted, g.Pending)
		}
		eligible := map[string]bool{}
		for _, n := range p.Nodes {
			eligible[n] = true
		}
		pods := int32(0)
		for _, pl := range g.Placements {
			if !eligible[pl.Node] {
				t.Fatalf("policy %s placed on %s, not one of its nodes %v", p.Name, pl.Node, p.Nodes)
			}
			if used[pl.Node] == nil {
				used[pl.Node] = map[string]int64{}
			}
			for k, n := range p.PerPod {
				used[pl.Node][k] += int64(pl.Pods) * n
			}
			pods += pl.Pods
		}
		if pods != g.Fitted+g.Reserved {
			t.Fatalf("policy %s: %d pods placed, but fitted %d + reserved %d", p.Name, pods, g.Fitted, g.Reserved)
		}
		provisioned := g.Pending > 0 && len(p.PerPod) > 0
		for k, n := range p.PerPod {
			if _, ok := in.Growth[k]; ok {
				provided[k] += int64(g.Pending) * n
			} else {
				pending[k] += g.Pending
				provisioned = false
			}
		}
		if want := map[bool]int32{true: g.Pending, false: 0}[provisioned]; g.Provisioning != want {
			t.Fatalf("policy %s: %d of %d Pending pods provisioning, want %d (kinds %v, growth %v)", p.Name, g.Provisioning, g.Pending, want, p.PerPod, in.Growth)
		}
		// A policy below its guarantee names no other's scale-up at its priority as a taker.
		if g.Granted < min(p.Wanted, p.Guaranteed) {
			for _, tk := range g.Takers {
				if tk.Why == WhyDeficit {
					t.Fatalf("policy %s is below its guarantee (%d of min(%d, %d)), yet %s took %d %s for %s",
						p.Name, g.Granted, p.Wanted, p.Guaranteed, tk.Policy, tk.GPUs, tk.Resource, tk.Why)
				}
			}
		}
	}
	for node, kinds := range used {
		for k, n := range kinds {
			if n > free[node][k] {
				t.Fatalf("node %s: %d %s placed, %d free", node, n, k, free[node][k])
			}
		}
	}
	for k, n := range pending {
		if n > max(0, in.Allowance[k]) {
			t.Fatalf("%d Pending pods of %s granted, allowance %d", n, k, in.Allowance[k])
		}
	}
	for k, n := range provided {
		if n > max(0, in.Growth[k].GPUs) {
			t.Fatalf("%d %s granted to Pending pods, the node pools can add %d", n, k, in.Growth[k].GPUs)
		}
	}
}
