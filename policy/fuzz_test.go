package policy

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fuzzPolicy builds a valid policy from a few bytes: bounds, windows and rate policies.
func fuzzPolicy(minR, span, upWin, downWin, upPods, downPct uint8, behavior bool) *Policy {
	p := &Policy{Name: "fuzz", MinReplicas: i32(int32(minR % 5)), Metrics: []Metric{avg("queue", "5"), avg("gpu", "70"), val("latency", "4")}}
	p.MaxReplicas = max(1, *p.MinReplicas) + int32(span%60)
	if behavior {
		p.Behavior = &Behavior{
			ScaleUp: &Rules{StabilizationWindowSeconds: i32(int32(upWin) % 120),
				Policies: []RatePolicy{{Type: PodsPolicy, Value: 1 + int32(upPods%8), PeriodSeconds: 30}}},
			ScaleDown: &Rules{StabilizationWindowSeconds: i32(int32(downWin) % 120),
				Policies: []RatePolicy{{Type: PercentPolicy, Value: 1 + int32(downPct%100), PeriodSeconds: 45}}},
		}
	}
	return p
}

// fuzzSample turns three bytes into a sample: missing, NaN, Inf, negative or a value.
func fuzzValue(b byte, scale float64) (float64, error) {
	switch b % 16 {
	case 0:
		return 0, fmt.Errorf("timeout")
	case 1:
		return math.NaN(), nil
	case 2:
		return math.Inf(1), nil
	case 3:
		return -1, nil
	}
	return float64(b) * scale, nil
}

func fuzzObservation(cur int32, step []byte) Observation {
	in := Observation{SpecReplicas: cur, StatusReplicas: cur}
	q, gpu := map[string]float64{}, map[string]float64{}
	var qErr, gErr error
	for i := int32(0); i < cur && i < 64; i++ {
		name := fmt.Sprintf("p%d", i)
		pod := Pod{Name: name, Phase: PodRunning, Ready: true}
		switch (step[0] >> (i % 8)) & 3 {
		case 1:
			pod.Phase, pod.Ready = PodPending, false
		case 2:
			pod.Ready = false
		}
		in.Pods = append(in.Pods, pod)
		if v, err := fuzzValue(step[1]+byte(i), 0.25); err != nil {
			qErr = err
		} else if pod.Ready {
			q[name] = v
		}
		if v, err := fuzzValue(step[2]+byte(3*i), 2); err != nil {
			gErr = err
		} else if pod.Ready {
			gpu[name] = v
		}
	}
	lat, lErr := fuzzValue(step[3], 0.1)
	in.Metrics = []Sample{{PerPod: q, Err: qErr}, {PerPod: gpu, Err: gErr}, {Value: lat, Err: lErr}}
	// Half the syncs carry a forecast: some gated, some with perReplica unknown.
	if step[3]&128 != 0 {
		v := float64(step[1]^step[2]) * 0.5
		in.Forecast = &ForecastInput{Value: v, Point: v, Hi: v, PerReplica: float64(1 + step[3]%8),
			PerReplicaKnown: step[3]&32 == 0, Gated: step[3]&64 != 0}
	}
	return in
}

