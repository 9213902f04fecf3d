package alloc

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Node is one node that GPU pods may be placed on, as the tick observed it.
type Node struct {
	Name string
	// Free is, per GPU kind (the resource name: nvidia.com/gpu, nvidia.com/mig-1g.10gb,
	// amd.com/gpu), the node's allocatable minus what the pods bound to it request,
	// terminating pods included: a scale-down frees GPUs only once its pods are gone.
	Free map[string]int64
}

// Policy is one policy's claim in a tick.
type Policy struct {
	// Name identifies the policy; names are unique within an Input.
	Name string
	// Priority orders the scale-ups: higher first.
	Priority int32
	// Guaranteed is the guaranteed minimum: GPUs for this many replicas are held for the
	// policy before any other policy scales up, whatever its priority.
	Guaranteed int32
	// PerPod is what one pod requests of each GPU kind (at least 1 of each listed). Empty:
	// the pods need no GPU and the policy is granted what it wants.
	PerPod map[string]int64
	// Nodes names the nodes its pods may be placed on (node selector, required node
	// affinity, taints, readiness); other names are ignored.
	Nodes []string
	// Current is the target's spec.replicas, Placed its pods bound to a node and not
	// terminating (Current - Placed are Pending or not yet created).
	Current, Placed int32
	// PlacedOn counts the placed pods by node name. Optional: it only explains who holds
	// the GPUs a limited policy wanted (Why Held, Priority, Guarantee).
	PlacedOn map[string]int32
	// Wanted is what the engine decided this tick: the desired replicas before capacity.
	Wanted int32
}

// Input is one tick's allocation problem.
type Input struct {
	Nodes    []Node
	Policies []Policy
	// Allowance is, per GPU kind (a pool), how many pods may be asked for beyond what fits:
	// Pending pods for a node autoscaler to add nodes for. A kind not listed allows none.
	Allowance map[string]int32
	// Growth is, per GPU kind, what node pools that a node autoscaler grows can still add
	// (their limits less what they have), when it is known. A kind with a Growth is granted
	// Pending pods out of its GPUs instead of its Allowance: pods on nodes being
	// provisioned, ready after its Lead.
	Growth map[string]Growth
}

// Growth is the GPUs of one kind that node pools can still add, and how long a new node
// takes to be Ready (its pool's measured lead time; 0 when none was measured yet).
type Growth struct {
	GPUs int64         `json:"gpus"`
	Lead time.Duration `json:"-"`
	// Pools names the node pools, for the messages ("NodePool gpu").
	Pools string `json:"pools"`
}

// Why says why another policy had GPUs that a limited policy wanted.
type Why string

const (
	// WhyGuarantee: held for the other policy's guaranteed minimum.
	WhyGuarantee Why = "Guarantee"
	// WhyPriority: the other policy has a higher priority.
	WhyPriority Why = "Priority"
	// WhyDeficit: same priority, and the other policy was further below its need.
	WhyDeficit Why = "Deficit"
	// WhyFit: the other policy's pods were placed after this policy's next pod fit nowhere:
	// in GPUs it could not use (another shape, or a node with too few left).
	WhyFit Why = "Fit"
	// WhyHeld: pods of the other policy, of no higher priority, were already running there
	// or asked for at an earlier tick (neither is preempted).
	WhyHeld Why = "Held"
)

// Taker is another policy that took GPUs of a kind on nodes a limited policy could use.
type Taker struct {
	Policy   string `json:"policy"`
	Priority int32  `json:"priority"`
	Why      Why    `json:"why"`
	Resource string `json:"resource"`
	GPUs     int64  `json:"gpus"`
}

// Placement is pods that the allocation placed on one node this tick.
type Placement struct {
	Node string `json:"node"`
	Pods int32  `json:"pods"`
	// Guarantee: placed in the guarantee round (held for the guaranteed minimum).
	Guarantee bool `json:"guarantee,omitempty"`
}

