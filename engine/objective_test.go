package engine

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/policy"
)

// withObjective is predictive with an objective: at most 1 % of minutes over 2 s.
const withObjective = predictive + `    objective: {query: delay, slo: 2s, budget: 1%}
`

// stepLatency steps e at now with the metric in range and a latency sample.
func stepLatency(e *Engine, now time.Time, latency policy.Sample) Result {
	in := input(2, 15, true)
	in.Load = &policy.Sample{Value: 15}
	in.Latency = &latency
	return e.Step(in, now)
}

func TestObjectiveAdaptsTheQuantileEachMinute(t *testing.T) {
	e := newEngine(t, parse(t, withObjective), Options{})
	ok := policy.Sample{Value: 1}
	over := policy.Sample{Value: 3}
	missing := policy.Sample{Err: errors.New("no data")}
	// Each minute is four 15 s ticks; a minute is closed at the first tick of the next.
	minutes := []struct {
		name    string
		ticks   [4]policy.Sample
		want    float64 // the quantile once the minute is closed
		minutes int64
		over    int64
	}{
		// aim = (1 - 0.1) x 1 % = 0.009; step 0.01.
		{"within the SLO: down by 0.01 x 0.009", [4]policy.Sample{ok, ok, ok, ok}, 0.9 - 0.00009, 1, 0},
		{"one tick over: up by 0.01 x (1 - 0.009)", [4]policy.Sample{ok, over, ok, ok}, 0.89991 + 0.00991, 2, 1},
		{"no sample: counts for nothing", [4]policy.Sample{missing, missing, missing, missing}, 0.90982, 2, 1},
		{"NaN is missing, +Inf is over", [4]policy.Sample{{Value: math.NaN()}, {Value: math.Inf(1)}, missing, ok}, 0.90982 + 0.00991, 3, 2},
	}
	// Step every tick; the status at the first tick of minute i+1 shows minute i closed.
	var ticks []policy.Sample
	for _, m := range minutes {
		ticks = append(ticks, m.ticks[:]...)
	}
	ticks = append(ticks, ok)
	var closed []*ObjectiveStatus
	for i, s := range ticks {
		st := stepLatency(e, t0.Add(time.Duration(i)*15*time.Second), s).Objective
		if i > 0 && i%4 == 0 {
			closed = append(closed, st.Copy())
		}
	}
	for i, m := range minutes {
		st := closed[i]
		if !testutil.Near(st.Quantile, m.want, 1e-12) || st.Minutes != m.minutes || st.ViolatedMinutes != m.over {
			t.Errorf("after %q: quantile %v, minutes %d, violated %d; want %v, %d, %d",
				m.name, st.Quantile, st.Minutes, st.ViolatedMinutes, m.want, m.minutes, m.over)
		}
	}
}

func TestObjectiveReportsTheSample(t *testing.T) {
	e := newEngine(t, parse(t, withObjective), Options{})
	st := stepLatency(e, t0, policy.Sample{Value: 1.5}).Objective
	if st.Latency == nil || *st.Latency != 1.5 || st.LatencyError != "" || st.SLOSeconds != 2 || st.Budget != 0.01 {
		t.Errorf("status %+v, want latency 1.5, SLO 2, budget 0.01", st)
	}
	st = stepLatency(e, t0.Add(15*time.Second), policy.Sample{Value: -1}).Objective
	if st.Latency != nil || !strings.Contains(st.LatencyError, "not a latency: -1") {
		t.Errorf("a negative latency: status %+v, want missing with its reason", st)
	}
	st = stepLatency(e, t0.Add(30*time.Second), policy.Sample{PerPod: map[string]float64{"a": 1}}).Objective
	if st.Latency != nil || !strings.Contains(st.LatencyError, "want one series") {
		t.Errorf("a per-pod latency: status %+v, want missing with its reason", st)
	}
	res := e.Step(input(2, 15, true), t0.Add(45*time.Second)) // no sample taken
	if res.Objective.Latency != nil || res.Objective.LatencyError != "" {
		t.Errorf("no sample taken: status %+v, want neither a latency nor an error", res.Objective)
	}
}

