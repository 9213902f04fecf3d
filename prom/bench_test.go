package prom

import (
	"fmt"
	"testing"

	"github.com/prometheus/common/model"
)

// BenchmarkSampleDecode is the pure result-to-Sample conversion of a per-pod vector, as
// vllm:num_requests_waiting of 100 and 1000 pods.
func BenchmarkSampleDecode(b *testing.B) {
	for _, pods := range []int{100, 1000} {
		vec := make(model.Vector, pods)
		for i := range vec {
			vec[i] = podSample(fmt.Sprintf("vllm-7d9f8c6b5-%05d", i), float64(i%17))
		}
		b.Run(fmt.Sprintf("pods=%d", pods), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s, err := decode(vec, DefaultPodLabel)
				if err != nil || len(s.PerPod) != pods {
					b.Fatalf("decode() = %d pods, %v", len(s.PerPod), err)
				}
			}
		})
	}
}