// Grant is one policy's outcome.
type Grant struct {
	Policy  string `json:"policy"`
	Wanted  int32  `json:"wanted"`
	Granted int32  `json:"granted"`
	// Fitted is the pods above Placed given a place on a node this tick, Pending those
	// granted beyond what fits under the pools' allowance: Granted = Placed + Fitted +
	// Pending for a policy that wants more than it has placed.
	Fitted  int32 `json:"fitted,omitempty"`
	Pending int32 `json:"pending,omitempty"`
	// Provisioning is how many of the Pending pods go on nodes that node pools add (every
	// kind they request has a Growth), ready after Lead, the longest of their kinds'.
	Provisioning int32         `json:"provisioning,omitempty"`
	Lead         time.Duration `json:"-"` // in the Message
	// Reserved is the pods' worth of GPUs held for the guaranteed minimum that the policy
	// does not want this tick: no other policy's scale-up takes them.
	Reserved int32 `json:"reserved,omitempty"`
	// Placements are the nodes of the Fitted and Reserved pods, by node name.
	Placements []Placement `json:"placements,omitempty"`
	// Takers are, when Granted < Wanted, the other policies that took GPUs of its kinds on
	// its nodes this tick or hold them with their placed pods (PlacedOn), the most GPUs
	// first: at most 5. A policy's placed pods up to its guarantee count as WhyGuarantee,
	// the rest as WhyPriority when its priority is higher, else WhyHeld.
	Takers []Taker `json:"takers,omitempty"`
	// MoreTakers is how many more (policy, reason, kind) takers there are than Takers lists.
	MoreTakers int `json:"moreTakers,omitempty"`
	// Message explains a grant below Wanted ("wanted 12, granted 8: ...") or one with pods
	// on nodes being provisioned ("wanted 12: 8 fit now, 4 on nodes being provisioned ...");
	// empty otherwise.
	Message string `json:"message,omitempty"`
}

// Gist is the grant without who took what: "wanted 12, granted 8". It changes when the
// grant does, not when the takers or their reasons do (which, in a surge of many policies,
// they do at every tick as pods are placed), so that a record or an event sent on its
// change is sent once per change of the grant.
func (g Grant) Gist() string {
	return fmt.Sprintf("wanted %d, granted %d", g.Wanted, g.Granted)
}

// Pool is one GPU kind's account of the tick.
type Pool struct {
	Resource string `json:"resource"`
	// Free is the GPUs free before the tick's grants, over every node; Granted those given to
	// pods this tick, Reserved those held for guarantees and unused. Free - Granted -
	// Reserved are left.
	Free     int64 `json:"free"`
	Granted  int64 `json:"granted"`
	Reserved int64 `json:"reserved"`
	// Allowance is the Pending pods allowed, PendingGranted those granted.
	Allowance      int32 `json:"allowance"`
	PendingGranted int32 `json:"pendingGranted"`
	// Grows is whether the kind has a Growth (Input.Growth): Growth is then the GPUs node
	// pools can add, GrowthGranted those granted to Pending pods.
	Grows         bool  `json:"grows,omitempty"`
	Growth        int64 `json:"growth,omitempty"`
	GrowthGranted int64 `json:"growthGranted,omitempty"`
}

// Result is one tick's allocation.
type Result struct {
	Grants []Grant // sorted by policy name
	Pools  []Pool  // sorted by resource
}

// Grant returns the grant of the named policy, and false if it has none.
func (r Result) Grant(name string) (Grant, bool) {
	i, ok := slices.BinarySearchFunc(r.Grants, name, func(g Grant, n string) int { return cmp.Compare(g.Policy, n) })
	if !ok {
		return Grant{}, false
	}
	return r.Grants[i], true
}

// claim is a policy's state during Allocate.
type claim struct {
	p       *Policy
	nodes   []int         // eligible node indices, ascending
	onNode  []bool        // the same, by node index
	req     []kindRequest // by kind index, ascending
	granted int32
	held    int32 // pods placed in the guarantee round
	fitted  int32
	pending int32
	// provisioning is the pending pods all of whose kinds have a growth.
	provisioning int32
	goal         int32 // the round's target
	fixed        bool  // granted what it wants, not arbitrated
	// blocked is the number of events when its next pod first fit nowhere (-1 never): the
	// GPUs placed after it could not have served it.
	blocked int
	placed  map[placeKey]int32
	// onNodePlaced are its placed pods by node (PlacedOn), by node index.
	onNodePlaced []nodePods
}

type nodePods struct {
	node int
	pods int32
}

type kindRequest struct {
	kind int
	n    int64
}

type placeKey struct {
	node      int
	guarantee bool
}

// event is pods of one claim placed this tick on one node, one after another, in a round
// of kind.
type event struct {
	claim int
	node  int
	kind  roundKind
	pods  int32
}

// roundKind names the rounds that place pods.
type roundKind int

const (
	roundGuarantee roundKind = iota // up to the guarantees
	roundKeep                       // the pods already asked for
	roundScale                      // the scale-ups
)

