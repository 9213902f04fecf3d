package policy

import (
	"errors"
	"fmt"
	"math"
)

// maxSample bounds a sample so that sums of milli-units over thousands of pods cannot
// overflow int64; larger values are errors, not silently clipped.
const maxSample = 1e12

var (
	errNoPods    = errors.New("no pods selected by the target")
	errNoSamples = errors.New("no samples for the target's pods (pods might be unready)")
	errNoSample  = errors.New("no sample")
)

// CheckSample returns an error for a value that must not be used: NaN, ±Inf, negative or
// beyond maxSample (1e12). The engine's forecast learner checks its samples with it too.
func CheckSample(v float64) error {
	switch {
	case math.IsNaN(v):
		return errors.New("sample is NaN")
	case math.IsInf(v, 0):
		return fmt.Errorf("sample is %v", v)
	case v < 0:
		return fmt.Errorf("sample is negative: %v", v)
	case v > maxSample:
		return fmt.Errorf("sample is out of range: %v", v)
	}
	return nil
}

// ceilReplicas is int32(math.Ceil(x)), saturating at MaxInt32 instead of overflowing.
func ceilReplicas(x float64) int32 {
	c := math.Ceil(x)
	if c >= math.MaxInt32 {
		return math.MaxInt32
	}
	return int32(c)
}

// evaluate computes one metric's proposal, following the HPA's replica calculator for the
// semantics the sample's shape and the target's type select. A missing or invalid sample
// gives a result with Error set.
func evaluate(m *Metric, s Sample, in *Observation, tol tolerances) MetricResult {
	res := MetricResult{Name: m.Name, Warnings: s.Warnings}
	q, _ := m.Target.Quantity()
	res.Target = q.Float64()
	if s.Err != nil {
		res.Error = s.Err.Error()
		return res
	}
	target := q.MilliValue()
	var err error
	switch {
	case s.PerPod != nil && m.Target.Type == AverageValue:
		res.Semantics = SemanticsPods
		err = podsProposal(&res, s.PerPod, in, target, tol)
	case m.Target.Type == AverageValue:
		res.Semantics = SemanticsAverageValue
		if err = CheckSample(s.Value); err == nil {
			averageValueProposal(&res, milliFloor(s.Value), in.StatusReplicas, target, tol)
		}
	default:
		res.Semantics = SemanticsValue
		var usage int64
		if usage, err = scalarUsage(s); err == nil {
			err = valueProposal(&res, usage, in, target, tol)
		}
	}
	if err != nil {
		res = MetricResult{Name: m.Name, Semantics: res.Semantics, Target: res.Target, Error: err.Error(), Warnings: s.Warnings}
	}
	return res
}

// ValueMilli returns a sample's value in milli-units exactly as Decide uses it for a Value
// target: the value, or for a per-pod sample the sum of its series (as the HPA sums an
// external metric's series), each truncated to 1/1000 first. It returns the sample's error,
// or an error for a NaN, ±Inf, negative or out-of-range value; never a zero for missing data.
// The external metrics API serves this number, so that an HPA and the engine see the same
// milli-units.
func ValueMilli(s Sample) (int64, error) {
	if s.Err != nil {
		return 0, s.Err
	}
	if s.PerPod != nil && len(s.PerPod) == 0 {
		return 0, errNoSample
	}
	return scalarUsage(s)
}

// scalarUsage returns a Value metric's usage in milli-units: the value, or for a per-pod
// vector the sum of its series, as the HPA sums an external metric's series.
func scalarUsage(s Sample) (int64, error) {
	if s.PerPod == nil {
		if err := CheckSample(s.Value); err != nil {
			return 0, err
		}
		return milliFloor(s.Value), nil
	}
	var usage int64
	for pod, v := range s.PerPod {
		if err := CheckSample(v); err != nil {
			return 0, fmt.Errorf("pod %s: %w", pod, err)
		}
		usage += milliFloor(v)
	}
	return usage, nil
}