func TestObjectiveQuantileStaysInBounds(t *testing.T) {
	run := func(item string, latency float64, minutes int) *ObjectiveStatus {
		e := newEngine(t, parse(t, item), Options{})
		now := t0
		var st *ObjectiveStatus
		for range 4*minutes + 1 {
			st = stepLatency(e, now, policy.Sample{Value: latency}).Objective
			now = now.Add(15 * time.Second)
		}
		return st
	}
	// 11 minutes over: 0.9 + 11 x 0.00991 is above the bound.
	if st := run(withObjective, 3, 11); st.Quantile != ObjectiveMaxQuantile {
		t.Errorf("after 11 minutes over: quantile %v, want the bound %v", st.Quantile, ObjectiveMaxQuantile)
	}
	// A 50 % budget lowers the quantile by 0.01 x 0.45 a minute: 0.9 - 90 x 0.0045 is below the bound.
	half := strings.Replace(withObjective, "budget: 1%", "budget: 50%", 1)
	if st := run(half, 1, 90); st.Quantile != ObjectiveMinQuantile {
		t.Errorf("after 90 minutes within: quantile %v, want the bound %v", st.Quantile, ObjectiveMinQuantile)
	}
}

// forecast.quantile fixes the quantile; the other knobs are still paced on the bank.
func TestObjectiveWithAFixedQuantileKeepsIt(t *testing.T) {
	fixed := strings.Replace(withObjective, "history: 2h", "history: 2h\n      quantile: 0.95", 1)
	e := newEngine(t, parse(t, fixed), Options{})
	now := t0
	var st *ObjectiveStatus
	for range 9 {
		st = stepLatency(e, now, policy.Sample{Value: 3}).Objective
		now = now.Add(15 * time.Second)
	}
	if !st.Fixed || st.Quantile != 0.95 || st.Minutes != 2 || st.ViolatedMinutes != 2 {
		t.Errorf("status %+v, want fixed at 0.95 with 2 minutes, both violated", st)
	}
	// aim = 0.9 x 1 % = 0.009: two violated minutes leave the bank at 2 x (0.009 - 1).
	if !testutil.Near(st.BankMinutes, 2*(0.009-1), 1e-12) || st.Tightness != 1 {
		t.Errorf("bank %v, tightness %v; want %v, 1", st.BankMinutes, st.Tightness, 2*(0.009-1))
	}
}

func TestObjectiveSurvivesAReload(t *testing.T) {
	p := parse(t, withObjective)
	e := newEngine(t, p, Options{})
	now := t0
	for range 5 {
		stepLatency(e, now, policy.Sample{Value: 3})
		now = now.Add(15 * time.Second)
	}
	// The same policy with another budget: the quantile and the counts carry over.
	q := *p
	o := *p.Objective
	b := policy.Fraction(0.02)
	o.Budget = &b
	q.Objective = &o
	e.SetPolicy(&q)
	st := stepLatency(e, now, policy.Sample{Value: 1}).Objective
	if !testutil.Near(st.Quantile, 0.9+0.00991, 1e-12) || st.Minutes != 1 || st.Budget != 0.02 {
		t.Errorf("after the reload: status %+v, want quantile 0.90991, 1 minute, budget 0.02", st)
	}
	// The bank carries over too (one violated minute at aim 0.009); the knobs follow the
	// reloaded policy's written values: a hold of 10 minutes at T = 1.
	if !testutil.Near(st.BankMinutes, 0.009-1, 1e-12) {
		t.Errorf("after the reload: bank %v, want %v", st.BankMinutes, 0.009-1)
	}
	r := *p.Forecast
	r.Hold = &policy.Duration{Duration: 10 * time.Minute}
	q2 := q
	q2.Forecast = &r
	e.SetPolicy(&q2)
	if st := stepLatency(e, now.Add(15*time.Second), policy.Sample{Value: 1}).Objective; st.HoldSeconds == nil || *st.HoldSeconds != 600 {
		t.Errorf("after a reload with hold 10m at tightness %v: hold %v s, want 600", st.Tightness, st.HoldSeconds)
	}
}

