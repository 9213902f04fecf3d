package policy

import (
	"math"
	"time"
)

// Decide computes the desired replicas of one sync of policy p from the observation in and
// the history that the previous sync returned, at instant now. It reproduces the HPA
// controller's reconcileAutoscaler (Kubernetes v1.37) step by step. It is deterministic: the
// same arguments always give the same Decision and History. Decide may reuse hist's storage:
// the caller must keep only the returned History. p must have passed Validate.
func Decide(p *Policy, in Observation, hist History, now time.Time) (Decision, History) {
	if p.ScaleToZero != nil {
		return decideZero(p, in, hist, now)
	}
	return decide(p, in, hist, now, p.minReplicas())
}

// decide is the HPA's reconcileAutoscaler with the minimum replicas minR.
func decide(p *Policy, in Observation, hist History, now time.Time, minR int32) (Decision, History) {
	cur := in.SpecReplicas
	d := Decision{Time: now, CurrentReplicas: cur, DesiredReplicas: cur}

	// The HPA's recordInitialRecommendation: the first sync remembers the current scale.
	if hist.Recommendations == nil {
		hist.Recommendations = append(make([]Recommendation, 0, 24), Recommendation{Replicas: cur, At: now})
	}
	hist.scalar = false
	for i := range in.Metrics {
		if in.Metrics[i].Err == nil && in.Metrics[i].PerPod == nil {
			hist.scalar = true
		}
	}

	switch {
	case cur == 0 && !(hist.ScaledToZero && (minR != 0 || hist.scalar)):
		// Zero replicas that the autoscaler did not set: someone turned the workload off.
		d.Reason = ReasonScalingDisabled
		return d, hist
	case cur > p.MaxReplicas:
		d.DesiredReplicas = p.MaxReplicas
		d.Reason = ReasonTooManyReplicas
		d.Clamps = []Clamp{{Reason: ReasonTooManyReplicas, From: cur, To: p.MaxReplicas}}
		return d, hist
	case cur < minR && cur != 0:
		d.DesiredReplicas = minR
		d.Reason = ReasonTooFewReplicas
		d.Clamps = []Clamp{{Reason: ReasonTooFewReplicas, From: cur, To: minR}}
		return d, hist
	}

	if in.AmbiguousSelector {
		// The HPA's validateAndParseSelector: its pods are also another autoscaler's, so no
		// metric of them is its own. It holds, and records no recommendation.
		d.Reason = ReasonAmbiguousSelector
		return d, hist
	}
	proposal, ok := proposeFromMetrics(p, &in, &d)
	proposal, ok = joinForecast(in.Forecast, cur, proposal, ok, p.tolerances(), &d)
	if ok && in.LoadErr != nil && proposal < cur {
		// The forecast's load is missing: like a missing metric, it holds a scale-down.
		ok = false
		d.Metric = ""
	}
	if !ok {
		d.Reason = ReasonFailedGetMetric
		return d, hist
	}
	d.Proposal = proposal

	var desired int32
	if p.Behavior == nil {
		desired, hist = normalizeBehaviorless(p, cur, proposal, minR, hist, now, &d)
	} else {
		desired, hist = normalizeWithBehavior(p, cur, proposal, minR, hist, now, &d)
	}
	d.Reason = ReasonDesiredWithinRange
	if n := len(d.Clamps); n > 0 {
		d.Reason = d.Clamps[n-1].Reason
	}
	// Scaling up from zero with minReplicas raised meanwhile: at least minReplicas.
	if cur == 0 && minR != 0 && hist.ScaledToZero && desired < minR {
		d.Clamps = append(d.Clamps, Clamp{Reason: ReasonTooFewReplicas, From: desired, To: minR})
		desired = minR
		d.Reason = ReasonTooFewReplicas
	}
	d.DesiredReplicas = desired
	return d, hist
}

// ForecastMetric is Decision.Metric when the forecast's proposal won.
const ForecastMetric = "forecast"