// FuzzDecide drives a policy through a sequence of syncs and checks the engine's invariants:
// the result stays within [min, max]; it never goes below the current replicas while a
// metric is missing; scale-ups never outrun the rate policies; and it is deterministic.
func FuzzDecide(f *testing.F) {
	f.Add(uint8(1), uint8(10), uint8(0), uint8(60), uint8(3), uint8(50), true, uint8(3), []byte{0, 40, 80, 50, 1, 200, 9, 30})
	f.Add(uint8(0), uint8(30), uint8(30), uint8(0), uint8(0), uint8(99), false, uint8(0), []byte{255, 0, 0, 0, 7, 7, 7, 7, 8, 8, 8, 8})
	f.Add(uint8(2), uint8(5), uint8(5), uint8(5), uint8(7), uint8(1), true, uint8(40), []byte{3, 16, 16, 16})
	f.Fuzz(func(t *testing.T, minR, span, upWin, downWin, upPods, downPct uint8, behavior bool, start uint8, steps []byte) {
		p := fuzzPolicy(minR, span, upWin, downWin, upPods, downPct, behavior)
		cur := int32(start % 80)
		var hist, twin History
		type written struct {
			at     int
			change int32
		}
		var writes []written
		for i := 0; i+4 <= len(steps) && i < 400; i += 4 {
			now := at(i * 4) // 16 s apart
			in := fuzzObservation(cur, steps[i:i+4])
			d, next := Decide(p, in, hist, now)
			d2, _ := Decide(p, in, cloneHistory(twin), now)
			if diff := cmp.Diff(d, d2, cmpFloat); diff != "" {
				t.Fatalf("step %d: not deterministic:\n%s", i/4, diff)
			}
			got := d.DesiredReplicas
			minR := p.minReplicas()
			switch {
			case d.Reason == ReasonScalingDisabled:
				if cur != 0 || got != 0 {
					t.Fatalf("step %d: ScalingDisabled at %d -> %d", i/4, cur, got)
				}
			case got < minR || got > p.MaxReplicas:
				t.Fatalf("step %d: desired %d outside [%d, %d] (current %d, reason %s)", i/4, got, minR, p.MaxReplicas, cur, d.Reason)
			}
			if f := d.Forecast; f != nil {
				if (f.Gated || f.Reason == ReasonForecastLearning) && (f.Proposal != 0 || f.Won) {
					t.Fatalf("step %d: a forecast without a proposal proposed: %+v", i/4, f)
				}
				if f.Won && (d.Proposal != f.Proposal || d.Metric != ForecastMetric) {
					t.Fatalf("step %d: the forecast won with %d but the proposal is %d from %q", i/4, f.Proposal, d.Proposal, d.Metric)
				}
				if d.Reason != ReasonFailedGetMetric && d.Proposal != 0 && d.Proposal < f.Proposal {
					t.Fatalf("step %d: proposal %d below the forecast's %d", i/4, d.Proposal, f.Proposal)
				}
			}
			missing := false
			for _, m := range d.Metrics {
				missing = missing || m.Error != ""
			}
			if missing && got < cur && cur <= p.MaxReplicas {
				t.Fatalf("step %d: scaled down %d -> %d with a metric missing: %+v", i/4, cur, got, d.Metrics)
			}
			if p.Behavior != nil && got > cur && cur >= minR && cur <= p.MaxReplicas {
				// Pods policy, 30 s: replicas at the start of the period plus the policy value.
				var added, removed int32
				for _, w := range writes {
					if w.at > i*4-30 {
						if w.change > 0 {
							added += w.change
						} else {
							removed -= w.change
						}
					}
				}
				limit := max(cur, cur-added+removed+p.Behavior.ScaleUp.Policies[0].Value)
				if got > limit {
					t.Fatalf("step %d: scaled up %d -> %d, beyond the rate limit %d", i/4, cur, got, limit)
				}
			}
			hist, twin = next, cloneHistory(next)
			if got != cur {
				hist = hist.RecordScale(p, cur, got, now)
				twin = cloneHistory(hist)
				writes = append(writes, written{at: i * 4, change: got - cur})
				cur = got
			}
		}
	})
}

func cloneHistory(h History) History {
	h.Recommendations = append([]Recommendation(nil), h.Recommendations...)
	h.ScaleUpEvents = append([]ScaleEvent(nil), h.ScaleUpEvents...)
	h.ScaleDownEvents = append([]ScaleEvent(nil), h.ScaleDownEvents...)
	return h
}

