package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/policy"
)

func q(s string) *policy.Quantity {
	v := policy.MustQuantity(s)
	return &v
}

// opts are prescale run's defaults: a 15 s interval, 180 s start-up.
var opts = Options{Interval: 15 * time.Second, Startup: 180 * time.Second}

// llamaPolicy is a llama-70b policy in the shape of examples/policy.yaml's (three metrics,
// the HPA's behavior), with short queries (q, g, l) and the metric names the inputs of these
// tests carry: queue, gpu and p95-latency.
func llamaPolicy() *policy.Policy {
	return &policy.Policy{
		Name: "llama-70b", MinReplicas: new(int32(1)), MaxReplicas: 32,
		Metrics: []policy.Metric{
			{Name: "queue", Query: "q", Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: q("5")}},
			{Name: "gpu", Query: "g", Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: q("70")}},
			{Name: "p95-latency", Query: "l", Target: policy.MetricTarget{Type: policy.Value, Value: q("4")}},
		},
		Behavior: &policy.Behavior{
			ScaleUp: &policy.Rules{StabilizationWindowSeconds: new(int32(0)), Policies: []policy.RatePolicy{
				{Type: policy.PercentPolicy, Value: 100, PeriodSeconds: 15}, {Type: policy.PodsPolicy, Value: 4, PeriodSeconds: 15}}},
			ScaleDown: &policy.Rules{StabilizationWindowSeconds: new(int32(300)), Policies: []policy.RatePolicy{
				{Type: policy.PercentPolicy, Value: 100, PeriodSeconds: 15}}},
		},
	}
}

type brief struct {
	Current int32  `json:"currentReplicas"`
	Desired int32  `json:"desiredReplicas"`
	Reason  string `json:"reason"`
	Metric  string `json:"metric"`
}

func briefs(t *testing.T, out string) []brief {
	t.Helper()
	var got []brief
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var b brief
		if err := json.Unmarshal([]byte(line), &b); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		got = append(got, b)
	}
	return got
}