// joinForecast adds the forecast's proposal to the metrics' maximum, as if it were one more
// metric: an External AverageValue metric whose target is perReplica. Its proposal is
// ceil(value / perReplica), or the current replicas when value / (perReplica x current)
// is within the policy's tolerance, as for any metric: the forecast does not move the
// replicas by the odd pod its noise crosses (each would be one more scale event), and a
// forecast that the current replicas fit holds a scale-down of the metrics. The larger
// proposal wins. When the metrics' proposal is a hold (ok false: metrics missing), a
// forecast above the current replicas still scales up; one at or below them leaves the
// hold. A gated forecast, or one whose perReplica is not known, proposes nothing.
func joinForecast(f *ForecastInput, cur, proposal int32, ok bool, tol tolerances, d *Decision) (int32, bool) {
	if f == nil {
		return proposal, ok
	}
	r := &ForecastResult{Method: f.Method, Point: Float(f.Point), Lo: Float(f.Lo), Hi: Float(f.Hi),
		Value: Float(f.Value), Gated: f.Gated}
	d.Forecast = r
	switch {
	case f.Gated:
		r.Reason = ReasonForecastGated
		return proposal, ok
	case !f.PerReplicaKnown || !(f.PerReplica > 0):
		r.Reason = ReasonForecastLearning
		return proposal, ok
	}
	r.PerReplica = Float(f.PerReplica)
	if CheckSample(f.Value) != nil {
		return proposal, ok // not a usable forecast: no proposal
	}
	r.Proposal = ceilReplicas(f.Value / f.PerReplica)
	if cur > 0 && tol.within(f.Value/(f.PerReplica*float64(cur))) {
		r.Proposal = cur
	}
	switch {
	case ok && r.Proposal > proposal, !ok && r.Proposal > cur:
		r.Won = true
		d.Metric = ForecastMetric
		return r.Proposal, true
	}
	return proposal, ok
}

// proposeFromMetrics evaluates every metric into d.Metrics and returns the largest proposal
// and the metric that made it (the HPA's computeReplicasForMetrics). It returns false when the
// current replicas must be held: every metric is missing, or some are and the rest would
// scale down.
func proposeFromMetrics(p *Policy, in *Observation, d *Decision) (int32, bool) {
	tol := p.tolerances()
	d.Metrics = make([]MetricResult, len(p.Metrics))
	var proposal int32
	invalid := 0
	for i := range p.Metrics {
		var s Sample
		if i < len(in.Metrics) {
			s = in.Metrics[i]
		} else {
			s = Sample{Err: errNoSample}
		}
		res := evaluate(&p.Metrics[i], s, in, tol)
		d.Metrics[i] = res
		if res.Error != "" {
			invalid++
			continue
		}
		if proposal == 0 || res.Proposal > proposal {
			proposal = res.Proposal
			d.Metric = res.Name
		}
	}
	if invalid >= len(p.Metrics) || (invalid > 0 && proposal < in.SpecReplicas) {
		d.Metric = ""
		return 0, false
	}
	return proposal, true
}

// normalizeBehaviorless is the HPA's normalizeDesiredReplicas, taken when the policy has no
// behavior: the highest recommendation of the last 300 s, then convertDesiredReplicasWithRules
// (min, max, and a scale-up limit of max(2*current, 4)).
func normalizeBehaviorless(p *Policy, cur, proposal, minR int32, hist History, now time.Time, d *Decision) (int32, History) {
	cutoff := now.Add(-time.Duration(DefaultScaleDownWindowSeconds) * time.Second)
	stabilized := proposal
	old := -1
	same := sameTime{lo: -1, hi: -1}
	for i, rec := range hist.Recommendations {
		if rec.At.Before(cutoff) {
			old = i
		} else if rec.Replicas > stabilized {
			stabilized = rec.Replicas
		}
		if rec.At.Equal(now) {
			same.see(hist.Recommendations, i)
		}
	}
	hist.Recommendations = storeRecommendation(hist.Recommendations, old, same, Recommendation{Replicas: proposal, At: now})

	if stabilized != proposal {
		d.Clamps = append(d.Clamps, Clamp{Reason: ReasonScaleDownStabilized, From: proposal, To: stabilized})
	}

	upLimit := int32(math.Max(behaviorlessScaleUpLimitFactor*float64(cur), behaviorlessScaleUpLimitMinimum))
	maxAllowed, maxReason := p.MaxReplicas, ReasonTooManyReplicas
	if p.MaxReplicas > upLimit {
		maxAllowed, maxReason = upLimit, ReasonScaleUpLimit
	}
	switch {
	case stabilized < minR:
		d.Clamps = append(d.Clamps, Clamp{Reason: ReasonTooFewReplicas, From: stabilized, To: minR})
		return minR, hist
	case stabilized > maxAllowed:
		d.Clamps = append(d.Clamps, Clamp{Reason: maxReason, From: stabilized, To: maxAllowed})
		return maxAllowed, hist
	}
	return stabilized, hist
}

