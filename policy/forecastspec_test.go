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
	got := []any{f.MethodOrDefault(), f.SeasonOrDefault(), f.HorizonFor(3*time.Minute, 15*time.Second, 30*time.Second),
		f.HistoryOrDefault(), f.QuantileOrDefault(), maxErr, window}
	// The horizon: 3m start-up + 15s tick + 30s lag of the load query = 225 s.
	want := []any{forecast.MethodAuto, 24 * time.Hour, 225 * time.Second, 14 * 24 * time.Hour, 0.9, 0.3, 2 * time.Hour}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
	f.Horizon = &AutoDuration{Duration: time.Minute}
	if h := f.HorizonFor(3*time.Minute, 15*time.Second, 30*time.Second); h != time.Minute {
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
				`policies[0].forecast.season: must be > 0 and at most 7d (168h0m0s), got 0s (line 10)`,
				`policies[0].forecast.horizon: must be "auto" or 1s..1h0m0s, got 2h0m0s (line 11)`,
				`policies[0].forecast.history: must be 0..90d, got 2184h0m0s (line 12)`,
				`policies[0].forecast.quantile: must be within [0.5, 0.999], got 0.4999 (line 13)`,
				`policies[0].forecast.gate.maxError: must be > 0, got 0 (line 14)`,
				`policies[0].forecast.gate.window: must be > 0 and at most 7d (168h0m0s), got 0s (line 14)`,
			},
		},
		{
			name: "the edges: horizon 1s and 1h, history 90d, quantile 0.5 and 0.999, gate.window 1ns and 1w, season 1.5s and 1w are valid; just past them not",
			yaml: "      load: {query: q, perReplica: auto}\n      horizon: 3601s\n      quantile: 1\n",
			want: []string{
				`policies[0].forecast.horizon: must be "auto" or 1s..1h0m0s, got 1h0m1s (line 9)`,
				`policies[0].forecast.quantile: must be within [0.5, 0.999], got 1 (line 10)`,
			},
		},
		{
			// Parse checks against the shortest step, 1s: the season is rounded to whole
			// steps, and 1.5 steps round to the 2 a forecaster needs.
			name: "a season of two steps (the shortest step is 1s), for any method the forecaster is fitted with",
			yaml: "      load: {query: q, perReplica: auto}\n      method: holt\n      season: 1499ms\n",
			want: []string{
				`policies[0].forecast.season: must be at least 1.5s, two steps of the load sampled every 1s (a season is rounded to whole steps), got 1.499s (line 10)`,
			},
		},
		{
			name: "a season of a week and a second",
			yaml: "      load: {query: q, perReplica: auto}\n      season: 1w1s\n",
			want: []string{
				`policies[0].forecast.season: must be > 0 and at most 7d (168h0m0s), got 168h0m1s (line 9)`,
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
	for _, c := range [][4]string{{"1s", "0.5", "1ns", "1500ms"}, {"1h", "0.999", "1w", "1w"}} {
		y := "      load: {query: q, perReplica: auto}\n      horizon: " + c[0] + "\n      history: 90d\n      quantile: " + c[1] +
			"\n      gate: {window: " + c[2] + "}\n      season: " + c[3] + "\n"
		if _, err := Parse(strings.NewReader(forecastHead + y)); err != nil {
			t.Errorf("horizon %s, quantile %s, gate.window %s, season %s: %v", c[0], c[1], c[2], c[3], err)
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

// TestForecastCheckStep checks the season against the step the load is sampled at. The
// forecast package rounds the season to the nearest whole number of steps and needs two, so
// the shortest season is 1.5 steps: 90s at 1m, 22.5s at 15s. Each case is also handed to
// forecast.Fit, which builds the forecaster: CheckStep must accept exactly what Fit builds.
func TestForecastCheckStep(t *testing.T) {
	spec := func(method forecast.Method, season time.Duration) *Forecast {
		f := &Forecast{Load: Load{Query: "q", PerReplica: AutoFloat{Auto: true}}, Method: method}
		if season != 0 {
			f.Season = &Duration{season}
		}
		return f
	}
	tests := []struct {
		name    string
		f       *Forecast
		step    time.Duration
		wantErr string
	}{
		{name: "the report's seasonal-naive season of 20s, at the backtest's minute",
			f: spec(forecast.MethodSeasonalNaive, 20*time.Second), step: time.Minute,
			wantErr: "forecast.season: must be at least 1m30s, two steps of the load sampled every 1m0s (a season is rounded to whole steps), got 20s"},
		{name: "1.5 minutes round to two steps of a minute",
			f: spec(forecast.MethodSeasonalNaive, 90*time.Second), step: time.Minute},
		{name: "a nanosecond less rounds to one",
			f: spec(forecast.MethodHoltWinters, 90*time.Second-1), step: time.Minute,
			wantErr: "forecast.season: must be at least 1m30s, two steps of the load sampled every 1m0s (a season is rounded to whole steps), got 1m29.999999999s"},
		{name: "auto is fitted with the season too",
			f: spec(forecast.MethodAuto, 20*time.Second), step: 15 * time.Second,
			wantErr: "forecast.season: must be at least 22.5s, two steps of the load sampled every 15s (a season is rounded to whole steps), got 20s"},
		{name: "and so is holt", f: spec(forecast.MethodHolt, 22500*time.Millisecond-1), step: 15 * time.Second,
			wantErr: "forecast.season: must be at least 22.5s, two steps of the load sampled every 15s (a season is rounded to whole steps), got 22.499999999s"},
		{name: "22.5s at 15s", f: spec(forecast.MethodLinear, 22500*time.Millisecond), step: 15 * time.Second},
		{name: "the default season, a day, at an interval of 12h", f: spec("", 0), step: 12 * time.Hour},
		// 24h is 1.5 steps of 16h; 16h0m0.000000001s rounds a day to one step.
		{name: "the default season at an interval just over 16h", f: spec("", 0), step: 16*time.Hour + 1,
			wantErr: "forecast.season: must be at least 24h0m0.000000002s, two steps of the load sampled every 16h0m0.000000001s (a season is rounded to whole steps), got 24h0m0s (the default)"},
		{name: "method off builds no forecaster", f: spec(forecast.MethodOff, 20*time.Second), step: time.Minute},
		{name: "no forecast", step: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.CheckStep(tc.step)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if diff := cmp.Diff(tc.wantErr, gotErr); diff != "" {
				t.Errorf("CheckStep(%v) (-want +got):\n%s", tc.step, diff)
			}
			if tc.f == nil || tc.f.MethodOrDefault() == forecast.MethodOff {
				return
			}
			_, fitErr := forecast.Fit(nil, forecast.Options{Method: tc.f.MethodOrDefault(), Season: tc.f.SeasonOrDefault(),
				Step: tc.step, Horizon: tc.step, Quantile: tc.f.QuantileOrDefault()})
			if (fitErr == nil) != (err == nil) {
				t.Errorf("CheckStep(%v) = %v, but forecast.Fit = %v", tc.step, err, fitErr)
			}
		})
	}
	if err := spec("", 0).CheckStep(0); err == nil {
		t.Error("CheckStep(0) = nil, want an error")
	}
}

// TestParseStep checks that a file is judged at the step its forecasts will run at (prescale
// run's interval): the report's seasonal-naive season of 20s passes at the shortest step, 1s,
// and is a problem of the file, with its line, at 15s or a minute.
func TestParseStep(t *testing.T) {
	const yaml = forecastHead + "      load: {query: q, perReplica: auto}\n      method: seasonal-naive\n      season: 20s\n"
	tests := []struct {
		name string
		step time.Duration
		want []string
	}{
		{name: "the shortest step", step: time.Second},
		{name: "below the shortest step, which is taken instead", step: time.Millisecond},
		// 20s is 1.5 steps of 13.333333333s (20s / 1.5, rounded down to the nanosecond):
		// 13.333333333s + (13.333333333s - 6.666666666s) = 20s, the longest step at which
		// it rounds to two; one nanosecond more needs 20.000000001s.
		{name: "the longest step at which 20s rounds to two", step: 13333333333},
		{name: "a nanosecond longer", step: 13333333334, want: []string{
			`policies[0].forecast.season: must be at least 20.000000001s, two steps of the load sampled every 13.333333334s (a season is rounded to whole steps), got 20s (line 10)`}},
		{name: "the default interval, 15s", step: 15 * time.Second, want: []string{
			`policies[0].forecast.season: must be at least 22.5s, two steps of the load sampled every 15s (a season is rounded to whole steps), got 20s (line 10)`}},
		{name: "a minute", step: time.Minute, want: []string{
			`policies[0].forecast.season: must be at least 1m30s, two steps of the load sampled every 1m0s (a season is rounded to whole steps), got 20s (line 10)`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseStep(strings.NewReader(yaml), tc.step)
			if diff := cmp.Diff(tc.want, errorLines(err)); diff != "" {
				t.Errorf("ParseStep(%v) errors (-want +got):\n%s", tc.step, diff)
			}
		})
	}
}
