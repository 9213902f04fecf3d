package backtest

import (
	"errors"
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
	if par.MinReplicas == 0 {
		return nil, errors.New("baseline at minReplicas 0: the HPA scales from zero only on an External metric, whose target needs the trace: use BaselineFromZero")
	}
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

// BaselineFromZero is the HPA's reactive scale-from-zero on the model (Kubernetes 1.37,
// minReplicas 0): Baseline at minReplicas 0 plus the External metric that the HPA needs to
// scale from zero, the arrival rate (sum(rate(inference_requests_total[1m]))) with the
// AverageValue one replica serves at the target utilization, mu x TargetUtilization of tr.
// From zero the HPA's proposal is ceil(rate / target), limited by the scale-up rate
// policies (4 pods, then doubling, per 15 s); it goes to zero once every metric proposes 0
// for the 300 s scale-down window.
func BaselineFromZero(par Params, tr Trace) (*policy.Policy, error) {
	if len(tr) == 0 || tr.Peak() <= 0 {
		return nil, fmt.Errorf("baseline from zero: trace: %w", ErrNoRequests)
	}
	one := par
	one.MinReplicas = 1
	p, err := Baseline(one)
	if err != nil {
		return nil, err
	}
	perReplica, err := quantity(par.Mu(tr) * par.TargetUtilization)
	if err != nil {
		return nil, fmt.Errorf("baseline arrival target: %w", err)
	}
	p.MinReplicas = ptr[int32](0)
	p.Metrics = append(p.Metrics, policy.Metric{Name: "arrival", Query: "sum(rate(inference_requests_total[1m]))",
		Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &perReplica}})
	if err := (policy.File{Policies: []policy.Policy{*p}}).Validate(); err != nil {
		return nil, fmt.Errorf("baseline policy from zero: %w", err)
	}
	return p, nil
}

// quantity returns v, rounded to milli-units (100 x 0.7 is 70.00000000000001 in float64),
// as a policy quantity.
func quantity(v float64) (policy.Quantity, error) {
	return policy.ParseQuantity(strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64))
}

func ptr[T any](v T) *T { return &v }
