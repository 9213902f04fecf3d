package policy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Objective is the service level a policy holds at the least GPU cost: at most Budget of the
// minutes may see the latency that Query measures above SLO. With an objective the policy
// plans its forecast for a quantile that it adapts, minute by minute, to the violations it
// observes (see engine.Objective); forecast.quantile, when set, overrides that quantile and
// the objective is then only measured.
type Objective struct {
	// Query is the PromQL of the latency the SLO bounds, in seconds, as one series or a
	// scalar: the service's queueing delay, or a histogram_quantile of its request latency.
	Query string `yaml:"query"`
	// SLO is the most latency allowed.
	SLO *Duration `yaml:"slo"`
	// Budget is the share of minutes allowed over the SLO: a fraction (0.001) or a
	// percentage ("0.1%"), within (0, 50%].
	Budget *Fraction `yaml:"budget"`
	// Waiting, optional, is the PromQL of the requests that wait to be served (one series,
	// a scalar, or one series per pod, summed), such as sum(vllm:num_requests_waiting). It
	// tells an overloaded minute from a blank one: a sync without a latency sample while
	// requests wait is over the SLO (a histogram_quantile is NaN when nothing got served in
	// its window, which is what an overload looks like). Without it such a sync is missing.
	Waiting string `yaml:"waiting,omitempty"`
}

// Objective limits.
const (
	MaxObjectiveSLO    = time.Hour
	MaxObjectiveBudget = 0.5
)

// Fraction is a share, written as a number (0.001) or a percentage ("0.1%").
type Fraction float64

// UnmarshalYAML reads a number or a percentage.
func (f *Fraction) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && strings.HasSuffix(n.Value, "%") {
		v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(n.Value, "%")), 64)
		if err != nil || v != v || v > 1e300 || v < -1e300 {
			return fmt.Errorf("want a fraction (0.001) or a percentage (\"0.1%%\"), got %q", n.Value)
		}
		*f = Fraction(v / 100)
		return nil
	}
	v, err := decodeFloat(n)
	if err != nil {
		return fmt.Errorf("want a fraction (0.001) or a percentage (\"0.1%%\"), got %s", describe(n))
	}
	*f = Fraction(v)
	return nil
}

// String writes the fraction as a percentage.
func (f Fraction) String() string {
	return strconv.FormatFloat(float64(f)*100, 'g', -1, 64) + "%"
}

func (o *Objective) validate(path string, p *Policy) []error {
	if o == nil {
		return nil
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError(joinPath(path, field), fmt.Sprintf(format, args...)))
	}
	switch {
	case o.Query == "":
		add("query", "required: the PromQL of the latency the SLO bounds, in seconds")
	case strings.TrimSpace(o.Query) == "":
		add("query", "must not be blank, got %q", o.Query)
	}
	switch w := o.Waiting; {
	case w == "":
	case strings.TrimSpace(w) == "":
		add("waiting", "must not be blank, got %q", w)
	case strings.TrimSpace(w) == strings.TrimSpace(o.Query):
		add("waiting", "must count the requests that wait, not repeat objective.query, got %q", w)
	}
	switch {
	case o.SLO == nil:
		add("slo", "required: the most latency allowed, such as 2s")
	case o.SLO.Duration <= 0 || o.SLO.Duration > MaxObjectiveSLO:
		add("slo", "must be within (0, %v], got %s", MaxObjectiveSLO, o.SLO)
	}
	switch b := o.Budget; {
	case b == nil:
		add("budget", "required: the share of minutes allowed over the SLO, such as 0.1%%")
	case !(*b > 0 && *b <= MaxObjectiveBudget):
		add("budget", "must be within (0, 50%%], got %s", b)
	}
	if p.Forecast == nil || p.Forecast.Method == "off" {
		errs = append(errs, fieldError(path, "needs a forecast: the objective holds the SLO by choosing the quantile of the load the forecast plans for; add a forecast block (forecast.load) or remove the objective"))
	}
	return errs
}

// SLOSeconds returns the SLO in seconds.
func (o *Objective) SLOSeconds() float64 { return o.SLO.Seconds() }

// BudgetFraction returns the budget as a fraction.
func (o *Objective) BudgetFraction() float64 { return float64(*o.Budget) }
