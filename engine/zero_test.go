package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/prescale/prescale/policy"
)

func wakePolicy(maxWrong float64, last int32) *policy.Policy {
	q := policy.MustQuantity("4")
	return &policy.Policy{Name: "llm", ScaleToZero: &policy.ScaleToZero{
		Activation: policy.Activation{Query: "rate", PerReplica: &q},
		WakeAhead:  &policy.WakeAhead{MaxWrong: &maxWrong, Last: &last},
	}}
}

// TestWakerGate judges claims due 5 minutes after they are made against the activation
// signal, with maxWrong 0.5 over the last 4.
func TestWakerGate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	minute := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	idle, active := &policy.Sample{Value: 0}, &policy.Sample{Value: 3}
	missing := &policy.Sample{Err: errors.New("stale")}
	p := wakePolicy(0.5, 4)
	w := newWaker(p)
	z := p.ScaleToZero
	steps := []struct {
		name        string
		claimAt     int // -1: no claim at this step
		at          int
		sample      *policy.Sample
		wantChanged bool
		wantGated   bool
		wantWrong   int
		wantJudged  int
	}{
		{name: "nothing pending: nothing judged", claimAt: 0, at: 0, sample: idle},
		{name: "idle at the deadline: still pending", claimAt: -1, at: 5, sample: idle},
		{name: "missing after the deadline judges by the deadline: wrong, 1 of 1 > 0.5: gated", claimAt: -1, at: 6, sample: missing,
			wantChanged: true, wantGated: true, wantWrong: 1, wantJudged: 1},
		{name: "a claim at 6 right at 8: 1 of 2 wrong, not above 0.5: open", claimAt: 6, at: 8, sample: active,
			wantChanged: true, wantWrong: 1, wantJudged: 2},
		{name: "a claim at 8 wrong at 14: 2 of 3", claimAt: 8, at: 14, sample: idle,
			wantChanged: true, wantGated: true, wantWrong: 2, wantJudged: 3},
		{name: "a claim right: 2 of 4, open", claimAt: 14, at: 15, sample: active,
			wantChanged: true, wantWrong: 2, wantJudged: 4},
		{name: "a claim right: the oldest wrong leaves the last 4: 1 of 4", claimAt: 15, at: 16, sample: active,
			wantWrong: 1, wantJudged: 4},
	}
	for _, s := range steps {
		if s.claimAt >= 0 {
			w.claim(minute(s.claimAt + 5))
		}
		changed := w.judge(z, s.sample, minute(s.at))
		st := w.status()
		if changed != s.wantChanged || st.Gated != s.wantGated || st.Wrong != s.wantWrong || st.Judged != s.wantJudged {
			t.Fatalf("%s: changed %v gated %v wrong %d judged %d; want %v %v %d %d",
				s.name, changed, st.Gated, st.Wrong, st.Judged, s.wantChanged, s.wantGated, s.wantWrong, s.wantJudged)
		}
	}
}
