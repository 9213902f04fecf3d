package policy

import "time"

// Decide computes the desired replicas of one sync of policy p from the observation in and
// the history that the previous sync returned, at instant now. It is deterministic: the same
// arguments always give the same Decision and History. Decide may reuse hist's storage: the
// caller must keep only the returned History.
func Decide(p *Policy, in Observation, hist History, now time.Time) (Decision, History) {
	panic("not implemented yet")
}

// RecordScale returns h with a scale from `from` to `to` replicas written at now, for the rate
// policies. Call it only when the scale was actually written. It may reuse h's storage.
func (h History) RecordScale(p *Policy, from, to int32, now time.Time) History {
	panic("not implemented yet")
}
