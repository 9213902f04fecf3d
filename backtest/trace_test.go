package backtest

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadTrace(t *testing.T) {
	tests := []struct {
		name, in string
		want     Trace
	}{
		{"two minutes", "minute,requests\n0,60\n1,120\n", Trace{60, 120}},
		{"columns in any order, extra ones ignored, CRLF and a blank line", "requests,host,minute\r\n5,a,0\r\n\r\n7.5,b,1\r\n", Trace{5, 7.5}},
		{"a trace may start at any minute", "minute,requests\n10,0\n11,3\n", Trace{0, 3}},
		{"zero minutes are kept", "minute,requests\n0,0\n1,0\n2,9\n", Trace{0, 0, 9}},
		{"the largest minutes", "minute,requests\n9223372036854775806,1\n9223372036854775807,2\n", Trace{1, 2}},
		{"the smallest minutes", "minute,requests\n-9223372036854775808,1\n-9223372036854775807,2\n", Trace{1, 2}},
		{"the most requests a minute", "minute,requests\n0,1e15\n1,1000000000000000\n", Trace{1e15, 1e15}},
		{"a byte-order mark", "\ufeffminute,requests\r\n0,5\r\n", Trace{5}},
		{"a byte-order mark before a blank line", "\ufeff\nminute,requests\n0,5\n", Trace{5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTrace(strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("trace (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadTraceErrors(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"empty", "", "line 1: empty trace: want a minute,requests header and one row per minute"},
		{"header only", "minute,requests\n", "line 1: trace has a header but no minutes"},
		{"no requests column", "minute,count\n0,1\n", `line 1: header "minute,count" has no requests column: want minute,requests`},
		{"no column at all", "a,b\n", `line 1: header "a,b" has no minute or requests column: want minute,requests`},
		{"missing field", "minute,requests\n0,1\n1\n", "line 3: want 2 fields as in the header, got 1"},
		{"negative count", "minute,requests\n0,1\n1,-2\n", "line 3: requests is negative: -2"},
		{"unparsable count", "minute,requests\n0,abc\n", `line 2: requests "abc": not a number`},
		{"NaN count", "minute,requests\n0,NaN\n", `line 2: requests "NaN": not a finite number`},
		{"a minute column twice", "minute,requests,minute\n0,1,5\n", `line 1: header "minute,requests,minute" has column minute twice (fields 1 and 3)`},
		{"a requests column twice", "requests, minute ,requests\n1,0,2\n", `line 1: header "requests, minute ,requests" has column requests twice (fields 1 and 3)`},
		// A mark is skipped before the header only: here it is part of a row's field.
		{"a byte-order mark in a row", "minute,requests\n\ufeff0,1\n", `line 2: minute "\ufeff0": not an integer`},
		// The issue's: a minute of 1.7e308 requests overflows the model's queue to +Inf.
		{"more than 1e15 requests", "minute,requests\n0,1\n1,1.7e308\n", "line 3: requests 1.7e308: at most 1e+15 a minute"},
		{"just over 1e15 requests", "minute,requests\n0,1000000000000001\n", "line 2: requests 1000000000000001: at most 1e+15 a minute"},
		{"unparsable minute", "minute,requests\n0.5,1\n", `line 2: minute "0.5": not an integer`},
		{"gap", "minute,requests\n0,1\n1,1\n3,1\n", "line 4: minute 3 follows minute 1: minutes must be consecutive (write 0 for a minute without requests)"},
		{"a row over 1 MiB", "minute,requests\n0,1\n1," + strings.Repeat("1", 1<<20) + "\n", "line 3: longer than the 1 MiB limit"},
		{"going back", "minute,requests\n0,1\n0,1\n", "line 3: minute 0 follows minute 0: minutes must be consecutive (write 0 for a minute without requests)"},
		// MaxInt64 + 1 wraps around to MinInt64: nothing follows the largest minute.
		{"the smallest minute after the largest", "minute,requests\n9223372036854775807,1\n-9223372036854775808,1\n",
			"line 3: minute -9223372036854775808 follows minute 9223372036854775807: minutes must be consecutive (write 0 for a minute without requests)"},
		{"wrapping around on the third row", "minute,requests\n9223372036854775806,1\n9223372036854775807,1\n-9223372036854775808,1\n",
			"line 4: minute -9223372036854775808 follows minute 9223372036854775807: minutes must be consecutive (write 0 for a minute without requests)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTrace(strings.NewReader(tc.in))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %s", err, tc.want)
			}
		})
	}
}

func TestCheckTrace(t *testing.T) {
	par := DefaultParams() // 40 replicas at 0.7
	tests := []struct {
		name string
		tr   Trace
		want string // "" for none
	}{
		{name: "the most requests", tr: Trace{1e15, 0}},
		// 1e-300 / 60 / 40 is 4.2e-304 requests/s a replica at 0.7: a normal float.
		{name: "a tiny but normal peak", tr: Trace{0, 1e-300}},
		{name: "no requests", tr: Trace{0, 0}, want: ErrNoRequests.Error()},
		{name: "no minutes", want: ErrNoRequests.Error()},
		{name: "over the most requests", tr: Trace{1, 1.7e308}, want: "minute 1: 1.7e+308 requests: want a number in 0..1e+15"},
		{name: "NaN requests", tr: Trace{1, math.NaN()}, want: "minute 1: NaN requests: want a number in 0..1e+15"},
		{name: "negative requests", tr: Trace{-1, 1}, want: "minute 0: -1 requests: want a number in 0..1e+15"},
		// 5e-324 / 60 / 28 rounds to 0: no replica could serve anything.
		{name: "a peak of the smallest float", tr: Trace{5e-324},
			want: "a peak of 5e-324 requests a minute is too small for the model: 40 replicas at 0.7 utilization serve it at 0 requests/s each"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ""
			if err := par.CheckTrace(tc.tr); err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("CheckTrace: %q, want %q", got, tc.want)
			}
		})
	}
}