func TestRunCarriesHistoryAcrossLines(t *testing.T) {
	input := `{"time":"2026-01-01T00:00:15Z","specReplicas":4,"pods":[{"name":"a","ready":true},{"name":"b","ready":true},{"name":"c","ready":false}],"metrics":{"queue":{"perPod":{"a":12,"b":9}},"p95-latency":{"value":3.1},"gpu":{"error":"timeout"}}}

{"time":"2026-01-01T00:00:30Z","specReplicas":5,"pods":[{"name":"a","ready":true},{"name":"b","ready":true},{"name":"c","ready":true},{"name":"d","ready":true},{"name":"e","ready":true}],"metrics":{"queue":{"perPod":{"a":1,"b":1,"c":1,"d":1,"e":1}},"p95-latency":{"value":1},"gpu":{"perPod":{"a":10,"b":10,"c":10,"d":10,"e":10}}}}
{"time":"2026-01-01T00:05:31Z","specReplicas":5,"pods":[{"name":"a","ready":true},{"name":"b","ready":true},{"name":"c","ready":true},{"name":"d","ready":true},{"name":"e","ready":true}],"metrics":{"queue":{"perPod":{"a":1,"b":1,"c":1,"d":1,"e":1}},"p95-latency":{"value":1},"gpu":{"perPod":{"a":10,"b":10,"c":10,"d":10,"e":10}}}}
`
	var out bytes.Buffer
	if err := Run(llamaPolicy(), opts, strings.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	want := []brief{
		// queue: (12000 + 9000) / 2 = 10500m, ratio 2.1; c is Running without a sample, so
		// on this scale-up it counts 0: 21000 / 3 = 7000m, 1.4 -> ceil(4.2) = 5. gpu is
		// missing, but 5 is a scale-up. latency 0.775 * 2 ready -> 2. Desired 5, under
		// the rate limit of 8.
		{Current: 4, Desired: 5, Reason: "DesiredWithinRange", Metric: "queue"},
		// Everything low: queue 0.2 * 5 -> 1, gpu 10/70 -> 1, latency 0.25 * 5 -> 2. The
		// 300 s window holds the max of the recommendations since 00:00:15: 5.
		{Current: 5, Desired: 5, Reason: "ScaleDownStabilized", Metric: "p95-latency"},
		// 301 s after the 5s were recommended the window has let go of them; the
		// recommendation of 2 made at 00:00:30 is also gone. Desired 2.
		{Current: 5, Desired: 2, Reason: "DesiredWithinRange", Metric: "p95-latency"},
	}
	if diff := cmp.Diff(want, briefs(t, out.String())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

func TestRunNaNIsMissing(t *testing.T) {
	input := `{"time":"2026-01-01T00:00:00Z","specReplicas":2,"pods":[{"name":"a","ready":true},{"name":"b","ready":true}],"metrics":{"queue":{"perPod":{"a":"NaN","b":1}},"p95-latency":{"value":"+Inf"},"gpu":{"perPod":{"a":1,"b":1}}}}`
	var out bytes.Buffer
	if err := Run(llamaPolicy(), opts, strings.NewReader(input), &out); err != nil {
		t.Fatal(err)
	}
	// gpu alone would scale down to 1; queue and latency are missing: hold at 2.
	want := []brief{{Current: 2, Desired: 2, Reason: "FailedGetMetric"}}
	if diff := cmp.Diff(want, briefs(t, out.String())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

// manyKeys returns n keys "p0": 1 .. of an object, comma-separated.
func manyKeys(n int) string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%q:1", "p"+strconv.Itoa(i))
	}
	return strings.Join(keys, ",")
}

func TestRunReportsMalformedLines(t *testing.T) {
	ok := `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"value":1}}}`
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"not JSON", ok + "\n{oops\n", "line 2: malformed observation: invalid character 'o' looking for beginning of object key string"},
		{"unknown field", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"replicas":3}`, `line 1: malformed observation: json: unknown field "replicas"`},
		{"missing fields", `{"pods":[]}`, "line 1: time: required\nspecReplicas: required"},
		{"negative replicas", `{"time":"2026-01-01T00:00:00Z","specReplicas":-1}`, "line 1: specReplicas: must be >= 0, got -1"},
		{"unknown metric", ok + "\n" + `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"metrics":{"qeue":{"value":1}}}`, "line 2: metrics.qeue: policy llama-70b has no such metric"},
		{"two forms of one metric", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"metrics":{"queue":{"value":1,"error":"x"}}}`, `line 1: metrics.queue: want exactly one of "perPod", "value" and "error"`},
		{"bad number", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"metrics":{"queue":{"value":"lots"}}}`, `line 1: malformed observation: want a number, NaN or ±Inf, got "lots"`},
		{"bad phase", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a","phase":"Sleeping"}]}`, `line 1: pods[0].phase: must be Pending, Running, Succeeded, Failed or Unknown, got "Sleeping"`},
		{"duplicate pod", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a"},{"name":"a"}]}`, `line 1: pods[1].name: duplicate pod "a"`},
		{"a load for a policy without a forecast", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"load":{"value":3}}`, "line 1: load: policy llama-70b has no forecast to take it"},
		{"a latency for a policy without an objective", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"latency":{"value":0.5}}`, "line 1: latency: policy llama-70b has no objective to take it"},
		{"an activation for a policy without scaleToZero", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"activation":{"value":3}}`, "line 1: activation: policy llama-70b has no scaleToZero to take it"},
		// encoding/json keeps the last of a key given twice and matches keys to fields in any
		// case: such a line would replay something else than it says.
		{"a key twice", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"specReplicas":4}`,
			`line 1: malformed observation: specReplicas: key "specReplicas" given twice`},
		{"a key in another case", `{"time":"2026-01-01T00:00:00Z","SpecReplicas":1}`,
			`line 1: malformed observation: SpecReplicas: key "SpecReplicas": keys are case-sensitive, want "specReplicas"`},
		{"a key in another case and the key", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"SPECREPLICAS":4}`,
			`line 1: malformed observation: SPECREPLICAS: key "SPECREPLICAS": keys are case-sensitive, want "specReplicas"`},
		{"a pod's key in another case", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a"},{"name":"b","Ready":true}]}`,
			`line 1: malformed observation: pods[1].Ready: key "Ready": keys are case-sensitive, want "ready"`},
		{"a sample's key in another case", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"metrics":{"queue":{"Value":1}}}`,
			`line 1: malformed observation: metrics.queue.Value: key "Value": keys are case-sensitive, want "value"`},
		{"a metric twice", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"metrics":{"queue":{"value":1},"queue":{"value":9}}}`,
			`line 1: malformed observation: metrics.queue: key "queue" given twice`},
		{"a pod's sample twice", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"perPod":{"a":1,"a":2}}}}`,
			`line 1: malformed observation: metrics.queue.perPod.a: key "a" given twice`},
		{"a key twice, once escaped", `{"time":"2026-01-01T00:00:00Z","\u0074ime":"2026-01-01T00:00:00Z","specReplicas":1}`,
			`line 1: malformed observation: time: key "time" given twice`},
		{"a pod's sample twice among many", `{"time":"2026-01-01T00:00:00Z","specReplicas":1,"metrics":{"queue":{"perPod":{` + manyKeys(20) + `,"p7":1}}}}`,
			`line 1: malformed observation: metrics.queue.perPod.p7: key "p7" given twice`},
		{"time going backwards", `{"time":"2026-01-01T00:01:00Z","specReplicas":1}` + "\n" + `{"time":"2026-01-01T00:00:00Z","specReplicas":1}`, "line 2: time 2026-01-01T00:00:00Z is before the previous line's 2026-01-01T00:01:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(llamaPolicy(), opts, strings.NewReader(tc.input), &bytes.Buffer{})
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if got := err.Error(); got != tc.want {
				t.Errorf("error:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// A line is at most MaxLine bytes, not counting its end: one byte over is reported with
// its line number, whether its end is "\n", "\r\n" or the end of the input.
func TestRunLineLimit(t *testing.T) {
	ok := `{"time":"2026-01-01T00:00:00Z","specReplicas":1}`
	// padded is a valid observation, padded with spaces to n bytes.
	padded := func(n int) string { return ok + strings.Repeat(" ", n-len(ok)) }
	tests := []struct {
		name  string
		input string
		want  string // the error; none when empty
	}{
		{"MaxLine bytes, then \\n", ok + "\n\n" + padded(MaxLine) + "\n", ""},
		{"MaxLine bytes, then \\r\\n", ok + "\n" + padded(MaxLine) + "\r\n", ""},
		{"MaxLine bytes at the end of the input", padded(MaxLine), ""},
		{"MaxLine+1 bytes, then \\n", ok + "\n\n" + padded(MaxLine+1) + "\n" + ok, "line 3: longer than the 16 MiB limit"},
		{"MaxLine+1 bytes, then \\r\\n", ok + "\n" + padded(MaxLine+1) + "\r\n", "line 2: longer than the 16 MiB limit"},
		{"MaxLine+1 bytes at the end of the input", padded(MaxLine + 1), "line 1: longer than the 16 MiB limit"},
		{"far over the limit", ok + "\n" + padded(3*MaxLine), "line 2: longer than the 16 MiB limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Run(llamaPolicy(), opts, strings.NewReader(tc.input), io.Discard)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %q, want none", err)
			case tc.want == "":
			case err == nil:
				t.Fatalf("no error, want %q", tc.want)
			case err.Error() != tc.want || !errors.Is(err, ErrLineTooLong):
				t.Errorf("error %q, want %q wrapping ErrLineTooLong", err, tc.want)
			}
		})
	}
}

func TestRunForecastsFromTheLoad(t *testing.T) {
	p := llamaPolicy()
	window := policy.Duration{Duration: 5 * time.Minute}
	p.Forecast = &policy.Forecast{Load: policy.Load{Query: "lq", PerReplica: policy.NewAutoFloat(10)},
		Gate: &policy.GateSpec{Window: &window}}
	// A load rising by 2 requests/s each 15 s line, from 100; the metrics stay in range. The
	// forecaster warms up on 20 residuals plus the horizon's 13 steps (195 s / 15 s), more
	// than the gate's 5-minute window (20 lines).
	var in strings.Builder
	const lines = 60
	for i := range lines {
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 15 * time.Second)
		load := `,"load":{"value":` + strconv.Itoa(100+2*i) + `}`
		if i == lines-1 {
			load = `,"load":{"error":"query timed out"}`
		}
		fmt.Fprintf(&in, `{"time":%q,"specReplicas":12,"metrics":{"p95-latency":{"value":4}}%s}`+"\n", at.Format(time.RFC3339), load)
	}
	var out bytes.Buffer
	if err := Run(p, opts, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	type record struct {
		Desired  int32 `json:"desiredReplicas"`
		Forecast *struct {
			Point, Value float64
			Proposal     int32
		} `json:"forecast"`
		Status *struct {
			Horizon   float64 `json:"horizonSeconds"`
			LoadError string  `json:"loadError"`
		} `json:"forecastStatus"`
	}
	var recs []record
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	if len(recs) != lines {
		t.Fatalf("%d records, want %d", len(recs), lines)
	}
	for i, r := range recs {
		if r.Status == nil || r.Status.Horizon != 195 {
			t.Fatalf("record %d: forecast status %+v, want horizon 195 s (180 s start-up + 15 s)", i, r.Status)
		}
	}
	if recs[0].Forecast != nil {
		t.Errorf("the first record forecasts %+v, want none while warming up", recs[0].Forecast)
	}
	// The line before the last: the rising load (218 requests/s at it) is forecast higher,
	// and the proposal is the planned value over 10 per replica.
	f := recs[lines-2].Forecast
	if f == nil || f.Point <= 218 || f.Proposal != int32(math.Ceil(f.Value/10)) {
		t.Errorf("forecast before the last line %+v, want a point above 218 and proposal ceil(value / 10)", f)
	}
	// The last line's load is missing: said in the status, never a forecast of 0.
	if last := recs[lines-1]; last.Status.LoadError != "query timed out" || last.Desired < 12 {
		t.Errorf("last record %+v, want the load error and no scale-down", last)
	}
}

// objectivePolicy is llamaPolicy with a forecast and an objective: at most 1 % of minutes
// with the latency over 2 s.
func objectivePolicy() *policy.Policy {
	p := llamaPolicy()
	p.Forecast = &policy.Forecast{Load: policy.Load{Query: "lq", PerReplica: policy.NewAutoFloat(10)}}
	budget := policy.Fraction(0.01)
	p.Objective = &policy.Objective{Query: "lat", SLO: &policy.Duration{Duration: 2 * time.Second}, Budget: &budget}
	return p
}

// Each line's latency reaches the objective: a minute with a sample counts once it ends
// (violated if a sample was over the SLO; "+Inf" is), a minute without one counts for
// nothing, and a missing sample is reported, never read as 0.
func TestRunObjective(t *testing.T) {
	lines := []struct {
		at      string
		latency string // the line's "latency", none when empty
	}{
		{"00:00:00", `{"value":1}`},
		{"00:00:30", `{"value":2.5}`}, // over 2 s
		{"00:01:00", `{"error":"empty result"}`},
		{"00:01:30", ``},
		{"00:02:00", `{"value":"+Inf"}`}, // [1m, 2m) had no sample: not counted
		{"00:03:00", `{"value":0}`},
		{"00:04:00", `{"value":"NaN"}`},
	}
	var in strings.Builder
	for _, l := range lines {
		latency := ""
		if l.latency != "" {
			latency = `,"latency":` + l.latency
		}
		fmt.Fprintf(&in, `{"time":"2026-01-01T%sZ","specReplicas":2,"metrics":{"p95-latency":{"value":1}},"load":{"value":10}%s}`+"\n", l.at, latency)
	}
	var out bytes.Buffer
	if err := Run(objectivePolicy(), opts, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	type status struct {
		Latency         any    `json:"latencySeconds"`
		LatencyError    string `json:"latencyError"`
		Minutes         int64  `json:"minutes"`
		ViolatedMinutes int64  `json:"violatedMinutes"`
	}
	var got []status
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			Objective *status `json:"objectiveStatus"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		if r.Objective == nil {
			t.Fatalf("output line %q has no objectiveStatus", line)
		}
		got = append(got, *r.Objective)
	}
	want := []status{
		{Latency: 1.0},
		{Latency: 2.5},
		// 1m: [0, 1m) ends, sampled and over at 30 s.
		{LatencyError: "empty result", Minutes: 1, ViolatedMinutes: 1},
		{Minutes: 1, ViolatedMinutes: 1},
		{Latency: "+Inf", Minutes: 1, ViolatedMinutes: 1},
		// 3m: [2m, 3m) ends, at +Inf: over.
		{Latency: 0.0, Minutes: 2, ViolatedMinutes: 2},
		// 4m: [3m, 4m) ends, within the SLO; NaN is no latency.
		{LatencyError: "not a latency: NaN", Minutes: 3, ViolatedMinutes: 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objective statuses (-want +got):\n%s", diff)
	}

	err := Run(objectivePolicy(), opts, strings.NewReader(`{"time":"2026-01-01T00:00:00Z","specReplicas":1,"latency":{"perPod":{"a":1}}}`), &bytes.Buffer{})
	if want := `line 1: latency: the objective's latency is one series: want "value" or "error", not "perPod"`; err == nil || err.Error() != want {
		t.Errorf("a per-pod latency: error %v, want %q", err, want)
	}
}

