package forecast

import (
	"fmt"
	"testing"
	"time"
)

// servegen is the 14-day per-minute trace (20,160 samples), read once.
func servegen(b *testing.B) []Sample {
	b.Helper()
	return readTrace(b, tracesDir+"/servegen-m-small/requests_per_minute.csv")
}

// benchOptions are the example policy's: a 1-minute grid, horizon: auto at a 180 s start-up,
// a daily season, and the planning quantile 0.9 (auto compares pinball losses at it).
var benchOptions = Options{Step: time.Minute, Horizon: 195 * time.Second, Season: 24 * time.Hour, Quantile: 0.9}

// BenchmarkUpdate is one sample into a forecaster fitted on 1 day of the trace, then
// fed the next days in a cycle (times keep advancing by a minute).
func BenchmarkUpdate(b *testing.B) {
	xs := servegen(b)
	for _, m := range allMethods {
		b.Run(string(m), func(b *testing.B) {
			o := benchOptions
			o.Method = m
			f, err := Fit(xs[:1440], o)
			if err != nil {
				b.Fatal(err)
			}
			updateLoop(b, f.Update, xs)
		})
	}
}

// BenchmarkUpdateLinearWindow is Linear's update at each window Fit may choose: the
// regression behind the residual bookkeeping is O(window).
func BenchmarkUpdateLinearWindow(b *testing.B) {
	xs := servegen(b)
	for _, w := range linearWindows {
		b.Run(fmt.Sprint(w), func(b *testing.B) {
			f := newLinear(time.Minute, 4, 0, w)
			for _, x := range xs[:1440] {
				f.Update(x)
			}
			updateLoop(b, f.Update, xs)
		})
	}
}

// updateLoop times update on the samples after the first day of xs, in a cycle, with
// times that keep advancing by a minute.
func updateLoop(b *testing.B, update func(Sample), xs []Sample) {
	at := xs[1439].At
	i := 1440
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(time.Minute)
		update(Sample{At: at, Value: xs[i].Value})
		if i++; i == len(xs) {
			i = 1440
		}
	}
}

// BenchmarkPredict is the per-tick forecast at the default horizon with its interval
// (read from the residuals kept sorted).
func BenchmarkPredict(b *testing.B) {
	xs := servegen(b)
	for _, m := range []Method{MethodHolt, MethodAuto} {
		b.Run(string(m), func(b *testing.B) {
			o := benchOptions
			o.Method = m
			f, err := Fit(xs[:3*1440], o)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				f.Predict(195*time.Second, 0.9)
			}
		})
	}
}

// BenchmarkFit fits on 1 hour, 1 day and 14 days of per-minute samples (the whole
// trace), including the warm-up replay.
func BenchmarkFit(b *testing.B) {
	xs := servegen(b)
	for _, n := range []int{60, 1440, 20160} {
		for _, m := range allMethods {
			b.Run(fmt.Sprintf("%s/%d", m, n), func(b *testing.B) {
				o := benchOptions
				o.Method = m
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Fit(xs[:n], o); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkGate is one observation into a gate with a 1-hour window at 15 s ticks.
func BenchmarkGate(b *testing.B) {
	g := NewGate(0.3, time.Hour, 0.1)
	at := t0
	b.ReportAllocs()
	for b.Loop() {
		at = at.Add(15 * time.Second)
		g.Observe(Prediction{Point: 100, Lo: 90, Hi: 110}, 105, at)
	}
}