// podsProposal is the HPA's calcPlainMetricReplicas (a Pods metric with an AverageValue
// target), in integer milli-units. Deleted and failed pods are ignored; Pending pods are left
// out and count as 0 on a scale-up; Running pods without a sample count as the target on a
// scale-down and 0 on a scale-up; a fill that reverses the direction or lands within
// tolerance keeps the current replicas. Samples of pods that are not the target's are
// ignored.
func podsProposal(res *MetricResult, perPod map[string]float64, in *Observation, target int64, tol tolerances) error {
	if len(in.Pods) == 0 {
		return errNoPods
	}
	cur := in.SpecReplicas
	var sum int64
	var n, pending, missing, ignored int
	for i := range in.Pods {
		pod := &in.Pods[i]
		switch {
		case pod.Deleting || pod.Phase == PodFailed:
			ignored++
			continue
		case pod.Phase == PodPending:
			pending++
			continue
		}
		v, ok := perPod[pod.Name]
		if !ok {
			missing++
			continue
		}
		if err := CheckSample(v); err != nil {
			return fmt.Errorf("pod %s: %w", pod.Name, err)
		}
		sum += milliFloor(v)
		n++
	}
	res.PodsWithSample, res.PodsPending, res.PodsMissing, res.PodsIgnored = n, pending, missing, ignored
	if n == 0 {
		return errNoSamples
	}
	usage := sum / int64(n)
	ratio := float64(usage) / float64(target)
	res.Value = Float(float64(usage) / 1000)
	res.Ratio = Float(ratio)

	scaleUpWithPending := pending > 0 && ratio > 1.0
	if !scaleUpWithPending && missing == 0 {
		if tol.within(ratio) {
			res.Proposal = cur
		} else {
			res.Proposal = ceilReplicas(ratio * float64(n))
		}
		return nil
	}

	newSum, newN := sum, n
	if missing > 0 {
		if ratio < 1.0 {
			newSum += target * int64(missing)
			newN += missing
		} else if ratio > 1.0 {
			newN += missing
		}
	}
	if scaleUpWithPending {
		newN += pending
	}
	newRatio := float64(newSum/int64(newN)) / float64(target)
	if tol.within(newRatio) || (ratio < 1.0 && newRatio > 1.0) || (ratio > 1.0 && newRatio < 1.0) {
		res.Proposal = cur
		return nil
	}
	proposal := ceilReplicas(newRatio * float64(newN))
	if (newRatio < 1.0 && proposal > cur) || (newRatio > 1.0 && proposal < cur) {
		proposal = cur
	}
	res.Proposal = proposal
	return nil
}

// averageValueProposal is the HPA's GetExternalPerPodMetricReplicas: a single series with an
// AverageValue target, spread over status.replicas.
func averageValueProposal(res *MetricResult, usage int64, statusReplicas int32, target int64, tol tolerances) {
	ratio := float64(usage) / (float64(target) * float64(statusReplicas))
	res.Proposal = statusReplicas
	if !tol.within(ratio) {
		res.Proposal = ceilReplicas(float64(usage) / float64(target))
	}
	res.Value = Float(float64(usage) / 1000 / float64(statusReplicas))
	res.Ratio = Float(ratio)
}

// valueProposal is the HPA's GetExternalMetricReplicas/getUsageRatioReplicaCount: a single
// series with a Value target, times the Ready pods; from zero replicas, ceil(ratio).
func valueProposal(res *MetricResult, usage int64, in *Observation, target int64, tol tolerances) error {
	ratio := float64(usage) / float64(target)
	res.Value = Float(float64(usage) / 1000)
	res.Ratio = Float(ratio)
	cur := in.SpecReplicas
	if cur == 0 {
		res.Proposal = ceilReplicas(ratio)
		return nil
	}
	if tol.within(ratio) {
		res.Proposal = cur
		return nil
	}
	if len(in.Pods) == 0 {
		return errNoPods
	}
	var ready int
	for i := range in.Pods {
		if pod := &in.Pods[i]; pod.Ready && (pod.Phase == PodRunning || pod.Phase == "") {
			ready++
		}
	}
	res.Proposal = ceilReplicas(ratio * float64(ready))
	return nil
}
