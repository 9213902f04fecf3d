package backtest

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
)

// FuzzReadTrace reads any bytes as a CSV trace. It never panics; a trace it accepts has at
// least one minute, each a number of requests in 0..MaxRequests, and reads back the same
// once written as minute,requests; and a short one that CheckTrace accepts backtests the
// baseline and the oracle into JSON (every number finite).
func FuzzReadTrace(f *testing.F) {
	for _, seed := range []string{
		"minute,requests\n0,60\n1,120\n",
		"requests,host,minute\r\n5,a,0\r\n\r\n7.5,b,1\r\n",
		"\ufeffminute,requests\n0,5\n",
		"minute,requests,minute\n0,1,5\n",
		"minute,requests\n0,1e15\n1,0\n2,1e15\n3,1\n",
		"minute,requests\n0,1.7e308\n",
		"minute,requests\n9223372036854775807,1\n-9223372036854775808,1\n",
		"minute,requests\n0,5e-324\n",
		"minute,requests\n0,0x1p-2\n1,+Inf\n",
		"minute\n0\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := ReadTrace(strings.NewReader(string(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "line ") && !strings.HasPrefix(err.Error(), "read trace") {
				t.Fatalf("error %q names no line", err)
			}
			return
		}
		if len(tr) == 0 {
			t.Fatal("a trace without minutes and no error")
		}
		var b strings.Builder
		b.WriteString("minute,requests\n")
		for m, v := range tr {
			if !(v >= 0 && v <= MaxRequests) {
				t.Fatalf("minute %d: %v requests accepted", m, v)
			}
			fmt.Fprintf(&b, "%d,%s\n", m, strconv.FormatFloat(v, 'g', -1, 64))
		}
		again, err := ReadTrace(strings.NewReader(b.String()))
		if err != nil || len(again) != len(tr) {
			t.Fatalf("written back: %d minutes, %v; want %d", len(again), err, len(tr))
		}
		for m := range tr {
			if again[m] != tr[m] {
				t.Fatalf("written back, minute %d: %v, want %v", m, again[m], tr[m])
			}
		}
		par := DefaultParams()
		par.PeakReplicas, par.Startup = 4, 0 // quick
		if len(tr) > 120 || par.CheckTrace(tr) != nil {
			return
		}
		hpa, err := Baseline(par)
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(tr, []Contender{{Name: HPAName, Policy: hpa, Reference: true}, {Name: OracleName}}, Options{Params: par})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("json of the backtest of %v: %v", tr, err)
		}
		if math.IsInf(res.Mu, 0) || !(res.Mu > 0) {
			t.Fatalf("mu %v", res.Mu)
		}
	})
}