// The adapted quantile is the one the forecast plans for: an engine whose objective drove
// it to its bound forecasts exactly as one configured with that quantile, and unlike one
// at the default.
func TestObjectiveQuantileReachesTheForecast(t *testing.T) {
	gate := strings.Replace(predictive, "history: 2h", "history: 2h\n      gate: {window: 5m}", 1)
	adaptive := newEngine(t, parse(t, gate+"    objective: {query: delay, slo: 2s, budget: 1%}\n"), Options{})
	atBound := newEngine(t, parse(t, strings.Replace(gate, "history: 2h", "history: 2h\n      quantile: 0.999", 1)), Options{})
	atDefault := newEngine(t, parse(t, gate), Options{})
	now := t0
	var a, b, c Result
	for i := range 200 {
		load := 100 + 40*math.Sin(float64(i)/7) + float64(i%3)*15
		in := input(10, 50, true)
		in.Load = &policy.Sample{Value: load}
		in.Latency = &policy.Sample{Value: 3} // every minute over: the quantile rises to its bound
		a = adaptive.Step(in, now)
		in.Latency = nil
		b = atBound.Step(in, now)
		c = atDefault.Step(in, now)
		now = now.Add(15 * time.Second)
	}
	if a.Objective.Quantile != ObjectiveMaxQuantile {
		t.Fatalf("quantile %v, want %v", a.Objective.Quantile, ObjectiveMaxQuantile)
	}
	fa, fb, fc := a.Decision.Forecast, b.Decision.Forecast, c.Decision.Forecast
	if fa == nil || fb == nil || fc == nil {
		t.Fatalf("forecasts %+v, %+v, %+v: want all three", fa, fb, fc)
	}
	if fa.Hi != fb.Hi || !(fa.Hi > fc.Hi) {
		t.Errorf("planned load %v, want %v (quantile 0.999) and above %v (0.9)", fa.Hi, fb.Hi, fc.Hi)
	}
}

// The objective's other knobs follow the budget's bank: they loosen as budget is earned and
// not spent, reach their loose end once the bank holds one episode (and bank no more), and
// tighten as violated minutes spend it, back to the policy as written once it is empty.
func TestObjectivePacesTheKnobsOnTheBank(t *testing.T) {
	// Budget 10 %: aim = 0.9 x 10 % = 0.09 minutes earned a minute; an episode is assumed
	// to last 5 minutes until one is seen. T = 1 - bank / episode.
	item := strings.Replace(withObjective, "budget: 1%", "budget: 10%", 1)
	e := newEngine(t, parse(t, item), Options{})
	ok, over := policy.Sample{Value: 1}, policy.Sample{Value: 3}
	now := t0
	// minute runs one minute of four ticks with the latency s; the last tick's metric is
	// value (2 pods, AverageValue target 10: 20 is on target, 23 is 1.15 of it). It returns
	// the status and decision of the first tick of the next minute, which closes it.
	minute := func(s policy.Sample, value float64) (*ObjectiveStatus, int32) {
		for range 4 {
			in := input(2, 20, true)
			in.Latency = &s
			e.Step(in, now)
			now = now.Add(15 * time.Second)
		}
		in := input(2, value, true)
		in.Latency = &ok
		r := e.Step(in, now)
		return r.Objective.Copy(), r.Decision.DesiredReplicas
	}
	check := func(when string, st *ObjectiveStatus, bank, tight, hold, scale float64) {
		t.Helper()
		if !testutil.Near(st.BankMinutes, bank, 1e-9) || !testutil.Near(st.Tightness, tight, 1e-9) ||
			st.HoldSeconds == nil || *st.HoldSeconds != hold || !testutil.Near(st.TargetScale, scale, 1e-9) {
			t.Errorf("%s: bank %v, tightness %v, hold %v s, target scale %v; want %v, %v, %v s, %v",
				when, st.BankMinutes, st.Tightness, st.HoldSeconds, st.TargetScale, bank, tight, hold, scale)
		}
	}
	st, _ := minute(ok, 20)
	// The hold is T × the default objective hold, 90 minutes.
	check("at the start", st, 0.09, 1-0.09/5, math.Round((1-0.09/5)*5400), 1+0.25*0.09/5)
	for range 19 {
		st, _ = minute(ok, 20)
	}
	check("after 20 minutes within the SLO", st, 1.8, 0.64, 3456, 1.09)
	for range 40 {
		minute(ok, 20)
	}
	// 60 x 0.09 = 5.4, capped at one episode.
	st, replicas := minute(ok, 23)
	check("after 61 minutes", st, 5, 0, 0, 1.25)
	if replicas != 2 {
		t.Errorf("at the loose end with the metric at 1.15 x its target: %d replicas, want 2 (the target raised to 12.5)", replicas)
	}
	// Two violated minutes: one episode of 2, the mean (5 + 2) / 2 = 3.5; after the first
	// the cap is (5 + 1) / 2 = 3.
	minute(over, 20)
	st, _ = minute(over, 20)
	bank := 3 + 0.09 - 1
	check("after two violated minutes", st, bank, 1-bank/3.5, math.Round((1-bank/3.5)*5400), 1+0.25*bank/3.5)
	for range 3 {
		st, replicas = minute(over, 23)
	}
	check("after five violated minutes: the bank is spent", st, bank+3*(0.09-1), 1, 5400, 1)
	if replicas != 3 {
		t.Errorf("tight again with the metric at 1.15 x its target: %d replicas, want 3", replicas)
	}
	if st.EpisodeMinutes != 5 {
		t.Errorf("episode %v minutes, want (5 + 5) / 2 = 5", st.EpisodeMinutes)
	}
}