// A line's "waiting" reaches the objective: a line whose latency is missing while requests
// wait is over the SLO (waitedWithoutLatency), and its minute counts as violated and
// waited; with nothing waiting the line is missing as before. A policy without
// objective.waiting rejects the key.
func TestRunObjectiveWaiting(t *testing.T) {
	p := objectivePolicy()
	p.Objective.Waiting = "wq"
	lines := []struct {
		at, latency, waiting string // the line's "latency" and "waiting", none when empty
	}{
		{"00:00:00", `{"value":"NaN"}`, `{"perPod":{"a":5,"b":7}}`},
		{"00:01:00", `{"error":"empty result"}`, `{"value":0}`},
		{"00:02:00", `{"value":1}`, `{"value":30}`},
		{"00:03:00", `{"value":1}`, ``},
	}
	var in strings.Builder
	for _, l := range lines {
		extra := `,"latency":` + l.latency
		if l.waiting != "" {
			extra += `,"waiting":` + l.waiting
		}
		fmt.Fprintf(&in, `{"time":"2026-01-01T%sZ","specReplicas":2,"metrics":{"p95-latency":{"value":1}},"load":{"value":10}%s}`+"\n", l.at, extra)
	}
	var out bytes.Buffer
	if err := Run(p, opts, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	type status struct {
		Waiting       any    `json:"waitingRequests"`
		Waited        bool   `json:"waitedWithoutLatency"`
		MissingSince  string `json:"missingSince"`
		Minutes       int64  `json:"minutes"`
		Violated      int64  `json:"violatedMinutes"`
		WaitedMinutes int64  `json:"waitedMinutes"`
	}
	var got []status
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r struct {
			Objective status `json:"objectiveStatus"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		got = append(got, r.Objective)
	}
	want := []status{
		// NaN while 12 wait (5 + 7): over the SLO, not missing.
		{Waiting: 12.0, Waited: true},
		// 1m: [0, 1m) ends violated, by the wait; now nothing waits: missing.
		{Waiting: 0.0, MissingSince: "2026-01-01T00:01:00Z", Minutes: 1, Violated: 1, WaitedMinutes: 1},
		// 2m: [1m, 2m) had no observation; a latency within the SLO decides, whatever waits.
		{Waiting: 30.0, Minutes: 1, Violated: 1, WaitedMinutes: 1},
		// 3m: [2m, 3m) was within the SLO.
		{Minutes: 2, Violated: 1, WaitedMinutes: 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objective statuses (-want +got):\n%s", diff)
	}

	err := Run(objectivePolicy(), opts, strings.NewReader(`{"time":"2026-01-01T00:00:00Z","specReplicas":1,"waiting":{"value":1}}`), &bytes.Buffer{})
	if want := `line 1: waiting: policy llama-70b has no objective.waiting to take it`; err == nil || err.Error() != want {
		t.Errorf("waiting without objective.waiting: error %v, want %q", err, want)
	}
}

// A scaleToZero policy replays its activation samples: idle for the 60 s delay at one
// replica (queue 0), it goes to zero at the line 60 s after the first idle one; a line
// without an activation at zero stays there; 9 requests/s over 4 a replica wake it to 3.
func TestRunScaleToZero(t *testing.T) {
	p := llamaPolicy()
	p.Metrics = p.Metrics[:1]
	p.MinReplicas = new(int32(0))
	p.ScaleToZero = &policy.ScaleToZero{Activation: policy.Activation{Query: "rate", PerReplica: q("4")},
		IdleDelay: &policy.Duration{Duration: time.Minute}}
	lines := []string{
		`{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"perPod":{"a":0}}},"activation":{"value":0}}`,
		`{"time":"2026-01-01T00:00:59Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"perPod":{"a":0}}},"activation":{"value":0}}`,
		`{"time":"2026-01-01T00:01:00Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"perPod":{"a":0}}},"activation":{"value":0}}`,
		`{"time":"2026-01-01T00:01:15Z","specReplicas":0}`,
		`{"time":"2026-01-01T00:01:30Z","specReplicas":0,"activation":{"value":9}}`,
	}
	var out bytes.Buffer
	if err := Run(p, opts, strings.NewReader(strings.Join(lines, "\n")), &out); err != nil {
		t.Fatal(err)
	}
	// Both metrics propose 0 (the last of equal proposals names the decision's metric:
	// activation); the 300 s scale-down window holds the first sync's 1, but not the idle
	// rule, whose delay is its own.
	want := []brief{
		{Current: 1, Desired: 1, Reason: "ScaleDownStabilized", Metric: "activation"},
		{Current: 1, Desired: 1, Reason: "ScaleDownStabilized", Metric: "activation"},
		{Current: 1, Desired: 0, Reason: "ScaledToZero", Metric: "activation"},
		{Current: 0, Desired: 0, Reason: "FailedGetMetric"},
		{Current: 0, Desired: 3, Reason: "Activated", Metric: "activation"},
	}
	if diff := cmp.Diff(want, briefs(t, out.String())); diff != "" {
		t.Errorf("decisions (-want +got):\n%s", diff)
	}
}

