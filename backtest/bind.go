package backtest

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prescale/prescale/policy"
)

// Series is one quantity of the v1 model (shared/specs/backtest-model.md) that the reference
// HPA baseline reads (Contender.Reference), and that a sweep's target keys name. Every
// other policy's queries are PromQL over the model's series (promql.go).
type Series int

const (
	// GPUUtil is DCGM_FI_DEV_GPU_UTIL, per Ready pod: percent of capacity served.
	GPUUtil Series = iota
	// QueueDepth is vllm:num_requests_waiting, per Ready pod: queue / Ready pods.
	QueueDepth
	// QueueingDelay is vllm:e2e_request_latency_seconds, for the service: seconds.
	QueueingDelay
	// ArrivalRate is inference_requests_total, for the service: a query on the counter binds
	// to its rate, requests/s.
	ArrivalRate
	numSeries
)

// seriesNames are the exported names, in the order binding tries them.
var seriesNames = [numSeries]string{
	GPUUtil:       "DCGM_FI_DEV_GPU_UTIL",
	QueueDepth:    "vllm:num_requests_waiting",
	QueueingDelay: "vllm:e2e_request_latency_seconds",
	ArrivalRate:   "inference_requests_total",
}

// String returns the series' exported name.
func (s Series) String() string { return seriesNames[s] }

// perPod reports whether the series has one value per Ready pod.
func (s Series) perPod() bool { return s == GPUUtil || s == QueueDepth }

// Bind returns, for each of p's metrics in order, the v1 quantity it reads: the first
// series, in the order GPUUtil, QueueDepth, QueueingDelay, ArrivalRate, whose name the
// query mentions. A query that mentions none is an error naming the metric and the policy.
func Bind(p *policy.Policy) ([]Series, error) {
	out := make([]Series, len(p.Metrics))
	for i := range p.Metrics {
		s, ok := bindQuery(p.Metrics[i].Query)
		if !ok {
			return nil, fmt.Errorf("bind metric %s of policy %s: query %q mentions none of the model's series (%s)",
				p.Metrics[i].Name, p.Name, p.Metrics[i].Query, strings.Join(seriesNames[:], ", "))
		}
		out[i] = s
	}
	return out, nil
}

func bindQuery(q string) (Series, bool) {
	for s := range numSeries {
		if strings.Contains(q, seriesNames[s]) {
			return s, true
		}
	}
	return 0, false
}

// errNoSample is a service-level series without a sample in its window.
var errNoSample = errors.New("no sample in the last minute")
