package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// objectivePolicy is a policy with a forecast and the objective body given, indented as
// the objective block's fields.
func objectivePolicy(forecast, objective string) string {
	return `policies:
  - name: m
    target: {apiVersion: apps/v1, kind: Deployment, namespace: ns, name: m}
    maxReplicas: 8
    metrics:
      - {name: gpu, query: gpu, target: {type: AverageValue, averageValue: 70}}
` + forecast + `    objective:
` + objective
}

const withForecast = `    forecast:
      load: {query: rps, perReplica: auto}
`

func TestParseObjective(t *testing.T) {
	tests := []struct {
		name, budget string
		want         float64
	}{
		{"a fraction", "0.001", 0.001},
		{"a percentage", `"0.1%"`, 0.001},
		{"a bare percentage", "2.5%", 0.025},
		{"the largest", "50%", 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(objectivePolicy(withForecast,
				"      query: max(delay_seconds)\n      slo: 2s\n      budget: "+tc.budget+"\n")))
			if err != nil {
				t.Fatal(err)
			}
			o := f.Policies[0].Objective
			if o == nil || o.Query != "max(delay_seconds)" || o.SLOSeconds() != 2 {
				t.Fatalf("objective = %+v, want query max(delay_seconds), slo 2s", o)
			}
			if got := o.BudgetFraction(); got < tc.want*(1-1e-12) || got > tc.want*(1+1e-12) {
				t.Errorf("budget = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseObjectiveErrors(t *testing.T) {
	tests := []struct {
		name, forecast, objective string
		want                      []string
	}{
		{
			name:      "every field missing",
			forecast:  withForecast,
			objective: "      {}\n",
			// On one line, in the order of their paths.
			want: []string{
				"policies[0].objective.budget: required: the share of minutes allowed over the SLO, such as 0.1% (line 9)",
				"policies[0].objective.query: required: the PromQL of the latency the SLO bounds, in seconds (line 9)",
				"policies[0].objective.slo: required: the most latency allowed, such as 2s (line 9)",
			},
		},
		{
			name:      "out of range",
			forecast:  withForecast,
			objective: "      query: ' '\n      slo: 2h\n      budget: 0.6\n",
			want: []string{
				`policies[0].objective.query: must not be blank, got " " (line 10)`,
				"policies[0].objective.slo: must be within (0, 1h0m0s], got 2h0m0s (line 11)",
				"policies[0].objective.budget: must be within (0, 50%], got 60% (line 12)",
			},
		},
		{
			name:      "a zero budget and a zero slo",
			forecast:  withForecast,
			objective: "      query: d\n      slo: 0s\n      budget: 0%\n",
			want: []string{
				"policies[0].objective.slo: must be within (0, 1h0m0s], got 0s (line 11)",
				"policies[0].objective.budget: must be within (0, 50%], got 0% (line 12)",
			},
		},
		{
			name:      "a blank waiting query",
			forecast:  withForecast,
			objective: "      query: d\n      slo: 2s\n      budget: 0.1%\n      waiting: ' '\n",
			want:      []string{`policies[0].objective.waiting: must not be blank, got " " (line 13)`},
		},
		{
			name:      "a waiting query that repeats the latency's",
			forecast:  withForecast,
			objective: "      query: max(d)\n      slo: 2s\n      budget: 0.1%\n      waiting: ' max(d) '\n",
			want:      []string{`policies[0].objective.waiting: must count the requests that wait, not repeat objective.query, got " max(d) " (line 13)`},
		},
		{
			name:      "not a number",
			forecast:  withForecast,
			objective: "      query: d\n      slo: 2s\n      budget: lots\n",
			want:      []string{`policies[0].objective.budget: want a fraction (0.001) or a percentage ("0.1%"), got "lots" (line 12)`},
		},
		{
			name:      "a bad percentage",
			forecast:  withForecast,
			objective: "      query: d\n      slo: 2s\n      budget: 'x%'\n",
			want:      []string{`policies[0].objective.budget: want a fraction (0.001) or a percentage ("0.1%"), got "x%" (line 12)`},
		},
		{
			name:      "no forecast to act through",
			objective: "      query: d\n      slo: 2s\n      budget: 0.1%\n",
			want: []string{"policies[0].objective: needs a forecast: the objective holds the SLO by choosing the quantile of the load " +
				"the forecast plans for; add a forecast block (forecast.load) or remove the objective (line 7)"},
		},
		{
			name:      "a forecast that is off",
			forecast:  withForecast + "      method: off\n",
			objective: "      query: d\n      slo: 2s\n      budget: 0.1%\n",
			want: []string{"policies[0].objective: needs a forecast: the objective holds the SLO by choosing the quantile of the load " +
				"the forecast plans for; add a forecast block (forecast.load) or remove the objective (line 10)"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(objectivePolicy(tc.forecast, tc.objective)))
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tc.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestForecastHold(t *testing.T) {
	parseHold := func(hold string) (File, error) {
		return Parse(strings.NewReader(objectivePolicy(withForecast+hold, "      query: d\n      slo: 2s\n      budget: 0.1%\n")))
	}
	f, err := parseHold("")
	if err != nil {
		t.Fatal(err)
	}
	p := f.Policies[0]
	if got := p.Forecast.HoldFor(p.Objective != nil); got != 90*time.Minute {
		t.Errorf("hold with an objective = %v, want 90m", got)
	}
	if got := p.Forecast.HoldFor(false); got != 0 {
		t.Errorf("hold without an objective = %v, want 0", got)
	}
	if f, err = parseHold("      hold: 10m\n"); err != nil || f.Policies[0].Forecast.HoldFor(true) != 10*time.Minute {
		t.Errorf("hold: 10m: %v, %v; want 10m", err, f)
	}
	_, err = parseHold("      hold: 25h\n")
	if want := "policies[0].forecast.hold: must be 0..24h, got 25h0m0s (line 9)"; err == nil || err.Error() != want {
		t.Errorf("hold: 25h: error %v, want %q", err, want)
	}
}