// normalizeWithBehavior is the HPA's normalizeDesiredReplicasWithBehaviors: stabilization
// windows per direction, then the rate policies and min/max.
func normalizeWithBehavior(p *Policy, cur, proposal, minR int32, hist History, now time.Time, d *Decision) (int32, History) {
	up, down := p.scaleUpRules(), p.scaleDownRules()
	upCutoff := now.Add(-time.Duration(up.windowSeconds) * time.Second)
	downCutoff := now.Add(-time.Duration(down.windowSeconds) * time.Second)
	upRec, downRec := proposal, proposal
	old := -1
	same := sameTime{lo: -1, hi: -1}
	for i, rec := range hist.Recommendations {
		if rec.At.After(upCutoff) {
			upRec = min(upRec, rec.Replicas)
		}
		if rec.At.After(downCutoff) {
			downRec = max(downRec, rec.Replicas)
		}
		if rec.At.Before(upCutoff) && rec.At.Before(downCutoff) {
			old = i
		}
		if rec.At.Equal(now) {
			same.see(hist.Recommendations, i)
		}
	}
	stabilized := cur
	if stabilized < upRec {
		stabilized = upRec
	}
	if stabilized > downRec {
		stabilized = downRec
	}
	hist.Recommendations = storeRecommendation(hist.Recommendations, old, same, Recommendation{Replicas: proposal, At: now})

	if stabilized != proposal {
		reason := ReasonScaleDownStabilized
		if proposal >= cur {
			reason = ReasonScaleUpStabilized
		}
		d.Clamps = append(d.Clamps, Clamp{Reason: reason, From: proposal, To: stabilized})
	}

	// convertDesiredReplicasWithBehaviorRate.
	switch {
	case stabilized > cur:
		limit := rateLimit(up, cur, hist, now, true)
		if limit < cur {
			limit = cur // no further scale-up until the recent events age out
		}
		maxAllowed, reason := p.MaxReplicas, ReasonTooManyReplicas
		if maxAllowed > limit {
			maxAllowed, reason = limit, ReasonScaleUpLimit
		}
		if stabilized > maxAllowed {
			d.Clamps = append(d.Clamps, Clamp{Reason: reason, From: stabilized, To: maxAllowed})
			return maxAllowed, hist
		}
	case stabilized < cur:
		limit := rateLimit(down, cur, hist, now, false)
		if limit > cur {
			limit = cur // no further scale-down until the recent events age out
		}
		minAllowed, reason := minR, ReasonTooFewReplicas
		if minAllowed < limit {
			minAllowed, reason = limit, ReasonScaleDownLimit
		}
		if stabilized < minAllowed {
			d.Clamps = append(d.Clamps, Clamp{Reason: reason, From: stabilized, To: minAllowed})
			return minAllowed, hist
		}
	}
	return stabilized, hist
}

// rateLimit is the HPA's calculateScaleUpLimitWithScalingRules (up) and
// calculateScaleDownLimitWithBehaviors (down): the furthest the rate policies let the scale
// move from the replicas at the start of each policy's period.
func rateLimit(r rules, cur int32, hist History, now time.Time, up bool) int32 {
	if r.selectPolicy == SelectDisabled {
		return cur
	}
	// For a scale-up, Max picks the largest change (the largest limit); for a scale-down,
	// the largest change is the smallest limit.
	pickLargest := (r.selectPolicy == SelectMin) != up
	result := int32(math.MaxInt32)
	if pickLargest {
		result = math.MinInt32
	}
	for _, rp := range r.policies {
		added := changeWithin(hist.ScaleUpEvents, rp.PeriodSeconds, now)
		removed := changeWithin(hist.ScaleDownEvents, rp.PeriodSeconds, now)
		start := cur - added + removed
		var proposed int32
		switch {
		case rp.Type == PodsPolicy && up:
			proposed = saturate(float64(start) + float64(rp.Value))
		case rp.Type == PodsPolicy:
			proposed = saturate(float64(start) - float64(rp.Value))
		case up:
			// Rounded up, so that a small percentage still adds a pod.
			proposed = saturate(math.Ceil(float64(start) * (1 + float64(rp.Value)/100)))
		default:
			proposed = saturate(float64(start) * (1 - float64(rp.Value)/100))
		}
		if pickLargest {
			result = max(result, proposed)
		} else {
			result = min(result, proposed)
		}
	}
	return result
}

// saturate converts v to int32, truncating toward zero and clamping to the int32 range. A
// rate policy's value may be up to 2^31-1, so its limit can lie far outside int32; a plain
// conversion wraps (Pods) or is implementation-defined (Percent) and froze the scale-up at the
// current replicas. The HPA has the same overflow; prescale saturates on purpose.
func saturate(v float64) int32 {
	switch {
	case v >= math.MaxInt32:
		return math.MaxInt32
	case v <= math.MinInt32:
		return math.MinInt32
	}
	return int32(v)
}

