package forecast

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// FuzzForecast drives every method and a Gate through arbitrary sample streams: gaps
// (0 to 255 steps, sometimes days), repeated and late times, NaN, ±Inf, negative, zero and
// huge values. No panic; every prediction finite, >= 0, Lo <= Point <= Hi; every gate
// error and every loss auto compares finite.
func FuzzForecast(f *testing.F) {
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0x59, 0x40}, uint8(3))
	f.Add([]byte("\x01\x00\x00\x00\x00\x00\x00\xf8\x7f\x00\x00\x00\x00\x00\x00\x00\x00"), uint8(0))
	f.Add(make([]byte, 9*40), uint8(7))
	f.Fuzz(func(t *testing.T, data []byte, split uint8) {
		// each sample: 1 byte of step gap (255: a 3-day gap), 8 bytes of float64.
		var xs []Sample
		at := t0
		// at most 300 samples: Fit is O(slots × evaluations), and a large input with long
		// gaps is a slow input, not a new behaviour.
		for len(data) >= 9 && len(xs) < 300 {
			gap := time.Duration(data[0]) * time.Minute
			if data[0] == 255 {
				gap = 72 * time.Hour
			}
			if data[0] == 254 {
				gap = -time.Hour
			}
			at = at.Add(gap)
			xs = append(xs, Sample{At: at, Value: math.Float64frombits(binary.LittleEndian.Uint64(data[1:9]))})
			data = data[9:]
		}
		n := min(int(split), len(xs))
		g := NewGate(0.2, 10*time.Minute, 0.1)
		for _, m := range allMethods {
			o := Options{Method: m, Step: time.Minute, Horizon: 195 * time.Second, Season: 3 * time.Minute, Quantile: 0.9}
			fc, err := Fit(xs[:n], o)
			if err != nil {
				t.Fatalf("Fit(%s): %v", m, err)
			}
			for _, x := range xs[n:] {
				fc.Update(x)
				for _, q := range []float64{0.9, 0.1, math.NaN(), 2} {
					p, ok := fc.Predict(195*time.Second, q)
					if !ok {
						continue
					}
					checkPrediction(t, string(m), p)
					if a, ok := fc.(*Auto); ok {
						for _, c := range a.cands {
							if l, ok := errorOf(c); ok && (!finite(l) || l < 0) {
								t.Fatalf("auto: %s's pinball loss %v", c.Name(), l)
							}
						}
					}
					g.Observe(p, x.Value, x.At)
					mape, under, _ := g.Error()
					if !finite(mape) || !finite(under) || mape < 0 || under < 0 || under > 1 {
						t.Fatalf("gate error %v, %v", mape, under)
					}
				}
			}
		}
	})
}
