package backtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Trace is a load trace: Trace[m] requests arrived in minute m, spread evenly over the minute.
type Trace []float64

// Peak returns the largest per-minute count.
func (tr Trace) Peak() float64 {
	var peak float64
	for _, v := range tr {
		peak = max(peak, v)
	}
	return peak
}

// MaxRequests bounds a minute's requests, in a trace and in a Prometheus history (rate x
// 60): the forecaster's bound on a load, which keeps the model's queue, and every number it
// reports, finite.
const MaxRequests = 1e15

// maxTraceLine bounds the scanner's buffer, a row and its line end: a row is a few fields.
const maxTraceLine = 1 << 20

// ReadTrace reads a per-minute trace in CSV: a header naming the columns minute and requests
// once each (in any order, other columns ignored; a UTF-8 byte-order mark before it is
// skipped), then one row per minute. Minutes must be consecutive
// integers (a minute without requests is written as 0); requests must be finite, not
// negative and at most MaxRequests. Every error names its line. An empty trace is an error.
func ReadTrace(r io.Reader) (Trace, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxTraceLine)
	line := 0
	minuteCol, requestsCol, cols := -1, -1, 0
	var tr Trace
	var prev int64 // the last row's minute
	for sc.Scan() {
		line++
		raw := sc.Text()
		if line == 1 {
			raw = strings.TrimPrefix(raw, "\ufeff") // a UTF-8 byte-order mark, as spreadsheets write
		}
		text := strings.TrimSpace(raw)
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		if cols == 0 {
			for i, f := range fields {
				col := &minuteCol
				switch strings.TrimSpace(f) {
				case "minute":
				case "requests":
					col = &requestsCol
				default:
					continue
				}
				if *col >= 0 {
					return nil, fmt.Errorf("line %d: header %q has column %s twice (fields %d and %d)", line, text, strings.TrimSpace(f), *col+1, i+1)
				}
				*col = i
			}
			var missing []string
			if minuteCol < 0 {
				missing = append(missing, "minute")
			}
			if requestsCol < 0 {
				missing = append(missing, "requests")
			}
			if len(missing) > 0 {
				return nil, fmt.Errorf("line %d: header %q has no %s column: want minute,requests", line, text, strings.Join(missing, " or "))
			}
			cols = len(fields)
			continue
		}
		if len(fields) != cols {
			return nil, fmt.Errorf("line %d: want %d fields as in the header, got %d", line, cols, len(fields))
		}
		ms := strings.TrimSpace(fields[minuteCol])
		m, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: minute %q: not an integer", line, ms)
		}
		rs := strings.TrimSpace(fields[requestsCol])
		v, err := strconv.ParseFloat(rs, 64)
		switch {
		case err != nil:
			return nil, fmt.Errorf("line %d: requests %q: not a number", line, rs)
		case math.IsNaN(v) || math.IsInf(v, 0):
			return nil, fmt.Errorf("line %d: requests %q: not a finite number", line, rs)
		case v < 0:
			return nil, fmt.Errorf("line %d: requests is negative: %s", line, rs)
		case v > MaxRequests:
			return nil, fmt.Errorf("line %d: requests %s: at most %g a minute", line, rs, MaxRequests)
		}
		// prev+1 would wrap around after the largest minute: nothing follows it.
		if len(tr) > 0 && (prev == math.MaxInt64 || m != prev+1) {
			return nil, fmt.Errorf("line %d: minute %d follows minute %d: minutes must be consecutive (write 0 for a minute without requests)", line, m, prev)
		}
		prev = m
		tr = append(tr, v)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, fmt.Errorf("line %d: longer than the %d MiB limit", line+1, maxTraceLine>>20)
	} else if err != nil {
		return nil, fmt.Errorf("read trace after line %d: %w", line, err)
	}
	switch {
	case cols == 0:
		return nil, errors.New("line 1: empty trace: want a minute,requests header and one row per minute")
	case len(tr) == 0:
		return nil, fmt.Errorf("line %d: trace has a header but no minutes", line)
	}
	return tr, nil
}
