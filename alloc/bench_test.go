package alloc

import (
	"fmt"
	"testing"
)

// BenchmarkAllocate is one tick of 1, 100 and 1000 policies surging together on one pool
// of 125 nodes x 8 GPUs (1000 GPUs free), each with one pod placed and wanting 4 more
// 1-GPU pods than it has: 4000 wanted, 1000 fit, and the limited policies' explanations
// name who took and who holds the GPUs.
func BenchmarkAllocate(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("policies=%d", n), func(b *testing.B) {
			pool := nodes("gpu", 125, map[string]int64{gpu: 8})
			all := names(pool)
			in := Input{Nodes: pool, Allowance: map[string]int32{gpu: 10}}
			for i := range n {
				in.Policies = append(in.Policies, Policy{Name: fmt.Sprintf("p%04d", i), Priority: int32(i % 3),
					Guaranteed: int32(i % 2), PerPod: map[string]int64{gpu: 1}, Nodes: all, Current: 1, Placed: 1, Wanted: 5,
					PlacedOn: map[string]int32{all[i%len(all)]: 1}})
			}
			b.ReportAllocs()
			for b.Loop() {
				Allocate(in)
			}
		})
	}
}