type state struct {
	kinds     []string
	total     []int64   // free GPUs by kind before the tick's grants
	allowance []int32   // Pending pods allowed by kind
	growth    []*Growth // what node pools can add, by kind (nil: unknown; the allowance holds)
	free      [][]int64 // by node, by kind
	names     []string  // nodes' names, ascending
	claims    []*claim
	events    []event
	// single places one pod per step, as the rounds are specified, instead of each run of
	// pods at once (tests compare the two).
	single bool
}

// Allocate grants every policy its replicas for one tick. A policy that needs no GPU, or
// wants no more than its placed pods, is granted what it wants (a scale-down is never
// held). The others are granted, in four rounds over the nodes' free GPUs:
//
//  1. Guarantees: pods up to each policy's Guaranteed, highest priority first, then the
//     policy with the smallest share of its guarantee placed; what it does not want is
//     held, not granted.
//  2. Pods already asked for: up to min(Wanted, Current), in the order of round 3, so
//     that the pods of a scale-up granted at an earlier tick, not yet bound to a node,
//     keep their place (no grant moves from policy to policy while pods start).
//  3. Scale-ups: one pod at a time to the policy of highest priority, then the smallest
//     share of its Wanted granted (the furthest below its need), then by name, each placed
//     on the eligible node it fits most tightly (the least left, then by name); a policy
//     whose next pod fits nowhere leaves the round.
//  4. Pending: the pools' allowance, in the same order, one pod per allowance of each kind
//     it requests: first up to each policy's guaranteed minimum, then up to what it wants.
//     A kind with a Growth is granted out of the GPUs its node pools can add instead (a
//     pod's request of it each): pods on nodes being provisioned (Provisioning).
//
// A policy is never granted less than min(Wanted, Placed): its pods that are Pending (or
// not yet created) beyond what fits and the allowance are given up, so that they block no
// one's guarantee. Allocate is deterministic: the order of in's policies and nodes does
// not change the result.
//
// Its cost does not grow with the pods placed while one policy leads its round: the pods it
// places, one after another, before another policy comes first, its node is full or it has
// its round's target, are placed at once. Policies of one priority at the same share of
// their targets take turns, a pod each, so that a round among them still costs a step per
// pod: callers bound the counts (a pool backtest's replicas).
func Allocate(in Input) Result {
	return allocate(in, false)
}

// AllocateTiers allocates the nodes' free GPUs and the pools' allowance to tiers of
// policies, one tier after another: each tier is allocated with Allocate, out of what the
// tiers before it left, their placements (the Fitted and Reserved pods, at their PerPod)
// taken off the nodes and their Pending pods off the allowance of each kind they request.
// A tier's priorities and guarantees therefore never take GPUs from an earlier tier. The
// controller allocates in two tiers: the policies that write their scale this tick, then
// those that do not (dry-run, beside another autoscaler, a hot standby's), whose grants say
// what they would get without taking GPUs from the writers. One tier is Allocate.
//
// It returns a Result per tier, in order; names are unique across the tiers. nodes and
// allowance are not modified.
func AllocateTiers(nodes []Node, allowance map[string]int32, growth map[string]Growth, tiers ...[]Policy) []Result {
	results := make([]Result, len(tiers))
	for i, policies := range tiers {
		if i > 0 {
			nodes, allowance, growth = leftAfter(nodes, allowance, growth, tiers[i-1], results[i-1])
		}
		results[i] = Allocate(Input{Nodes: nodes, Policies: policies, Allowance: allowance, Growth: growth})
	}
	return results
}

// Step is the allocate step of a tick's decide -> allocate -> act, shared by the controller
// and the pool backtest: it allocates the nodes' free GPUs and the pools' allowance across
// the policies of tiers (AllocateTiers), then hands each policy's grant to act, tier by
// tier, in each tier's order. act's first error stops the step and is returned; the
// Results, one per tier, are returned either way.
func Step(nodes []Node, allowance map[string]int32, growth map[string]Growth, act func(tier, i int, g Grant) error, tiers ...[]Policy) ([]Result, error) {
	results := AllocateTiers(nodes, allowance, growth, tiers...)
	for t, policies := range tiers {
		for i, p := range policies {
			g, _ := results[t].Grant(p.Name)
			if err := act(t, i, g); err != nil {
				return results, err
			}
		}
	}
	return results, nil
}

