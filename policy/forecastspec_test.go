package policy

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prescale/prescale/forecast"
)

const forecastHead = `policies:
  - name: p
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: m}
    maxReplicas: 8
    metrics:
      - {name: gpu, query: q, target: {type: AverageValue, averageValue: 70}}
    forecast:
`

func TestParseForecast(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want *Forecast
	}{
		{
			name: "the issue's block",
			yaml: `      load:
        query: sum(rate(vllm:request_success_total{namespace="inference"}[1m]))
        perReplica: 3.5
      method: auto
      season: 24h
      horizon: auto
      history: 14d
      quantile: 0.9
      gate: {maxError: 0.3, window: 2h}
`,
			want: &Forecast{
				Load:     Load{Query: `sum(rate(vllm:request_success_total{namespace="inference"}[1m]))`, PerReplica: NewAutoFloat(3.5)},
				Method:   forecast.MethodAuto,
				Season:   &Duration{24 * time.Hour},
				Horizon:  &AutoDuration{Auto: true},
				History:  &Duration{14 * 24 * time.Hour},
				Quantile: ptr(0.9),
				Gate:     &GateSpec{MaxError: ptr(0.3), Window: &Duration{2 * time.Hour}},
			},
		},
		{
			name: "only the load, perReplica auto, an integer quantile bound",
			yaml: "      load: {query: q, perReplica: auto}\n      horizon: 90s\n      history: 1w2d\n",
			want: &Forecast{Load: Load{Query: "q", PerReplica: AutoFloat{Auto: true}},
				Horizon: &AutoDuration{Duration: 90 * time.Second}, History: &Duration{9 * 24 * time.Hour}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(forecastHead + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, f.Policies[0].Forecast, cmp.AllowUnexported(AutoFloat{})); diff != "" {
				t.Errorf("forecast (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForecastDefaults(t *testing.T) {
	f := &Forecast{Load: Load{Query: "q", PerReplica: AutoFloat{Auto: true}}}
	maxErr, window := f.GateOrDefault()
	got := []any{f.MethodOrDefault(), f.SeasonOrDefault(), f.HorizonFor(3*time.Minute, 15*time.Second),
		f.HistoryOrDefault(), f.QuantileOrDefault(), maxErr, window}
	want := []any{forecast.MethodAuto, 24 * time.Hour, 195 * time.Second, 14 * 24 * time.Hour, 0.9, 0.3, 2 * time.Hour}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	f.Horizon = &AutoDuration{Duration: time.Minute}
	if h := f.HorizonFor(3*time.Minute, 15*time.Second); h != time.Minute {
		t.Errorf("a set horizon = %v, want 1m", h)
	}
}

func TestParseForecastErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "every field out of range at once",
			yaml: `      load: {query: " ", perReplica: 0}
      method: prophet
      season: 0s
      horizon: 2h
      history: 91d
      quantile: 0.4999
      gate: {maxError: 0, window: 0s}
`,
			want: []string{
				`policies[0].forecast.load.query: must not be blank, got " " (line 8)`,
				`policies[0].forecast.load.perReplica: must be > 0 or "auto", got 0 (line 8)`,
				`policies[0].forecast.method: must be auto, holt, holt-winters, seasonal-naive, linear or off, got "prophet" (line 9)`,
				`policies[0].forecast.season: must be > 0, got 0s (line 10)`,
				`policies[0].forecast.horizon: must be "auto" or 1s..1h0m0s, got 2h0m0s (line 11)`,
				`policies[0].forecast.history: must be 0..90d, got 2184h0m0s (line 12)`,
				`policies[0].forecast.quantile: must be within [0.5, 0.999], got 0.4999 (line 13)`,
				`policies[0].forecast.gate.maxError: must be > 0, got 0 (line 14)`,
				`policies[0].forecast.gate.window: must be > 0 and at most 7d (168h0m0s), got 0s (line 14)`,
			},
		},
		{
			name: "the edges: horizon 1s and 1h, history 90d, quantile 0.5 and 0.999, gate.window 1ns and 1w are valid; just past them not",
			yaml: "      load: {query: q, perReplica: auto}\n      horizon: 3601s\n      quantile: 1\n",
			want: []string{
				`policies[0].forecast.horizon: must be "auto" or 1s..1h0m0s, got 1h0m1s (line 9)`,
				`policies[0].forecast.quantile: must be within [0.5, 0.999], got 1 (line 10)`,
			},
		},
		{
			name: "a seasonal method needs a season of two steps (the shortest step is 1s)",
			yaml: "      load: {query: q, perReplica: auto}\n      method: holt-winters\n      season: 1s\n",
			want: []string{
				`policies[0].forecast.season: must be at least 2s (two steps) for method holt-winters, got 1s (line 10)`,
			},
		},
		{
			// 1000w: the forecast would never warm up, and the gate's memory would grow
			// with the window.
			name: "a gate window of 1000 weeks",
			yaml: "      load: {query: q, perReplica: auto}\n      gate: {window: 1000w}\n",
			want: []string{
				`policies[0].forecast.gate.window: must be > 0 and at most 7d (168h0m0s), got 168000h0m0s (line 9)`,
			},
		},
		{
			name: "a gate window one second past a week",
			yaml: "      load: {query: q, perReplica: auto}\n      gate: {window: 1w1s}\n",
			want: []string{
				`policies[0].forecast.gate.window: must be > 0 and at most 7d (168h0m0s), got 168h0m1s (line 9)`,
			},
		},
		{
			name: "required load",
			yaml: "      method: holt\n",
			want: []string{
				`policies[0].forecast.load.perReplica: required (a number > 0 or "auto") (line 7)`,
				`policies[0].forecast.load.query: required (line 7)`,
			},
		},
		{
			name: "values of the wrong kind",
			yaml: "      load: {query: q, perReplica: lots}\n      season: 3x\n      horizon: soon\n      quantile: high\n      history: 5\n",
			want: []string{
				`policies[0].forecast.load.perReplica: want "auto" or a number, got "lots" (line 8)`,
				`policies[0].forecast.season: "3x" is not a duration (such as 90s, 2h or 14d) (line 9)`,
				`policies[0].forecast.horizon: want "auto" or a duration (such as 90s), got "soon" (line 10)`,
				`policies[0].forecast.quantile: want a number, got "high" (line 11)`,
				`policies[0].forecast.history: want a duration (such as 90s, 2h or 14d), got "5" (line 12)`,
			},
		},
		{
			name: "unknown key",
			yaml: "      load: {query: q, perReplica: 1, unit: rps}\n",
			want: []string{`policies[0].forecast.load.unit: unknown field (line 8)`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(forecastHead + tc.yaml))
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, errorLines(err)); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
	for _, c := range [][3]string{{"1s", "0.5", "1ns"}, {"1h", "0.999", "1w"}} {
		y := "      load: {query: q, perReplica: auto}\n      horizon: " + c[0] + "\n      history: 90d\n      quantile: " + c[1] +
			"\n      gate: {window: " + c[2] + "}\n"
		if _, err := Parse(strings.NewReader(forecastHead + y)); err != nil {
			t.Errorf("horizon %s, quantile %s, gate.window %s: %v", c[0], c[1], c[2], err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"14d", 14 * 24 * time.Hour, true},
		{"1w", 7 * 24 * time.Hour, true},
		{"1w2d", 9 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0s", 0, true},
		{"", 0, false},
		{"d", 0, false},
		{"2d1w", 0, false},
		{"-1h", 0, false},
		{"1.5d", 0, false},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err == nil) != tc.ok || got.Duration != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestParseDurationRange checks that a duration beyond the longest time.Duration,
// 2^63-1 ns = 2562047h47m16.854775807s = 15250w1d23h47m16.854775807s (15250 weeks are
// 9223200000 s, 172036.854775807 s short of 9223372036.854775807 s), is refused with its
// text, never read as the value it wrapped around to.
func TestParseDurationRange(t *testing.T) {
	const longest = time.Duration(1<<63 - 1)
	tooLong := func(s string) string {
		return `"` + s + `" is longer than the longest duration, 2562047h47m16.854775807s (about 292 years)`
	}
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "15250 weeks fit", in: "15250w", want: 15250 * 7 * 24 * time.Hour},
		{name: "the longest duration, from weeks", in: "15250w1d23h47m16.854775807s", want: longest},
		{name: "one nanosecond more, in the Go part", in: "15250w1d23h47m16.854775808s", wantErr: tooLong("15250w1d23h47m16.854775808s")},
		{name: "15251 weeks: the idleDelay that came out negative", in: "15251w", wantErr: tooLong("15251w")},
		// 30500w = 18446400000 s = 2^64 ns - 344073.709551616 s: it wrapped to -344073.7 s,
		// and 4d (345600 s) more made the 1526 s SLO of the report.
		{name: "30500w4d: the SLO that ran as 1526 s", in: "30500w4d", wantErr: tooLong("30500w4d")},
		{name: "the largest week count of the old 16-bit parse", in: "65535w", wantErr: tooLong("65535w")},
		// 106751 days are 9223286400 s, 85636.854775807 s = 23h47m16.854775807s short.
		{name: "the longest duration, from days", in: "106751d23h47m16.854775807s", want: longest},
		{name: "more days than fit", in: "106752d", wantErr: tooLong("106752d")},
		{name: "days beyond 64 bits", in: "18446744073709551616d", wantErr: tooLong("18446744073709551616d")},
		{name: "weeks and days that fit alone but not together", in: "15250w2d", wantErr: tooLong("15250w2d")},
		{name: "hours beyond Go's range", in: "2562048h", wantErr: tooLong("2562048h")},
		{name: "nanoseconds one beyond Go's range", in: "9223372036854775808ns", wantErr: tooLong("9223372036854775808ns")},
		{name: "nanoseconds at Go's range", in: "9223372036854775807ns", want: longest},
		{name: "malformed stays malformed", in: "1w2x", wantErr: `"1w2x" is not a duration (such as 90s, 2h or 14d)`},
		{name: "negative stays malformed", in: "-9999999999h", wantErr: `"-9999999999h" is not a duration (such as 90s, 2h or 14d)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("ParseDuration(%q) error (-want +got):\n%s", tc.in, diff)
			}
			if got.Duration != tc.want {
				t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, got.Duration, tc.want)
			}
		})
	}
}

// TestParseDurationOverflowNamesTheField checks the two fields of the report: each error
// names its YAML path and the text.
func TestParseDurationOverflowNamesTheField(t *testing.T) {
	const file = `policies:
  - name: p
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: m}
    minReplicas: 0
    maxReplicas: 8
    metrics:
      - {name: gpu, query: q, target: {type: Value, value: 70}}
    forecast:
      load: {query: q, perReplica: 1}
    objective: {query: lat, slo: 30500w4d, budget: 0.01}
    scaleToZero:
      idleDelay: 15251w
      activation: {query: a, perReplica: 1}
`
	_, err := Parse(strings.NewReader(file))
	want := []string{
		`policies[0].objective.slo: "30500w4d" is longer than the longest duration, 2562047h47m16.854775807s (about 292 years) (line 10)`,
		`policies[0].scaleToZero.idleDelay: "15251w" is longer than the longest duration, 2562047h47m16.854775807s (about 292 years) (line 12)`,
	}
	if diff := cmp.Diff(want, errorLines(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
