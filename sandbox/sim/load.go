package sim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// Load is a workload: the requests that arrive in each model minute.
type Load interface {
	// RequestsPerMinute returns the requests arriving in model minute m >= 0.
	RequestsPerMinute(m int) float64
}

// Peak returns the largest RequestsPerMinute of l over minutes [0, n).
func Peak(l Load, n int) float64 {
	peak := 0.0
	for m := range n {
		peak = max(peak, l.RequestsPerMinute(m))
	}
	return peak
}

// Trace is a recorded per-minute load. Past its end it repeats from the start.
type Trace []float64

// RequestsPerMinute implements Load.
func (t Trace) RequestsPerMinute(m int) float64 {
	if len(t) == 0 {
		return 0
	}
	return t[m%len(t)]
}

// ReadCSV reads a per-minute trace with the header "minute,requests". Minutes
// must increase; missing minutes count as zero requests.
func ReadCSV(r io.Reader) (Trace, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("read trace header: %w", err)
		}
		return nil, errors.New("read trace: empty input")
	}
	if h := strings.TrimSpace(sc.Text()); h != "minute,requests" {
		return nil, fmt.Errorf("read trace header: want %q, got %q", "minute,requests", h)
	}
	var t Trace
	line := 1
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		minStr, reqStr, ok := strings.Cut(text, ",")
		if !ok {
			return nil, fmt.Errorf("read trace line %d: want minute,requests, got %q", line, text)
		}
		m, err := strconv.Atoi(minStr)
		if err != nil || m < len(t) {
			return nil, fmt.Errorf("read trace line %d: minute %q is not an integer after %d", line, minStr, len(t)-1)
		}
		req, err := strconv.ParseFloat(reqStr, 64)
		if err != nil || req < 0 || math.IsNaN(req) || math.IsInf(req, 0) {
			return nil, fmt.Errorf("read trace line %d: requests %q is not a non-negative number", line, reqStr)
		}
		for len(t) < m {
			t = append(t, 0)
		}
		t = append(t, req)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read trace line %d: %w", line+1, err)
	}
	if len(t) == 0 {
		return nil, errors.New("read trace: no minutes")
	}
	return t, nil
}

// Surge multiplies the load by Factor for Minutes minutes from minute At.
type Surge struct {
	At, Minutes int
	Factor      float64
}

// Generator is the built-in synthetic workload: a daily cycle around a mean, a
// linear trend, per-minute noise, random bursts and scheduled surges. It is
// deterministic: the same fields give the same load, minute by minute, in any
// order of calls.
type Generator struct {
	Mean           float64 // mean requests per minute at minute 0, before the cycle
	DailyAmplitude float64 // relative amplitude of the daily cycle, 0..1
	DayMinutes     int     // length of the cycle in minutes; 0 means 1440
	StartMinute    int     // where minute 0 falls in the cycle (0 is the trough)
	TrendPerDay    float64 // relative growth of the mean per cycle, e.g. 0.05
	Noise          float64 // relative standard deviation of per-minute noise
	BurstsPerDay   float64 // expected random bursts per cycle
	BurstMinutes   int     // length of a random burst
	BurstFactor    float64 // load multiplier during a random burst
	Surges         []Surge // scheduled surges
	Seed           uint64
}

// RequestsPerMinute implements Load.
func (g Generator) RequestsPerMinute(m int) float64 {
	day := g.DayMinutes
	if day <= 0 {
		day = 1440
	}
	phase := 2 * math.Pi * float64(m+g.StartMinute) / float64(day)
	v := g.Mean * (1 + g.TrendPerDay*float64(m)/float64(day))
	v *= 1 - g.DailyAmplitude*math.Cos(phase)
	if g.Noise > 0 {
		v *= 1 + g.Noise*g.normal(m)
	}
	if g.BurstsPerDay > 0 && g.BurstMinutes > 0 {
		p := g.BurstsPerDay / float64(day)
		for s := max(0, m-g.BurstMinutes+1); s <= m; s++ {
			if g.uniform(s, 1) < p {
				v *= g.BurstFactor
				break
			}
		}
	}
	for _, s := range g.Surges {
		if m >= s.At && m < s.At+s.Minutes {
			v *= s.Factor
		}
	}
	return max(0, v)
}

// uniform returns a number in [0, 1) determined by the seed, the minute and a stream.
func (g Generator) uniform(m int, stream uint64) float64 {
	h := fnv.New64a()
	var b [24]byte
	binary.LittleEndian.PutUint64(b[0:], g.Seed)
	binary.LittleEndian.PutUint64(b[8:], uint64(m))
	binary.LittleEndian.PutUint64(b[16:], stream)
	h.Write(b[:])
	return float64(h.Sum64()>>11) / (1 << 53)
}

// normal returns a standard normal number for minute m (Box-Muller).
func (g Generator) normal(m int) float64 {
	u1 := max(g.uniform(m, 2), 1e-12)
	u2 := g.uniform(m, 3)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// ReadCSVFile reads a per-minute trace from the file at path (see ReadCSV).
func ReadCSVFile(path string) (Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open trace %s: %w", path, err)
	}
	defer f.Close()
	t, err := ReadCSV(f)
	if err != nil {
		return nil, fmt.Errorf("read trace %s: %w", path, err)
	}
	return t, nil
}