// changeWithin is the HPA's getReplicasChangePerPeriod: the replicas changed by events
// strictly after now - period.
func changeWithin(events []ScaleEvent, periodSeconds int32, now time.Time) int32 {
	cutoff := now.Add(-time.Duration(periodSeconds) * time.Second)
	var n int32
	for _, e := range events {
		if e.At.After(cutoff) {
			n += e.Change
		}
	}
	return n
}

// sameTime indexes the recommendations made at the current sync's instant with the fewest
// (lo) and the most (hi) replicas; -1 when there are none.
type sameTime struct{ lo, hi int }

// see takes recs[i], a recommendation made at the current instant, into account.
func (s *sameTime) see(recs []Recommendation, i int) {
	if s.lo < 0 || recs[i].Replicas < recs[s.lo].Replicas {
		s.lo = i
	}
	if s.hi < 0 || recs[i].Replicas > recs[s.hi].Replicas {
		s.hi = i
	}
}

// storeRecommendation replaces the recommendation at index old (one that fell out of every
// window), or appends when old is -1, as the HPA does; but it keeps at most two
// recommendations per instant, the fewest and the most replicas. Recommendations made at
// one instant fall in and out of the windows together, and the windows take only their
// minimum (scale-up) and maximum (scale-down), so the others change no decision; kept,
// they would make n syncs at one instant (a replay of lines sharing a timestamp) cost
// O(n²). The HPA stamps each sync with the wall clock and never meets this case.
func storeRecommendation(recs []Recommendation, old int, same sameTime, rec Recommendation) []Recommendation {
	switch {
	case same.lo >= 0 && recs[same.lo].Replicas <= rec.Replicas && rec.Replicas <= recs[same.hi].Replicas:
		return recs // within this instant's range already
	case same.lo >= 0 && same.lo != same.hi && rec.Replicas < recs[same.lo].Replicas:
		recs[same.lo] = rec // the old minimum is now neither minimum nor maximum
		return recs
	case same.lo >= 0 && same.lo != same.hi:
		recs[same.hi] = rec // rec is above the old maximum
		return recs
	}
	if old >= 0 {
		recs[old] = rec
		return recs
	}
	return append(recs, rec)
}

// RecordScale returns h with a scale from `from` to `to` replicas written at now. Call it
// only when the scale was actually written, after the Decide that proposed it. It keeps what
// the HPA's storeScaleEvent keeps (events only for a policy with behavior, older events
// reused) and its ScaledToZero condition. It may reuse h's storage.
func (h History) RecordScale(p *Policy, from, to int32, now time.Time) History {
	if from == to {
		return h
	}
	h.ScaledToZero = h.ScaledToZeroAfter(p, from, to)
	if p.Behavior == nil {
		return h
	}
	if to > from {
		h.ScaleUpEvents = storeEvent(h.ScaleUpEvents, longestPeriod(p.scaleUpRules()), to-from, now)
	} else {
		h.ScaleDownEvents = storeEvent(h.ScaleDownEvents, longestPeriod(p.scaleDownRules()), from-to, now)
	}
	return h
}

// ScaledToZeroAfter reports whether a write of p's scale from `from` to `to` replicas sets
// the ScaledToZero condition (RecordScale): the autoscaler itself took the target from above
// zero to zero, which it may do only for a policy with minReplicas 0 and either scaleToZero
// or an Object or External metric at the last Decide (as the HPA). A driver that must
// persist the condition before the write (a restarted controller reads it back) asks this
// first; it does not change h.
func (h History) ScaledToZeroAfter(p *Policy, from, to int32) bool {
	return from > 0 && to == 0 && p.minReplicas() == 0 && (h.scalar || p.ScaleToZero != nil)
}

// storeEvent is the HPA's markScaleEventsOutdated plus the store step of storeScaleEvent.
func storeEvent(events []ScaleEvent, longest int32, change int32, now time.Time) []ScaleEvent {
	cutoff := now.Add(-time.Duration(longest) * time.Second)
	old := -1
	for i := range events {
		if events[i].At.Before(cutoff) {
			events[i].Outdated = true
		}
		if events[i].Outdated {
			old = i
		}
	}
	e := ScaleEvent{Change: change, At: now}
	if old >= 0 {
		events[old] = e
		return events
	}
	return append(events, e)
}
