package engine

import (
	"time"

	"github.com/prescale/prescale/policy"
)

// WakeStatus is the predictive wake-up's part of a policy's status and decision record.
type WakeStatus struct {
	// Gated is true while more than MaxWrong of the last Last judged claims were wrong: the
	// target no longer wakes ahead of a forecast return, only on its activation signal.
	Gated bool `json:"gated"`
	// Judged and Wrong count the claims in the record (at most Last).
	Judged   int     `json:"judged"`
	Wrong    int     `json:"wrong"`
	MaxWrong float64 `json:"maxWrong"`
	Last     int     `json:"last"`
	// Pending is the deadline of the claim being judged, nil when none is.
	Pending *time.Time `json:"pending,omitempty"`
}

// waker is the wake-ahead gate of one policy. Each time the decision reports that the
// forecast expects the load back while the target idles (Decision.Zero.ExpectsLoad), and no
// claim is pending, a claim is opened: the load is due by now + horizon + LoadStep (the
// forecast is for now + horizon, and serves LoadStep). The claim is right when the
// activation signal goes above its threshold by then, wrong when the deadline passes first.
// The gate is judged like the forecast's: closed while the wrong share of the last claims
// is above maxWrong. Claims are made and judged while it is closed too (the decision still
// reports the expected load), so that the gate opens again once they prove right.
type waker struct {
	maxWrong float64
	last     int
	record   []bool // the last judgements, oldest first: true for a wrong claim
	pending  bool
	deadline time.Time
	gated    bool
	st       WakeStatus
}

func newWaker(p *policy.Policy) *waker {
	w := &waker{}
	w.setPolicy(p)
	return w
}

func (w *waker) setPolicy(p *policy.Policy) {
	w.maxWrong, w.last = p.ScaleToZero.WakeGateOrDefault()
	if len(w.record) > w.last {
		w.record = w.record[len(w.record)-w.last:]
	}
	w.gated = w.judgeGate()
}

// judge judges the pending claim against this Step's activation sample and returns whether
// the gate changed. A missing sample judges nothing until the deadline.
func (w *waker) judge(z *policy.ScaleToZero, s *policy.Sample, now time.Time) bool {
	if !w.pending {
		return false
	}
	active := false
	if s != nil {
		_, a, err := z.ActivationValue(*s)
		active = err == nil && a
	}
	switch {
	case active:
		w.add(false)
	case now.After(w.deadline):
		w.add(true)
	default:
		return false
	}
	w.pending = false
	was := w.gated
	w.gated = w.judgeGate()
	return was != w.gated
}

func (w *waker) add(wrong bool) {
	if len(w.record) == w.last {
		w.record = w.record[:copy(w.record, w.record[1:])]
	}
	w.record = append(w.record, wrong)
}

func (w *waker) judgeGate() bool {
	if len(w.record) == 0 {
		return false
	}
	wrong := 0
	for _, x := range w.record {
		if x {
			wrong++
		}
	}
	return float64(wrong)/float64(len(w.record)) > w.maxWrong
}

// claim opens a claim due by deadline unless one is pending.
func (w *waker) claim(deadline time.Time) {
	if !w.pending {
		w.pending, w.deadline = true, deadline
	}
}

// Copy returns a copy of st that shares no storage with the engine: Pending points into
// the waker, which the next Step rewrites.
func (st *WakeStatus) Copy() *WakeStatus {
	if st == nil {
		return nil
	}
	c := *st
	if st.Pending != nil {
		d := *st.Pending
		c.Pending = &d
	}
	return &c
}

// status returns the gate's status; valid until the next Step.
func (w *waker) status() *WakeStatus {
	w.st = WakeStatus{Gated: w.gated, Judged: len(w.record), MaxWrong: w.maxWrong, Last: w.last}
	for _, x := range w.record {
		if x {
			w.st.Wrong++
		}
	}
	if w.pending {
		w.st.Pending = &w.deadline
	}
	return &w.st
}