// The status's JSON carries a +Inf latency as "+Inf" (JSON has no infinity), and reads back.
func TestObjectiveStatusJSON(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name string
		st   ObjectiveStatus
		want string
	}{
		{
			name: "a latency",
			st: ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, Latency: f(1.5), Quantile: 0.9, Minutes: 3, ViolatedMinutes: 1,
				Tightness: 0.5, BankMinutes: 2.5, EpisodeMinutes: 5, HoldSeconds: f(1800), ScaleDownWindowSeconds: new(int32(150)), TargetScale: 1.125},
			want: `{"sloSeconds":2,"budget":0.001,"quantile":0.9,"tightness":0.5,"bankMinutes":2.5,"episodeMinutes":5,"holdSeconds":1800,` +
				`"scaleDownWindowSeconds":150,"targetScale":1.125,"minutes":3,"violatedMinutes":1,"beyondReachMinutes":0,"latencySeconds":1.5}`,
		},
		{
			name: "+Inf, a latency beyond any bound",
			st:   ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, Latency: f(math.Inf(1)), Quantile: 0.9, Fixed: true},
			want: `{"sloSeconds":2,"budget":0.001,"quantile":0.9,"fixed":true,"tightness":0,"bankMinutes":0,"episodeMinutes":0,"targetScale":0,"minutes":0,"violatedMinutes":0,"beyondReachMinutes":0,"latencySeconds":"+Inf"}`,
		},
		{
			name: "missing: the error, no latency",
			st:   ObjectiveStatus{SLOSeconds: 2, Budget: 0.001, LatencyError: "empty result", Quantile: 0.9},
			want: `{"sloSeconds":2,"budget":0.001,"latencyError":"empty result","quantile":0.9,"tightness":0,"bankMinutes":0,"episodeMinutes":0,"targetScale":0,"minutes":0,"violatedMinutes":0,"beyondReachMinutes":0}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(&tc.st)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("Marshal() = %s\nwant %s", b, tc.want)
			}
			var back ObjectiveStatus
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.st, back); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
	var st ObjectiveStatus
	if err := json.Unmarshal([]byte(`{"latencySeconds":"fast"}`), &st); err == nil {
		t.Error(`Unmarshal of "fast" succeeded, want an error`)
	}
}

// forecast.hold keeps the largest plan of the last hold: at every tick the planned value is
// the largest Hi forecast within the last 5 minutes, so after a peak the plan stays up for
// the hold.
func TestForecastHoldKeepsThePeakPlan(t *testing.T) {
	const hold = 5 * time.Minute
	item := strings.Replace(predictive, "history: 2h", "history: 2h\n      gate: {window: 2m}\n      hold: 5m", 1)
	e := newEngine(t, parse(t, item), Options{})
	type plan struct {
		at time.Time
		hi float64
	}
	var his []plan
	heldAbove := 0
	for i := range 400 {
		now := t0.Add(time.Duration(i) * 15 * time.Second)
		in := input(10, 50, true)
		// a wave with a period of 20 minutes: each peak is held past its fall
		in.Load = &policy.Sample{Value: 100 + 60*math.Sin(2*math.Pi*float64(i)/80) + float64(i%5)}
		f := e.Step(in, now).Decision.Forecast
		if f == nil {
			continue
		}
		his = append(his, plan{now, float64(f.Hi)})
		want := 0.0
		for _, p := range his {
			if p.at.After(now.Add(-hold)) {
				want = max(want, p.hi)
			}
		}
		if float64(f.Value) != want {
			t.Fatalf("tick %d: value %v, want %v, the largest hi of the last %s", i, f.Value, want, hold)
		}
		if f.Value > f.Hi {
			heldAbove++
		}
	}
	if len(his) < 200 || heldAbove < 50 {
		t.Errorf("%d forecasts, %d held above their hi: want the hold to act on a falling load", len(his), heldAbove)
	}
}

// With an objective, a held plan counts less as it ages: at every tick the planned value is
// the largest of fresh + (hi − fresh) × (1 − (age/hold)^k) over the Hi of the last hold,
// fresh being this tick's Hi and k ObjectiveHoldDecay (or Pacing.HoldDecay); so the plan
// falls gradually after a peak, below the plain hold's and never below the fresh Hi.
// HoldDecay +Inf is the plain hold.
func TestObjectiveHoldDecays(t *testing.T) {
	const hold = 5 * time.Minute
	item := strings.Replace(withObjective, "history: 2h", "history: 2h\n      gate: {window: 2m}\n      hold: 5m", 1)
	for _, tc := range []struct {
		name  string
		decay float64 // Pacing.HoldDecay
		k     float64 // the exponent it means
	}{
		{"the default", 0, 2},
		{"linear", 1, 1},
		{"plain", math.Inf(1), math.Inf(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, parse(t, item), Options{Pacing: Pacing{HoldDecay: tc.decay}})
			type plan struct {
				at time.Time
				hi float64
			}
			var his []plan
			below := 0
			for i := range 400 {
				now := t0.Add(time.Duration(i) * 15 * time.Second)
				in := input(10, 50, true)
				in.Load = &policy.Sample{Value: 100 + 60*math.Sin(2*math.Pi*float64(i)/80) + float64(i%5)}
				r := e.Step(in, now)
				if r.Objective == nil || r.Objective.Tightness != 1 || *r.Objective.HoldSeconds != hold.Seconds() {
					t.Fatalf("tick %d: objective %+v, want tightness 1 and the written hold (no latency, no bank)", i, r.Objective)
				}
				f := r.Decision.Forecast
				if f == nil {
					continue
				}
				his = append(his, plan{now, float64(f.Hi)})
				fresh := float64(f.Hi)
				want, full := fresh, fresh
				for _, p := range his {
					if age := now.Sub(p.at); age < hold {
						want = max(want, fresh+(p.hi-fresh)*(1-math.Pow(float64(age)/float64(hold), tc.k)))
						full = max(full, p.hi)
					}
				}
				if math.Abs(float64(f.Value)-want) > 1e-9*want {
					t.Fatalf("tick %d: value %v, want %v", i, f.Value, want)
				}
				if want < full-1e-9 {
					below++
				}
			}
			if tc.decay == 0 {
				// Reloaded without its objective, the same forecast holds in full again.
				p := parse(t, strings.Replace(item, "    objective: {query: delay, slo: 2s, budget: 1%}\n", "", 1))
				if p.Objective != nil {
					t.Fatal("the reloaded policy still has an objective")
				}
				e.SetPolicy(p)
				if e.fc == nil || e.fc.decay != 0 || e.fc.hold != hold {
					t.Fatalf("reloaded without an objective: forecaster %+v, want the plain hold of %s", e.fc, hold)
				}
			}
			switch {
			case len(his) < 200:
				t.Errorf("%d forecasts, want the forecast in use", len(his))
			case math.IsInf(tc.k, 1) && below != 0:
				t.Errorf("%d plans below the plain hold's, want none", below)
			case !math.IsInf(tc.k, 1) && below < 50:
				t.Errorf("%d plans below the plain hold's: want the decay to act on a falling load", below)
			}
		})
	}
}

// TestObjectiveColdStartMinutes: for a scaleToZero policy, the violated minutes from a
// sync with no Ready pod (the wait at a return from zero) until a minute within the SLO
// (the drain) are counted, apart too, and leave the quantile where it was; once a minute
// was within the SLO, a violated minute moves it again.
func TestObjectiveColdStartMinutes(t *testing.T) {
	p := parse(t, withObjective)
	q := policy.MustQuantity("15")
	p.MinReplicas = new(int32)
	p.ScaleToZero = &policy.ScaleToZero{Activation: policy.Activation{Query: "rate", PerReplica: &q}}
	e := newEngine(t, p, Options{DefaultStartup: 180 * time.Second})
	over, ok := policy.Sample{Value: 3}, policy.Sample{Value: 1}
	// step runs minute m's four ticks and returns the status at its first, which shows
	// minute m-1 closed.
	step := func(m int, ready bool, latency policy.Sample) *ObjectiveStatus {
		var first *ObjectiveStatus
		for tick := 4 * m; tick < 4*m+4; tick++ {
			in := input(2, 15, true)
			in.Pods = []policy.Pod{{Name: "a", Ready: ready}, {Name: "b", Ready: ready}}
			in.Load, in.Latency = &policy.Sample{Value: 15}, &latency
			in.Activation = &policy.Sample{Value: 15}
			st := e.Step(in, t0.Add(time.Duration(tick)*15*time.Second)).Objective
			if tick == 4*m {
				first = st.Copy()
			}
		}
		return first
	}
	// Budget 1 %: aim (1 - 0.1) x 0.01 = 0.009 a minute; step 0.01.
	minutes := []struct {
		name           string
		ready          bool
		latency        policy.Sample
		violated, cold int64
		quantile       float64 // once the minute is closed
	}{
		{"no pod Ready, over the SLO: cold", false, over, 1, 1, 0.9},
		{"Ready, still over (the drain): cold", true, over, 2, 2, 0.9},
		{"Ready, still over: cold", true, over, 3, 3, 0.9},
		// Ticks 16..19, more than a start-up (180 s) after the last tick without a Ready
		// pod (3): the drain is still the cold start's.
		{"Ready, still over, past a start-up: cold", true, over, 4, 4, 0.9},
		{"within the SLO: the cold start is over, down by 0.01 x 0.009", true, ok, 4, 4, 0.9 - 0.00009},
		{"over again, warm: up by 0.01 x (1 - 0.009)", true, over, 5, 4, 0.9 - 0.00009 + 0.00991},
	}
	for m := range len(minutes) + 1 {
		ready, latency := true, ok // the minute after the last: only closes it
		if m < len(minutes) {
			ready, latency = minutes[m].ready, minutes[m].latency
		}
		st := step(m, ready, latency)
		if m == 0 {
			continue
		}
		c := minutes[m-1]
		if st.ViolatedMinutes != c.violated || st.ColdStartMinutes != c.cold || !testutil.Near(st.Quantile, c.quantile, 1e-12) {
			t.Fatalf("%s: violated %d, cold %d, quantile %v; want %d, %d, %v", c.name, st.ViolatedMinutes, st.ColdStartMinutes, st.Quantile, c.violated, c.cold, c.quantile)
		}
	}
}

func TestWaited(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		name      string
		latencyOK bool
		waiting   *float64
		want      bool
	}{
		{name: "no latency, requests wait: over the SLO", waiting: f(1), want: true},
		{name: "no latency, a fraction waits (an average): over the SLO", waiting: f(0.25), want: true},
		{name: "no latency, nothing waits: missing", waiting: f(0)},
		{name: "no latency, waiting unknown: missing"},
		{name: "a latency, requests wait: the latency decides", latencyOK: true, waiting: f(40)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Waited(tc.latencyOK, tc.waiting); got != tc.want {
				t.Errorf("Waited(%v, %v) = %v, want %v", tc.latencyOK, deref(tc.waiting), got, tc.want)
			}
		})
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestObjectiveWaitingWithoutLatency: a minute in which requests wait and no latency
// sample exists is violated, not missing; it moves the quantile as any violated minute,
// and the status says why.
func TestObjectiveWaitingWithoutLatency(t *testing.T) {
	nan := policy.Sample{Value: math.NaN()}
	empty := policy.Sample{Err: errors.New("empty result")}
	waits := &policy.Sample{PerPod: map[string]float64{"a": 3, "b": 0}}
	none := &policy.Sample{Value: 0}
	gone := &policy.Sample{Err: errors.New("empty result")}
	// Budget 1 %: aim 0.009; up by 0.01 x (1 - 0.009) = 0.00991 after a violated minute,
	// down by 0.01 x 0.009 = 0.00009 after one within.
	tests := []struct {
		name            string
		latency         policy.Sample
		waiting         *policy.Sample
		waited          bool // this tick's WaitedWithoutLatency
		minutes, over   int64
		waitedMinutes   int64
		quantile        float64
		waitingRequests any
	}{
		{name: "NaN latency while 3 wait: violated", latency: nan, waiting: waits, waited: true,
			minutes: 1, over: 1, waitedMinutes: 1, quantile: 0.9 + 0.00991, waitingRequests: 3.0},
		{name: "an empty latency while requests wait: violated", latency: empty, waiting: waits, waited: true,
			minutes: 1, over: 1, waitedMinutes: 1, quantile: 0.9 + 0.00991, waitingRequests: 3.0},
		{name: "NaN latency, nothing waits: missing", latency: nan, waiting: none,
			quantile: 0.9, waitingRequests: 0.0},
		{name: "NaN latency, waiting missing too: missing", latency: nan, waiting: gone, quantile: 0.9},
		{name: "NaN latency, no waiting query: missing", latency: nan, quantile: 0.9},
		{name: "a latency within the SLO while requests wait: within", latency: policy.Sample{Value: 1}, waiting: waits,
			minutes: 1, quantile: 0.9 - 0.00009, waitingRequests: 3.0},
		{name: "a latency over the SLO: violated by the latency, not by the wait", latency: policy.Sample{Value: 3}, waiting: waits,
			minutes: 1, over: 1, quantile: 0.9 + 0.00991, waitingRequests: 3.0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, parse(t, withObjective), Options{})
			in := input(2, 15, true)
			in.Load, in.Latency, in.Waiting = &policy.Sample{Value: 15}, &tc.latency, tc.waiting
			st := e.Step(in, t0).Objective
			if st.WaitedWithoutLatency != tc.waited || deref(st.Waiting) != tc.waitingRequests {
				t.Errorf("tick: waitedWithoutLatency %v, waiting %v; want %v, %v", st.WaitedWithoutLatency, deref(st.Waiting), tc.waited, tc.waitingRequests)
			}
			if tc.waiting == gone && st.WaitingError != "empty result" {
				t.Errorf("waitingError %q, want the sample's error", st.WaitingError)
			}
			// The next minute's first tick closes the minute.
			in.Latency, in.Waiting = &policy.Sample{Value: 1}, nil
			st = e.Step(in, t0.Add(time.Minute)).Objective
			if st.Minutes != tc.minutes || st.ViolatedMinutes != tc.over || st.WaitedMinutes != tc.waitedMinutes || !testutil.Near(st.Quantile, tc.quantile, 1e-12) {
				t.Errorf("closed: minutes %d, violated %d, waited %d, quantile %v; want %d, %d, %d, %v",
					st.Minutes, st.ViolatedMinutes, st.WaitedMinutes, st.Quantile, tc.minutes, tc.over, tc.waitedMinutes, tc.quantile)
			}
		})
	}
}

// TestObjectiveMissingSince: the run of ticks without an observation starts at its first
// tick and ends at a latency, at requests waiting, or at a load of 0 (idle: nothing
// arrives, so nothing is measured); a tick that took no sample neither starts nor ends it.
func TestObjectiveMissingSince(t *testing.T) {
	e := newEngine(t, parse(t, withObjective), Options{})
	nan, ok := &policy.Sample{Value: math.NaN()}, &policy.Sample{Value: 1}
	load, idle := &policy.Sample{Value: 15}, &policy.Sample{Value: 0}
	ticks := []struct {
		name          string
		latency, load *policy.Sample
		waiting       *policy.Sample
		want          time.Time
	}{
		{name: "a latency: observed", latency: ok, load: load},
		{name: "NaN: missing from this tick", latency: nan, load: load, want: t0.Add(15 * time.Second)},
		{name: "still NaN: since the first", latency: nan, load: load, want: t0.Add(15 * time.Second)},
		{name: "no sample taken: unchanged", load: load, want: t0.Add(15 * time.Second)},
		{name: "NaN while nothing arrives: idle, not missing", latency: nan, load: idle},
		{name: "NaN again under load: missing anew", latency: nan, load: load, want: t0.Add(75 * time.Second)},
		{name: "the load is missing too: still missing", latency: nan, load: &policy.Sample{Err: errors.New("stale")}, want: t0.Add(75 * time.Second)},
		{name: "NaN while requests wait: observed (violated)", latency: nan, load: load, waiting: &policy.Sample{Value: 2}},
		{name: "NaN, nothing waits: missing anew", latency: nan, load: load, waiting: &policy.Sample{Value: 0}, want: t0.Add(120 * time.Second)},
		{name: "a latency again: observed", latency: ok, load: load},
	}
	for i, tc := range ticks {
		in := input(2, 15, true)
		in.Load, in.Latency, in.Waiting = tc.load, tc.latency, tc.waiting
		st := e.Step(in, t0.Add(time.Duration(i)*15*time.Second)).Objective
		if !st.MissingSince.Equal(tc.want) {
			t.Errorf("tick %d, %s: missingSince %v, want %v", i, tc.name, st.MissingSince, tc.want)
		}
	}
}

// TestForecastLoadMissingSince: the run of missing load samples starts at its first and
// ends at a usable one; a tick that did not sample the load leaves it as it was.
func TestForecastLoadMissingSince(t *testing.T) {
	e := newEngine(t, parse(t, predictive), Options{})
	ticks := []struct {
		name string
		load *policy.Sample
		want time.Time
	}{
		{name: "usable", load: &policy.Sample{Value: 15}},
		{name: "an error: missing from this tick", load: &policy.Sample{Err: errors.New("empty result")}, want: t0.Add(15 * time.Second)},
		{name: "not sampled: unchanged", want: t0.Add(15 * time.Second)},
		{name: "+Inf: still missing since the first", load: &policy.Sample{Value: math.Inf(1)}, want: t0.Add(15 * time.Second)},
		{name: "0 is a load: usable", load: &policy.Sample{Value: 0}},
		{name: "NaN: missing anew", load: &policy.Sample{Value: math.NaN()}, want: t0.Add(75 * time.Second)},
	}
	for i, tc := range ticks {
		in := input(2, 15, true)
		in.Load = tc.load
		st := e.Step(in, t0.Add(time.Duration(i)*15*time.Second)).Forecast
		if !st.LoadMissingSince.Equal(tc.want) {
			t.Errorf("tick %d, %s: loadMissingSince %v, want %v", i, tc.name, st.LoadMissingSince, tc.want)
		}
	}
}