// leftAfter returns copies of nodes, allowance and growth less what res granted policies:
// their placements' GPUs and their Pending pods (out of the growth of a kind that has one,
// else its allowance).
func leftAfter(nodes []Node, allowance map[string]int32, growth map[string]Growth, policies []Policy, res Result) ([]Node, map[string]int32, map[string]Growth) {
	left := make([]Node, len(nodes))
	index := make(map[string]int, len(nodes))
	for i, n := range nodes {
		left[i] = Node{Name: n.Name, Free: make(map[string]int64, len(n.Free))}
		for k, v := range n.Free {
			left[i].Free[k] = v
		}
		index[n.Name] = i
	}
	leftAllowance := make(map[string]int32, len(allowance))
	for k, v := range allowance {
		leftAllowance[k] = v
	}
	perPod := make(map[string]map[string]int64, len(policies))
	for _, p := range policies {
		perPod[p.Name] = p.PerPod
	}
	leftGrowth := make(map[string]Growth, len(growth))
	for k, v := range growth {
		leftGrowth[k] = v
	}
	for _, g := range res.Grants {
		for _, pl := range g.Placements {
			for k, n := range perPod[g.Policy] {
				left[index[pl.Node]].Free[k] -= int64(pl.Pods) * n
			}
		}
		for k, n := range perPod[g.Policy] {
			if gr, ok := leftGrowth[k]; ok {
				gr.GPUs -= int64(g.Pending) * n
				leftGrowth[k] = gr
			} else {
				leftAllowance[k] -= g.Pending
			}
		}
	}
	return left, leftAllowance, leftGrowth
}

// allocate is Allocate; single places one pod per step (the specification, for tests).
func allocate(in Input, single bool) Result {
	s := newState(in)
	s.single = single
	// 1. Guarantees.
	s.round(func(c *claim) int32 {
		if c.fixed && len(c.req) == 0 {
			return 0
		}
		return c.p.Guaranteed
	}, func(c *claim) int32 { return c.p.Placed + c.held }, roundGuarantee)
	for _, c := range s.claims {
		if c.fixed {
			continue
		}
		use := min(c.held, c.p.Wanted-c.p.Placed)
		c.granted += use
		c.fitted += use
	}
	// 2. The pods already asked for (Pending, or not created yet) keep their place.
	s.round(func(c *claim) int32 {
		if c.fixed {
			return 0
		}
		return min(c.p.Wanted, c.p.Current)
	}, func(c *claim) int32 { return c.granted }, roundKeep)
	// 3. Scale-ups.
	s.round(func(c *claim) int32 {
		if c.fixed {
			return 0
		}
		return c.p.Wanted
	}, func(c *claim) int32 { return c.granted }, roundScale)
	// 4. Pending, under the allowance, or the growth of a kind that has one.
	s.allowance = make([]int32, len(s.kinds))
	allowance := make([]int32, len(s.kinds))
	s.growth = make([]*Growth, len(s.kinds))
	growth := make([]int64, len(s.kinds))
	for k, name := range s.kinds {
		s.allowance[k] = max(0, in.Allowance[name])
		allowance[k] = s.allowance[k]
		if g, ok := in.Growth[name]; ok {
			g.GPUs = max(0, g.GPUs)
			s.growth[k], growth[k] = &g, g.GPUs
		}
	}
	s.pending(allowance, growth)
	return s.result(in, allowance, growth)
}