// FuzzDecideScaleToZero drives a scaleToZero policy (or, when minR is not 0, the same policy
// without it and minReplicas minR) through syncs with missing, NaN, idle and active
// activation samples and forecasts that expect load or not, and checks: it never scales to
// zero while a metric, the forecast's load or the activation sample is missing; it never
// leaves zero while the activation sample is missing; it never goes below a non-zero
// minReplicas nor above maxReplicas; and it is deterministic.
func FuzzDecideScaleToZero(f *testing.F) {
	f.Add(uint8(0), uint8(10), uint8(2), true, []byte{0, 40, 80, 50, 4, 200, 9, 30, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(0), uint8(3), uint8(0), false, []byte{255, 0, 0, 4, 7, 7, 7, 7, 8, 8, 8, 8})
	f.Add(uint8(2), uint8(5), uint8(1), true, []byte{3, 16, 16, 16, 4, 4, 4, 4})
	// 4 Ready pods, every metric present, the activation idle, delay 0: to zero at once.
	f.Add(uint8(0), uint8(10), uint8(0), false, []byte{64, 4, 5, 4, 64, 4, 5, 4, 64, 4, 5, 4})
	f.Fuzz(func(t *testing.T, minR, span, delay uint8, wake bool, steps []byte) {
		p := fuzzPolicy(0, span, 0, 30, 3, 50, true)
		p.Forecast = &Forecast{Load: Load{Query: "load", PerReplica: AutoFloat{Value: 2, set: true}}}
		if minR%3 != 0 {
			p.MinReplicas = i32(int32(minR % 5))
			p.MaxReplicas = max(p.MaxReplicas, *p.MinReplicas)
		} else {
			p.ScaleToZero = &ScaleToZero{
				Activation: Activation{Query: "act", PerReplica: qty("3")},
				IdleDelay:  &Duration{time.Duration(delay%8) * 16 * time.Second},
				WakeAhead:  &WakeAhead{Enabled: &wake},
			}
		}
		if err := (File{Policies: []Policy{{Name: "f", Target: TargetRef{"v1", "D", "n", "f"}, MinReplicas: p.MinReplicas,
			MaxReplicas: p.MaxReplicas, Metrics: p.Metrics, Behavior: p.Behavior, Forecast: p.Forecast, ScaleToZero: p.ScaleToZero}}}).Validate(); err != nil {
			t.Fatalf("fuzz policy invalid: %v", err)
		}
		cur := int32(steps0(steps) % 6)
		if p.ScaleToZero == nil {
			cur = max(cur, p.minReplicas()) // the HPA's zero with minReplicas raised is decide_test's
		}
		var hist History
		hist.ScaledToZero = cur == 0
		for i := 0; i+4 <= len(steps) && i < 400; i += 4 {
			now := at(i * 4)
			in := fuzzObservation(cur, steps[i:i+4])
			act, actErr := fuzzValue(steps[i+3]>>2, 0.5)
			in.Activation = &Sample{Value: act, Err: actErr}
			if steps[i+2]&1 == 1 {
				in.Activation.Value = 0 // idle often enough to reach the delay
				in.Activation.Err = nil
			}
			if steps[i+1]&3 == 3 {
				in.LoadErr = errNoSample
			}
			in.WakeGated = steps[i]&64 != 0
			d, next := Decide(p, in, hist, now)
			d2, _ := Decide(p, in, cloneHistory(hist), now)
			if diff := cmp.Diff(d, d2, cmpFloat); diff != "" {
				t.Fatalf("step %d: not deterministic:\n%s", i/4, diff)
			}
			got := d.DesiredReplicas
			missing := in.LoadErr != nil
			for _, m := range d.Metrics {
				missing = missing || m.Error != ""
			}
			_, _, aErr := (&ScaleToZero{}).ActivationValue(*in.Activation)
			if p.ScaleToZero != nil && got == 0 && cur > 0 && (missing || aErr != nil) {
				t.Fatalf("step %d: scaled %d -> 0 with data missing (load %v, activation %v, metrics %+v)", i/4, cur, in.LoadErr, aErr, d.Metrics)
			}
			if p.ScaleToZero != nil && cur == 0 && got != 0 && aErr != nil {
				t.Fatalf("step %d: left zero for %d with the activation missing (%v)", i/4, got, aErr)
			}
			if m := p.minReplicas(); m > 0 && got < m && d.Reason != ReasonScalingDisabled {
				t.Fatalf("step %d: %d below minReplicas %d (reason %s)", i/4, got, m, d.Reason)
			}
			if got > p.MaxReplicas {
				t.Fatalf("step %d: %d above maxReplicas %d", i/4, got, p.MaxReplicas)
			}
			hist = next
			if got != cur {
				hist = hist.RecordScale(p, cur, got, now)
				cur = got
			}
		}
	})
}

func steps0(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// FuzzDuration checks ParseDuration on any text: it never panics; a duration it returns is
// non-negative, exact (the weeks and days it read, in big integers, plus Go's part) and
// written back by String into the same duration; Go's own durations read as Go reads them;
// and a refusal quotes the text.
func FuzzDuration(f *testing.F) {
	for _, s := range []string{"90s", "14d", "1w2d", "1d12h", "0s", "", " 2h ", "d", "2d1w", "-1h", "1.5d",
		"15250w1d23h47m16.854775807s", "15250w1d23h47m16.854775808s", "30500w4d", "15251w", "65535w",
		"106751d23h47m16.854775807s", "106752d", "18446744073709551616d", "2562048h", "9223372036854775808ns",
		"1w1d1h1m1s1ms1us1ns", "0.5h", ".5m", "1.h", "+3m", "5µs", "007d", "1w1w", "1dd"} {
		f.Add(s)
	}
	week, day := big.NewInt(int64(7*24*time.Hour)), big.NewInt(int64(24*time.Hour))
	longest := big.NewInt(math.MaxInt64)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDuration(s)
		if err != nil {
			if !strings.Contains(err.Error(), strconv.Quote(s)) {
				t.Fatalf("ParseDuration(%q): error %q does not quote the text", s, err)
			}
		} else {
			if got.Duration < 0 {
				t.Fatalf("ParseDuration(%q) = %v, negative", s, got.Duration)
			}
			back, err := ParseDuration(got.String())
			if err != nil || back != got {
				t.Fatalf("ParseDuration(%q) = %v, but ParseDuration(%q) = %v, %v", s, got.Duration, got.String(), back.Duration, err)
			}
		}
		rest := strings.TrimSpace(s)
		if !strings.ContainsAny(rest, "wd") {
			if want, goErr := time.ParseDuration(rest); goErr == nil && want >= 0 && (err != nil || got.Duration != want) {
				t.Fatalf("ParseDuration(%q) = %v, %v; time.ParseDuration = %v", s, got.Duration, err, want)
			}
			return
		}
		// The exact value of "<n>w<n>d<Go duration>", each part optional, in big integers.
		exact := new(big.Int)
		for _, u := range []struct {
			suffix string
			unit   *big.Int
		}{{"w", week}, {"d", day}} {
			i := strings.Index(rest, u.suffix)
			if i < 0 {
				continue
			}
			n, ok := new(big.Int).SetString(rest[:i], 10)
			if !ok || n.Sign() < 0 || strings.ContainsAny(rest[:i], "+-_") {
				return // malformed: the refusal was checked above
			}
			exact.Add(exact, n.Mul(n, u.unit))
			rest = rest[i+1:]
		}
		if rest != "" {
			d, goErr := time.ParseDuration(rest)
			if goErr != nil || d < 0 {
				return // malformed, or beyond Go's range: refused or not, checked above
			}
			exact.Add(exact, big.NewInt(int64(d)))
		}
		switch {
		case exact.Cmp(longest) > 0 && err == nil:
			t.Fatalf("ParseDuration(%q) = %v, want an error: the duration is %v ns, beyond 2^63-1", s, got.Duration, exact)
		case exact.Cmp(longest) <= 0 && (err != nil || big.NewInt(int64(got.Duration)).Cmp(exact) != 0):
			t.Fatalf("ParseDuration(%q) = %v, %v; want %v ns", s, got.Duration, err, exact)
		}
	})
}