// A restart at zero replays as the issue that found it reproduced it: after a history in
// which prescale scaled the target to zero, a line at zero with no pod and 50 requests/s
// wakes it to ceil(50/4) = 13 replicas, in the run that scaled it there, in a restarted
// one that reads the stored record, and in a fresh run whose first line states that
// record. Without the record a fresh engine reads the zero as set by hand: ScalingDisabled.
func TestRunRestartAtZero(t *testing.T) {
	p := llamaPolicy()
	p.Metrics = p.Metrics[:1]
	p.MinReplicas = new(int32(0))
	p.ScaleToZero = &policy.ScaleToZero{Activation: policy.Activation{Query: "rate", PerReplica: q("4")},
		IdleDelay: &policy.Duration{Duration: time.Minute}}
	history := []string{
		`{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"perPod":{"a":0}}},"activation":{"value":0}}`,
		`{"time":"2026-01-01T00:01:00Z","specReplicas":1,"pods":[{"name":"a","ready":true}],"metrics":{"queue":{"perPod":{"a":0}}},"activation":{"value":0}}`,
	}
	wake := func(extra string) string {
		return `{"time":"2026-01-01T00:02:00Z","specReplicas":0,"pods":[],"activation":{"value":50}` + extra + `}`
	}
	woken := brief{Current: 0, Desired: 13, Reason: "Activated", Metric: "activation"}
	disabled := brief{Current: 0, Desired: 0, Reason: "ScalingDisabled"}
	tests := []struct {
		name  string
		lines []string
		last  brief
	}{
		{name: "the run that scaled it to zero wakes it", lines: append(slices.Clone(history), wake("")), last: woken},
		{name: "restarted, reading the stored record: wakes it",
			lines: append(slices.Clone(history), wake(`,"restart":true,"record":{"scaledToZero":true}`)), last: woken},
		{name: "restarted with no record (a zero set by hand): ScalingDisabled",
			lines: append(slices.Clone(history), wake(`,"restart":true`)), last: disabled},
		{name: "a fresh run whose first line states the record: wakes it",
			lines: []string{wake(`,"record":{"scaledToZero":true}`)}, last: woken},
		{name: "a fresh run without the record: ScalingDisabled", lines: []string{wake("")}, last: disabled},
		{name: "a fresh run whose record says prescale did not set the zero: ScalingDisabled",
			lines: []string{wake(`,"record":{}`)}, last: disabled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Run(p, opts, strings.NewReader(strings.Join(tc.lines, "\n")), &out); err != nil {
				t.Fatal(err)
			}
			got := briefs(t, out.String())
			if diff := cmp.Diff(tc.last, got[len(got)-1]); diff != "" {
				t.Errorf("the last decision (-want +got):\n%s", diff)
			}
		})
	}

	// A record is read by a fresh engine only: on any other line it is an error, not
	// silently ignored.
	in := strings.Join(append(slices.Clone(history), wake(`,"record":{"scaledToZero":true}`)), "\n")
	err := Run(p, opts, strings.NewReader(in), &bytes.Buffer{})
	if want := `line 3: record: only on the first line or a line with "restart": true, where a fresh engine reads it`; err == nil || err.Error() != want {
		t.Errorf("a record on a running engine's line: error %v, want %q", err, want)
	}
}

