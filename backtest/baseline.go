package backtest

import (
	"fmt"
	"math"
	"strconv"

	"github.com/prescale/prescale/policy"
)

// Names of the two policies that every backtest reports beside the configured one.
const (
	HPAName    = "hpa"
	OracleName = "oracle"
)

// Baseline returns the HPA-equivalent policy of the model: GPU utilization (AverageValue
// 100 x TargetUtilization) and queue depth (AverageValue QueueTarget), tolerance 0.1,
// scale-up window 0 s with max(100%, 4 pods) per 15 s, scale-down window 300 s with 100% per
// 15 s, replicas MinReplicas..Max(). It returns an error when par gives an invalid policy.
func Baseline(par Params) (*policy.Policy, error) {
	gpu, err := quantity(100 * par.TargetUtilization)
	if err != nil {
		return nil, fmt.Errorf("baseline gpu target: %w", err)
	}
	queue, err := quantity(par.QueueTarget)
	if err != nil {
		return nil, fmt.Errorf("baseline queue target: %w", err)
	}
	tol := policy.MustQuantity("0.1")
	maxSel := policy.SelectMax
	minR := par.MinReplicas
	p := policy.Policy{
		Name:        HPAName,
		Target:      policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "backtest", Name: "model"},
		MinReplicas: &minR,
		MaxReplicas: par.Max(),
		Metrics: []policy.Metric{
			{Name: "gpu", Query: "avg by (pod) (DCGM_FI_DEV_GPU_UTIL)",
				Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &gpu}},
			{Name: "queue", Query: "sum by (pod) (vllm:num_requests_waiting)",
				Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &queue}},
		},
		Behavior: &policy.Behavior{
			ScaleUp: &policy.Rules{StabilizationWindowSeconds: ptr[int32](0), SelectPolicy: &maxSel, Tolerance: &tol,
				Policies: []policy.RatePolicy{{Type: policy.PodsPolicy, Value: 4, PeriodSeconds: 15}, {Type: policy.PercentPolicy, Value: 100, PeriodSeconds: 15}}},
			ScaleDown: &policy.Rules{StabilizationWindowSeconds: ptr[int32](300), Tolerance: &tol,
				Policies: []policy.RatePolicy{{Type: policy.PercentPolicy, Value: 100, PeriodSeconds: 15}}},
		},
	}
	if err := (policy.File{Policies: []policy.Policy{p}}).Validate(); err != nil {
		return nil, fmt.Errorf("baseline policy: %w", err)
	}
	return &p, nil
}

// quantity returns v, rounded to milli-units (100 x 0.7 is 70.00000000000001 in float64),
// as a policy quantity.
func quantity(v float64) (policy.Quantity, error) {
	return policy.ParseQuantity(strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64))
}

func ptr[T any](v T) *T { return &v }
