package policy

// rules is a Rules block with every default filled in: the HPA's HPAScalingRules after API
// defaulting and the controller's flags.
type rules struct {
	windowSeconds int32
	selectPolicy  SelectPolicy
	policies      []RatePolicy
	tolerance     float64
}

// The HPA's default rate policies (k8s.io/kubernetes/pkg/apis/autoscaling/v2 defaults). They
// are shared and must never be modified.
var (
	defaultScaleUpPolicies = []RatePolicy{
		{Type: PodsPolicy, Value: defaultScaleUpPodsValue, PeriodSeconds: defaultPolicyPeriodSeconds},
		{Type: PercentPolicy, Value: defaultScaleUpPercentValue, PeriodSeconds: defaultPolicyPeriodSeconds},
	}
	defaultScaleDownPolicies = []RatePolicy{
		{Type: PercentPolicy, Value: defaultScaleDownPercentValue, PeriodSeconds: defaultPolicyPeriodSeconds},
	}
)

func effectiveRules(r *Rules, window int32, policies []RatePolicy) rules {
	out := rules{windowSeconds: window, selectPolicy: SelectMax, policies: policies, tolerance: DefaultTolerance}
	if r == nil {
		return out
	}
	if r.StabilizationWindowSeconds != nil {
		out.windowSeconds = *r.StabilizationWindowSeconds
	}
	if r.SelectPolicy != nil {
		out.selectPolicy = *r.SelectPolicy
	}
	if r.Policies != nil {
		out.policies = r.Policies
	}
	if r.Tolerance != nil {
		out.tolerance = r.Tolerance.Float64()
	}
	return out
}

// scaleUpRules returns the effective scale-up rules; meaningful only when p.Behavior is set.
func (p *Policy) scaleUpRules() rules {
	var r *Rules
	if p.Behavior != nil {
		r = p.Behavior.ScaleUp
	}
	return effectiveRules(r, DefaultScaleUpWindowSeconds, defaultScaleUpPolicies)
}

// scaleDownRules returns the effective scale-down rules; meaningful only when p.Behavior is set.
func (p *Policy) scaleDownRules() rules {
	var r *Rules
	if p.Behavior != nil {
		r = p.Behavior.ScaleDown
	}
	return effectiveRules(r, DefaultScaleDownWindowSeconds, defaultScaleDownPolicies)
}

// tolerances are the ratio bands around 1 within which a metric proposes no change.
type tolerances struct{ down, up float64 }

// within is the HPA's Tolerances.isWithin.
func (t tolerances) within(ratio float64) bool {
	return (1.0-t.down) <= ratio && ratio <= (1.0+t.up)
}

// tolerances returns the policy's tolerances: 0.1 each way, or the behavior's per direction.
func (p *Policy) tolerances() tolerances {
	if p.Behavior == nil {
		return tolerances{down: DefaultTolerance, up: DefaultTolerance}
	}
	return tolerances{down: p.scaleDownRules().tolerance, up: p.scaleUpRules().tolerance}
}

// minReplicas returns minReplicas with its default.
func (p *Policy) minReplicas() int32 {
	if p.MinReplicas == nil {
		return DefaultMinReplicas
	}
	return *p.MinReplicas
}

// longestPeriod is the HPA's getLongestPolicyPeriod.
func longestPeriod(r rules) int32 {
	var longest int32
	for _, rp := range r.policies {
		longest = max(longest, rp.PeriodSeconds)
	}
	return longest
}