func TestRunSaysWhenTheForecastCannotBeBuilt(t *testing.T) {
	// The issue's: seasonal-naive with a season of 20 s at the 15 s interval: rounded to
	// whole steps, (20 + 7.5) / 15 = 1 step, and a season needs 2. The replay runs without the
	// forecast, and says so once, with why; at a 10 s interval the season is 2 steps and
	// nothing is said.
	line := `{"time":"2026-01-01T00:00:00Z","specReplicas":2,"metrics":{"p95-latency":{"value":4}},"load":{"value":50}}` + "\n"
	for _, tc := range []struct {
		name     string
		interval time.Duration
		want     []string
	}{
		{name: "a season of one interval", interval: 15 * time.Second, want: []string{"policy llama-70b runs without its forecast, which cannot be built at the interval of 15s: " +
			"build the forecaster: fit forecast: invalid forecast options: season: must be at least 2 steps (30s), got 20s"}},
		{name: "a season of two intervals", interval: 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := llamaPolicy()
			p.Forecast = &policy.Forecast{Load: policy.Load{Query: "lq", PerReplica: policy.NewAutoFloat(10)},
				Method: "seasonal-naive", Season: &policy.Duration{Duration: 20 * time.Second}}
			var got []string
			o := Options{Interval: tc.interval, Startup: opts.Startup, Warn: func(msg string) { got = append(got, msg) }}
			var out bytes.Buffer
			if err := Run(p, o, strings.NewReader(line+strings.Replace(line, ":00Z", ":30Z", 1)), &out); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStrictKeysAcceptsWhatItShould(t *testing.T) {
	// Lines as encoding/json writes them (every key once, in its case), with whitespace,
	// escapes, nested arrays and objects of many keys: nothing to say.
	for _, raw := range []string{
		`{"time":"2026-01-01T00:00:00Z","specReplicas":1}`,
		` { "time" : "2026-01-01T00:00:00Z" , "spec\u0052eplicas" : 1 , "pods" : [ ] , "metrics" : { } } `,
		`{"time":"2026-01-01T00:00:00Z","specReplicas":1,"pods":[{"name":"a,b]}\"","ready":true,"phase":"Running"},{"name":"c","deleting":false}],` +
			`"metrics":{"queue":{"perPod":{` + manyKeys(40) + `}},"gpu":{"value":"NaN"},"p95-latency":{"error":"x"}},"load":null,"latency":{"value":-1.5e-3}}`,
	} {
		if err := strictKeys([]byte(raw), lineType); err != nil {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// TestDocObjectiveExample replays the objective example of docs/replay.md, the policy and
// the 12 lines it describes, and compares each record it shows with the replay's.
func TestDocObjectiveExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/replay.md")
	if err != nil {
		t.Fatal(err)
	}
	f, err := policy.Parse(strings.NewReader(`policies:
  - name: model
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: model}
    minReplicas: 1
    maxReplicas: 20
    metrics:
      - name: queue
        query: sum by (pod) (vllm:num_requests_waiting{namespace="inference"})
        target: {type: AverageValue, averageValue: 5}
    forecast:
      load:
        query: sum(rate(inference_objective_request_total{model_name="model"}[1m]))
        perReplica: 25
      method: holt
    objective:
      query: histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace="inference"}[1m])))
      slo: 2s
      budget: 1%
`))
	if err != nil {
		t.Fatal(err)
	}
	// As the first example: four Ready pods with a queue of 3, the load rising by 2 req/s a
	// line; the latency 0.8 s, but 2.6 s at 00:00:30, an error at 00:01:15, +Inf at 00:02:15.
	var in strings.Builder
	pods := `"pods":[{"name":"a","ready":true},{"name":"b","ready":true},{"name":"c","ready":true},{"name":"d","ready":true}]`
	queue := `"metrics":{"queue":{"perPod":{"a":3,"b":3,"c":3,"d":3}}}`
	for i := range 12 {
		lat := `"latency":{"value":0.8},`
		switch i {
		case 2:
			lat = `"latency":{"value":2.6},`
		case 5:
			lat = `"latency":{"error":"empty result"},`
		case 9:
			lat = `"latency":{"value":"+Inf"},`
		}
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * 15 * time.Second)
		fmt.Fprintf(&in, `{"time":%q,"specReplicas":4,"load":{"value":%d},%s%s,%s}`+"\n", at.Format(time.RFC3339), 40+2*i, lat, pods, queue)
	}
	var out bytes.Buffer
	if err := Run(&f.Policies[0], opts, strings.NewReader(in.String()), &out); err != nil {
		t.Fatal(err)
	}
	type rec struct {
		Time   string         `json:"time"`
		Status map[string]any `json:"objectiveStatus"`
	}
	got := map[string]map[string]any{}
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		var r rec
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		got[r.Time] = r.Status
	}
	shown := 0
	for line := range strings.SplitSeq(string(doc), "\n") {
		if !strings.HasPrefix(line, `{"time":"2026-01-01T00:0`) || !strings.Contains(line, `"objectiveStatus"`) {
			continue
		}
		var want rec
		if err := json.Unmarshal([]byte(line), &want); err != nil {
			t.Fatalf("docs/replay.md: %v in %s", err, line)
		}
		shown++
		if diff := cmp.Diff(want.Status, got[want.Time]); diff != "" {
			t.Errorf("docs/replay.md's record at %s (-doc +replay):\n%s", want.Time, diff)
		}
	}
	if shown != 5 {
		t.Errorf("docs/replay.md shows %d records of the objective example, want 5", shown)
	}
}