func newState(in Input) *state {
	s := &state{}
	kindSet := map[string]bool{}
	for _, n := range in.Nodes {
		for k := range n.Free {
			kindSet[k] = true
		}
	}
	for _, p := range in.Policies {
		for k := range p.PerPod {
			kindSet[k] = true
		}
	}
	for k := range in.Allowance {
		kindSet[k] = true
	}
	for k := range in.Growth {
		kindSet[k] = true
	}
	for k := range kindSet {
		s.kinds = append(s.kinds, k)
	}
	slices.Sort(s.kinds)
	kindIdx := make(map[string]int, len(s.kinds))
	for i, k := range s.kinds {
		kindIdx[k] = i
	}
	nodes := slices.Clone(in.Nodes)
	slices.SortFunc(nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	nodes = slices.CompactFunc(nodes, func(a, b Node) bool { return a.Name == b.Name })
	nodeIdx := make(map[string]int, len(nodes))
	s.free = make([][]int64, len(nodes))
	s.names = make([]string, len(nodes))
	s.total = make([]int64, len(s.kinds))
	for i, n := range nodes {
		nodeIdx[n.Name] = i
		s.names[i] = n.Name
		s.free[i] = make([]int64, len(s.kinds))
		for k, v := range n.Free {
			s.free[i][kindIdx[k]] = max(0, v)
			s.total[kindIdx[k]] += max(0, v)
		}
	}
	policies := make([]*Policy, len(in.Policies))
	for i := range in.Policies {
		policies[i] = &in.Policies[i]
	}
	slices.SortFunc(policies, func(a, b *Policy) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range policies {
		c := &claim{p: p, onNode: make([]bool, len(nodes)), placed: map[placeKey]int32{}, blocked: -1}
		for k, n := range p.PerPod {
			if n > 0 {
				c.req = append(c.req, kindRequest{kind: kindIdx[k], n: n})
			}
		}
		slices.SortFunc(c.req, func(a, b kindRequest) int { return cmp.Compare(a.kind, b.kind) })
		for _, name := range p.Nodes {
			if i, ok := nodeIdx[name]; ok && !c.onNode[i] {
				c.onNode[i] = true
				c.nodes = append(c.nodes, i)
			}
		}
		slices.Sort(c.nodes)
		for name, pods := range p.PlacedOn {
			if i, ok := nodeIdx[name]; ok && pods > 0 {
				c.onNodePlaced = append(c.onNodePlaced, nodePods{node: i, pods: pods})
			}
		}
		slices.SortFunc(c.onNodePlaced, func(a, b nodePods) int { return cmp.Compare(a.node, b.node) })
		switch {
		case len(c.req) == 0:
			c.fixed, c.granted = true, p.Wanted
		case p.Wanted <= p.Placed:
			// Not arbitrated, but its guarantee is still held in round 1.
			c.fixed, c.granted = true, p.Wanted
		default:
			c.granted = p.Placed
		}
		s.claims = append(s.claims, c)
	}
	return s
}

// round places pods, one at a time, for the claims below goal, in priority order, then the
// smallest share have(c)/goal(c), then by name. A claim whose next pod fits nowhere leaves.
func (s *state) round(goal, have func(*claim) int32, kind roundKind) {
	guarantee := kind == roundGuarantee
	q := &queue{have: have}
	for i, c := range s.claims {
		c.goal = goal(c)
		if have(c) < c.goal {
			q.items = append(q.items, i)
		}
	}
	q.claims = s.claims
	heap.Init(q)
	for q.Len() > 0 {
		i := q.items[0]
		c := s.claims[i]
		node := s.bestNode(c)
		if node < 0 {
			if c.blocked < 0 {
				c.blocked = len(s.events)
			}
			heap.Pop(q)
			continue
		}
		// The pods c places on node before it leaves the top, the node is full or c has
		// its goal: the node stays the tightest fit while it fits (only its free GPUs fall).
		n := min(int64(q.lead()), int64(c.goal)-int64(have(c)))
		for _, r := range c.req {
			n = min(n, s.free[node][r.kind]/r.n)
		}
		pods := int32(n)
		if s.single {
			pods = 1
		}
		for _, r := range c.req {
			s.free[node][r.kind] -= int64(pods) * r.n
		}
		c.placed[placeKey{node, guarantee}] += pods
		s.events = append(s.events, event{claim: i, node: node, kind: kind, pods: pods})
		if guarantee {
			c.held += pods
		} else {
			c.granted += pods
			c.fitted += pods
		}
		if have(c) >= c.goal {
			heap.Pop(q)
		} else {
			heap.Fix(q, 0)
		}
	}
}

// bestNode returns the eligible node where a pod of c fits leaving the fewest GPUs of its
// kinds free (the lowest name on a tie), or -1.
func (s *state) bestNode(c *claim) int {
	best, bestLeft := -1, int64(0)
	for _, n := range c.nodes {
		left := int64(0)
		fits := true
		for _, r := range c.req {
			f := s.free[n][r.kind]
			if f < r.n {
				fits = false
				break
			}
			left += f - r.n
		}
		if fits && (best < 0 || left < bestLeft) {
			best, bestLeft = n, left
		}
	}
	return best
}

// pending grants the allowance in the order of round 2: first up to each policy's
// guaranteed minimum, then up to what it wants. A kind with a growth is granted out of its
// GPUs (a pod's request each) instead of its allowance.
func (s *state) pending(allowance []int32, growth []int64) {
	// fit is how many pods of c the allowance and growth left hold, at most want.
	fit := func(c *claim, want int32) int32 {
		for _, r := range c.req {
			if s.growth[r.kind] != nil {
				want = int32(min(int64(want), growth[r.kind]/r.n))
			} else {
				want = min(want, allowance[r.kind])
			}
		}
		return want
	}
	for _, guarantee := range []bool{true, false} {
		q := &queue{have: func(c *claim) int32 { return c.granted }, claims: s.claims}
		for i, c := range s.claims {
			c.goal = c.p.Wanted
			if guarantee {
				c.goal = min(c.p.Wanted, c.p.Guaranteed)
			}
			if !c.fixed && c.granted < c.goal {
				q.items = append(q.items, i)
			}
		}
		heap.Init(q)
		for q.Len() > 0 {
			c := s.claims[q.items[0]]
			if fit(c, 1) < 1 {
				heap.Pop(q)
				continue
			}
			pods := fit(c, int32(min(int64(q.lead()), int64(c.goal)-int64(c.granted))))
			if s.single {
				pods = 1
			}
			provisioned := true
			for _, r := range c.req {
				if s.growth[r.kind] != nil {
					growth[r.kind] -= int64(pods) * r.n
				} else {
					allowance[r.kind] -= pods
					provisioned = false
				}
			}
			c.granted += pods
			c.pending += pods
			if provisioned {
				c.provisioning += pods
			}
			if c.granted >= c.goal {
				heap.Pop(q)
			} else {
				heap.Fix(q, 0)
			}
		}
	}
}

// queue orders claims: higher priority first, then the smaller have/goal, then the name.
type queue struct {
	items  []int
	claims []*claim
	have   func(*claim) int32
}

func (q *queue) Len() int      { return len(q.items) }
func (q *queue) Swap(i, j int) { q.items[i], q.items[j] = q.items[j], q.items[i] }
func (q *queue) Less(i, j int) bool {
	a, b := q.claims[q.items[i]], q.claims[q.items[j]]
	if a.p.Priority != b.p.Priority {
		return a.p.Priority > b.p.Priority
	}
	// have_a/goal_a < have_b/goal_b, exactly (goals are positive here).
	l, r := int64(q.have(a))*int64(b.goal), int64(q.have(b))*int64(a.goal)
	if l != r {
		return l < r
	}
	return a.p.Name < b.p.Name
}

// lead returns how many steps in a row the claim at the top stays there, each raising its
// have by 1 (at least 1, at most math.MaxInt32): the claims below it do not change
// meanwhile, and the next of them is the lesser of the top's two children.
func (q *queue) lead() int32 {
	a := q.claims[q.items[0]]
	steps := int64(math.MaxInt32)
	for _, j := range []int{1, 2} {
		if j >= len(q.items) {
			break
		}
		b := q.claims[q.items[j]]
		switch {
		case a.p.Priority != b.p.Priority:
			continue // a is of higher priority: it stays ahead of b
		case b.goal <= 0:
			return 1 // not in a queue, whose claims are below their goals: step by step
		}
		// a stays ahead after k steps while (have_a+k) x goal_b < have_b x goal_a, or equal
		// with a's name first: k < x / goal_b, or k <= x / goal_b.
		x := int64(q.have(b))*int64(a.goal) - int64(q.have(a))*int64(b.goal)
		k := x / int64(b.goal)
		if x%int64(b.goal) == 0 && a.p.Name > b.p.Name {
			k--
		}
		steps = min(steps, max(0, k)+1)
	}
	return int32(steps)
}

func (q *queue) Push(x any) { q.items = append(q.items, x.(int)) }
func (q *queue) Pop() any {
	n := len(q.items)
	x := q.items[n-1]
	q.items = q.items[:n-1]
	return x
}

func (s *state) result(in Input, allowanceLeft []int32, growthLeft []int64) Result {
	var r Result
	pools := make([]Pool, len(s.kinds))
	for k, name := range s.kinds {
		pools[k] = Pool{Resource: name, Free: s.total[k], Allowance: max(0, in.Allowance[name])}
		pools[k].PendingGranted = pools[k].Allowance - allowanceLeft[k]
		if g := s.growth[k]; g != nil {
			pools[k].Grows, pools[k].Growth, pools[k].GrowthGranted = true, g.GPUs, g.GPUs-growthLeft[k]
		}
	}
	acc := make([]int64, len(s.claims)*len(whys)*len(s.kinds))
	var touched []int
	for i, c := range s.claims {
		g := Grant{Policy: c.p.Name, Wanted: c.p.Wanted, Granted: c.granted, Fitted: c.fitted, Pending: c.pending,
			Provisioning: c.provisioning}
		if c.provisioning > 0 {
			for _, rq := range c.req {
				g.Lead = max(g.Lead, s.growth[rq.kind].Lead)
			}
		}
		if !c.fixed || c.held > 0 {
			g.Reserved = c.held - min(c.held, max(0, c.p.Wanted-c.p.Placed))
		}
		for key, pods := range c.placed {
			g.Placements = append(g.Placements, Placement{Node: s.names[key.node], Pods: pods, Guarantee: key.guarantee})
		}
		slices.SortFunc(g.Placements, func(a, b Placement) int {
			return cmp.Or(cmp.Compare(a.Node, b.Node), boolCmp(a.Guarantee, b.Guarantee))
		})
		for _, rq := range c.req {
			pools[rq.kind].Granted += int64(c.fitted) * rq.n
			pools[rq.kind].Reserved += int64(g.Reserved) * rq.n
		}
		if g.Granted < g.Wanted {
			g.Takers, g.MoreTakers = s.takers(i, acc, &touched)
			g.Message = s.explain(c, g, allowanceLeft, growthLeft)
		} else if g.Provisioning > 0 {
			g.Message = fmt.Sprintf("wanted %d: %s", g.Wanted, s.provisioned(c, g))
		}
		r.Grants = append(r.Grants, g)
	}
	r.Pools = pools
	return r
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// maxTakers bounds the takers a grant lists.
const maxTakers = 5

// whys indexes the reasons in the takers' accumulator.
var whys = [...]Why{WhyGuarantee, WhyPriority, WhyDeficit, WhyFit, WhyHeld}

// takers sums, by policy, reason and kind, the GPUs of the limited claim's kinds that other
// claims were placed on its nodes this tick, and returns the maxTakers largest (the most
// GPUs, then by policy, reason, kind) and how many more there are. acc and touched are
// scratch space reused across calls.
func (s *state) takers(limited int, acc []int64, touched *[]int) ([]Taker, int) {
	l := s.claims[limited]
	nk := len(s.kinds)
	*touched = (*touched)[:0]
	for i, e := range s.events {
		if e.claim == limited || !l.onNode[e.node] {
			continue
		}
		o := s.claims[e.claim]
		why := 2 // WhyDeficit
		switch {
		case e.kind == roundGuarantee:
			why = 0
		case e.kind == roundKeep && o.p.Priority > l.p.Priority:
			why = 1
		case e.kind == roundKeep:
			why = 4 // WhyHeld: asked for before this tick
		case l.blocked >= 0 && i >= l.blocked:
			why = 3
		case o.p.Priority > l.p.Priority:
			why = 1
		}
		for _, r := range o.req {
			for _, lr := range l.req {
				if r.kind == lr.kind {
					at := (e.claim*len(whys)+why)*nk + r.kind
					if acc[at] == 0 {
						*touched = append(*touched, at)
					}
					acc[at] += int64(e.pods) * r.n
				}
			}
		}
	}
	// What the others' placed pods hold on its nodes.
	for ci, o := range s.claims {
		if ci == limited || len(o.onNodePlaced) == 0 {
			continue
		}
		guaranteed := int64(o.p.Guaranteed)
		for _, np := range o.onNodePlaced {
			pods := int64(np.pods)
			g := min(pods, guaranteed)
			guaranteed -= g
			if !l.onNode[np.node] {
				continue
			}
			rest := 4 // WhyHeld
			if o.p.Priority > l.p.Priority {
				rest = 1
			}
			for _, r := range o.req {
				for _, lr := range l.req {
					if r.kind != lr.kind {
						continue
					}
					for _, part := range [...]struct {
						why  int
						pods int64
					}{{0, g}, {rest, pods - g}} {
						if part.pods == 0 {
							continue
						}
						at := (ci*len(whys)+part.why)*nk + r.kind
						if acc[at] == 0 {
							*touched = append(*touched, at)
						}
						acc[at] += part.pods * r.n
					}
				}
			}
		}
	}
	taker := func(at int) Taker {
		kind, rest := at%nk, at/nk
		why, claim := rest%len(whys), rest/len(whys)
		o := s.claims[claim]
		return Taker{Policy: o.p.Name, Priority: o.p.Priority, Why: whys[why], Resource: s.kinds[kind], GPUs: acc[at]}
	}
	less := func(a, b Taker) int {
		return cmp.Or(cmp.Compare(b.GPUs, a.GPUs), cmp.Compare(a.Policy, b.Policy), cmp.Compare(a.Why, b.Why),
			cmp.Compare(a.Resource, b.Resource))
	}
	var top []Taker
	for _, at := range *touched {
		t := taker(at)
		acc[at] = 0
		i, _ := slices.BinarySearchFunc(top, t, less)
		if i < maxTakers {
			top = slices.Insert(top, i, t)
			if len(top) > maxTakers {
				top = top[:maxTakers]
			}
		}
	}
	return top, len(*touched) - len(top)
}

// maxTakersShown bounds the takers a message names.
const maxTakersShown = 3

// explain says why a grant is below what the policy wanted.
func (s *state) explain(c *claim, g Grant, allowanceLeft []int32, growthLeft []int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "wanted %d, granted %d: ", g.Wanted, g.Granted)
	for i, t := range g.Takers {
		if i == maxTakersShown {
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		switch t.Why {
		case WhyGuarantee:
			fmt.Fprintf(&b, "%d %s held for policy %s's guaranteed minimum", t.GPUs, t.Resource, t.Policy)
		case WhyPriority:
			fmt.Fprintf(&b, "%d %s went to policy %s of higher priority (%d > %d)", t.GPUs, t.Resource, t.Policy, t.Priority, c.p.Priority)
		case WhyDeficit:
			fmt.Fprintf(&b, "%d %s went to policy %s, further below its need at the same priority", t.GPUs, t.Resource, t.Policy)
		case WhyFit:
			fmt.Fprintf(&b, "%d %s went to policy %s, whose pods fit where these did not", t.GPUs, t.Resource, t.Policy)
		case WhyHeld:
			fmt.Fprintf(&b, "%d %s held by the pods policy %s runs or asked for before (priority %d; they are not preempted)",
				t.GPUs, t.Resource, t.Policy, t.Priority)
		}
	}
	if more := len(g.Takers) - min(len(g.Takers), maxTakersShown) + g.MoreTakers; more > 0 {
		fmt.Fprintf(&b, "; and %d more", more)
	}
	if len(g.Takers) > 0 {
		b.WriteString("; ")
	}
	need := make([]string, len(c.req))
	for i, r := range c.req {
		need[i] = fmt.Sprintf("%d %s", r.n, s.kinds[r.kind])
	}
	fmt.Fprintf(&b, "no more pods of %s fit on its %d eligible nodes", strings.Join(need, " + "), len(c.nodes))
	if g.Provisioning > 0 {
		fmt.Fprintf(&b, "; %s", s.provisioned(c, g))
	}
	for _, r := range c.req {
		if gr := s.growth[r.kind]; gr != nil {
			if growthLeft[r.kind] >= r.n {
				continue
			}
			fmt.Fprintf(&b, ", and %s can add no more %s (%d more at most, all granted)", gr.Pools, s.kinds[r.kind], gr.GPUs)
			break
		}
		if allowanceLeft[r.kind] > 0 {
			continue
		}
		if a := s.allowance[r.kind]; a > 0 {
			fmt.Fprintf(&b, ", and the Pending allowance of %s (%d pods) is used up", s.kinds[r.kind], a)
		} else {
			fmt.Fprintf(&b, ", and %s allows no Pending pods", s.kinds[r.kind])
		}
		break
	}
	return b.String()
}

// provisioned says where a grant's pods go when some are on nodes being provisioned:
// "8 fit now, 4 on nodes NodePool gpu can add, ready in ~9 min".
func (s *state) provisioned(c *claim, g Grant) string {
	var pools []string
	for _, r := range c.req {
		if gr := s.growth[r.kind]; gr != nil && !slices.Contains(pools, gr.Pools) {
			pools = append(pools, gr.Pools)
		}
	}
	lead := "ready when they are (no node lead time measured yet)"
	if g.Lead > 0 {
		lead = "ready in ~" + roundLead(g.Lead)
	}
	msg := fmt.Sprintf("%d fit now, %d on nodes %s can add, %s", g.Granted-g.Pending, g.Provisioning, strings.Join(pools, " and "), lead)
	if more := g.Pending - g.Provisioning; more > 0 {
		msg += fmt.Sprintf(", %d more Pending", more)
	}
	return msg
}

// roundLead is a lead time as a message gives it: whole minutes from 2 minutes, else
// whole seconds.
func roundLead(d time.Duration) string {
	if d >= 2*time.Minute {
		return fmt.Sprintf("%d min", int(d.Round(time.Minute)/time.Minute))
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
}
