package policy

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prescale/prescale/forecast"
)

// maxNameLength is the longest name an RFC 1123 label allows.
const maxNameLength = 63

var labelPattern = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

// Validate reports every problem of the file at once, joined with errors.Join; each is a
// *FieldError naming the field's YAML path and the offending value. It mirrors the HPA API's
// validation where the HPA has a rule. Validate neither defaults nor changes f: an unset
// optional field is valid and keeps its nil. It checks the forecasts against the shortest
// step, MinForecastStep; ValidateStep checks them against the step they will run at.
func (f File) Validate() error { return f.ValidateStep(MinForecastStep) }

// ValidateStep is Validate for forecasts whose load is sampled every step (prescale run's
// interval): each forecast must be buildable at that step (Forecast.CheckStep). A step
// shorter than MinForecastStep is taken as MinForecastStep.
func (f File) ValidateStep(step time.Duration) error {
	step = max(step, MinForecastStep)
	var errs []error
	if len(f.Policies) == 0 {
		errs = append(errs, fieldError("policies", "at least one policy is required"))
	}
	type targetKey struct{ group, kind, namespace, name string }
	names := make(map[string]int)
	targets := make(map[targetKey]int)
	served := make(map[string]servedMetric)
	for i, p := range f.Policies {
		path := indexPath("policies", i)
		errs = append(errs, p.validate(path, step)...)
		if p.Name != "" {
			if j, ok := names[p.Name]; ok {
				errs = append(errs, fieldError(joinPath(path, "name"),
					fmt.Sprintf("duplicate policy name %q, also policies[%d]", p.Name, j),
					joinPath(indexPath("policies", j), "name")))
			} else {
				names[p.Name] = i
				errs = append(errs, p.serve(i, served)...)
			}
		}
		t := p.Target
		if t.APIVersion == "" || t.Kind == "" || t.Namespace == "" || t.Name == "" {
			continue
		}
		// Two API versions of one group address the same object.
		group, _, found := strings.Cut(t.APIVersion, "/")
		if !found {
			group = "" // the core group: apiVersion "v1"
		}
		k := targetKey{group, t.Kind, t.Namespace, t.Name}
		if j, ok := targets[k]; ok {
			errs = append(errs, fieldError(joinPath(path, "target"),
				fmt.Sprintf("duplicate target %s, also policies[%d]", t, j),
				joinPath(indexPath("policies", j), "target")))
		} else {
			targets[k] = i
		}
	}
	return errors.Join(errs...)
}

// ForecastExternalMetric is the name, after "<policy>-", of the external metric that serves
// a policy's forecast (scaler/external): "<policy>-forecast-replicas".
const ForecastExternalMetric = "forecast-replicas"

// reservedMetricNames are the names that prescale gives to what is not a policy metric, where
// a policy metric's name would appear too; a metric may not take one. Each says where.
var reservedMetricNames = map[string]string{
	ForecastMetric: "decision records, events and logs name the forecast's proposal so when it wins, " +
		"and prescale_query_warnings_total the forecast's load query",
	"objective":            "prescale_query_warnings_total names the objective's latency query so",
	ForecastExternalMetric: "the external metric \"<policy>-" + ForecastExternalMetric + "\" is the policy's forecast",
}

// servedMetric is what an external metric name stands for: the metric at index metric (-1:
// the forecast) of the policy at index policy, with their names.
type servedMetric struct {
	policy, metric         int
	policyName, metricName string
}

// path returns the YAML path of the served metric's name.
func (m servedMetric) path() string {
	return joinPath(indexPath(joinPath(indexPath("policies", m.policy), "metrics"), m.metric), "name")
}

// String names the served metric for a message.
func (m servedMetric) String() string {
	if m.metric < 0 {
		return fmt.Sprintf("the forecast of policies[%d] (policy %q)", m.policy, m.policyName)
	}
	return fmt.Sprintf("policies[%d].metrics[%d] (policy %q, metric %q)", m.policy, m.metric, m.policyName, m.metricName)
}

// serve adds the external metric names of the policy at index i, whose name is unique so
// far, to served, and returns a problem for each name that another policy already serves.
// The external metrics API (scaler/external) serves "<policy>-<metric>" for every metric and
// "<policy>-forecast-replicas" for every policy, and refuses a name that two of them spell
// (policy "a-b" metric "c", policy "a" metric "b-c"; policy "a-forecast" metric "replicas"
// and policy "a"'s forecast). The file refuses such names first, whether or not the API is
// enabled, so that enabling it needs no rename. The problem names the metric's name field. A
// clash within one policy is the policy's own problem (a duplicate or reserved metric name).
func (p Policy) serve(i int, served map[string]servedMetric) []error {
	var errs []error
	add := func(name string, m servedMetric) {
		first, ok := served[name]
		switch {
		case !ok:
			served[name] = m
		case first.policy == i:
			// within the policy: a duplicate metric name, which validate reports
		case m.metric < 0: // this policy's forecast is what an earlier policy's metric spells
			errs = append(errs, fieldError(first.path(),
				fmt.Sprintf("serves the external metric %q, which %s also serves: rename a policy or the metric", name, m),
				joinPath(indexPath("policies", i), "name")))
		default:
			related := joinPath(indexPath("policies", first.policy), "name")
			if first.metric >= 0 {
				related = first.path()
			}
			errs = append(errs, fieldError(m.path(),
				fmt.Sprintf("serves the external metric %q, which %s also serves: rename a policy or the metric", name, first),
				related))
		}
	}
	add(p.Name+"-"+ForecastExternalMetric, servedMetric{policy: i, metric: -1, policyName: p.Name})
	for j, m := range p.Metrics {
		if m.Name != "" && m.Name != ForecastExternalMetric {
			add(p.Name+"-"+m.Name, servedMetric{policy: i, metric: j, policyName: p.Name, metricName: m.Name})
		}
	}
	return errs
}

// validate returns the problems of one policy, whose YAML path is path, with its forecast's
// load sampled every step.
func (p Policy) validate(path string, step time.Duration) []error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError(joinPath(path, field), fmt.Sprintf(format, args...)))
	}
	errs = append(errs, validateName(joinPath(path, "name"), p.Name)...)

	tp := joinPath(path, "target")
	for _, f := range []struct{ key, value string }{
		{"apiVersion", p.Target.APIVersion},
		{"kind", p.Target.Kind},
		{"namespace", p.Target.Namespace},
		{"name", p.Target.Name},
	} {
		if f.value == "" {
			errs = append(errs, fieldError(joinPath(tp, f.key), "required"))
		}
	}

	if p.MinReplicas != nil && *p.MinReplicas < 0 {
		add("minReplicas", "must be >= 0, got %d", *p.MinReplicas)
	}
	if p.MaxReplicas < 1 {
		add("maxReplicas", "must be >= 1, got %d", p.MaxReplicas)
	} else if p.MinReplicas != nil && *p.MinReplicas > p.MaxReplicas {
		// An unset minReplicas defaults to 1, which any valid maxReplicas allows.
		errs = append(errs, fieldError(joinPath(path, "minReplicas"),
			fmt.Sprintf("must be <= maxReplicas (%d), got %d", p.MaxReplicas, *p.MinReplicas),
			joinPath(path, "maxReplicas")))
	}

	mp := joinPath(path, "metrics")
	if len(p.Metrics) == 0 {
		errs = append(errs, fieldError(mp, "at least one metric is required"))
	}
	seen := make(map[string]int)
	for j, m := range p.Metrics {
		errs = append(errs, m.validate(indexPath(mp, j))...)
		if m.Name == "" {
			continue
		}
		if why, ok := reservedMetricNames[m.Name]; ok {
			errs = append(errs, fieldError(joinPath(indexPath(mp, j), "name"),
				fmt.Sprintf("must not be %q, a name prescale reserves: %s", m.Name, why)))
		}
		if k, ok := seen[m.Name]; ok {
			errs = append(errs, fieldError(joinPath(indexPath(mp, j), "name"),
				fmt.Sprintf("duplicate metric name %q, also metrics[%d]", m.Name, k),
				joinPath(indexPath(mp, k), "name")))
		} else {
			seen[m.Name] = j
		}
	}

	if p.Behavior != nil {
		bp := joinPath(path, "behavior")
		errs = append(errs, p.Behavior.ScaleUp.validate(joinPath(bp, "scaleUp"))...)
		errs = append(errs, p.Behavior.ScaleDown.validate(joinPath(bp, "scaleDown"))...)
	}
	errs = append(errs, p.Forecast.validate(joinPath(path, "forecast"), step)...)
	errs = append(errs, p.Objective.validate(joinPath(path, "objective"), &p)...)
	errs = append(errs, p.Capacity.validate(joinPath(path, "capacity"), path, p.MaxReplicas)...)
	errs = append(errs, p.ScaleToZero.validate(joinPath(path, "scaleToZero"), &p)...)
	return errs
}

// validate returns the problems of a capacity block, whose YAML path is path; policyPath
// and maxReplicas are its policy's. Nil is valid: priority 0, nothing guaranteed.
func (c *Capacity) validate(path, policyPath string, maxReplicas int32) []error {
	if c == nil {
		return nil
	}
	var errs []error
	if pr := c.Priority; pr != nil && (*pr < MinPriority || *pr > MaxPriority) {
		errs = append(errs, fieldError(joinPath(path, "priority"),
			fmt.Sprintf("must be %d..%d, got %d", MinPriority, MaxPriority, *pr)))
	}
	if g := c.Guaranteed; g != nil {
		switch {
		case *g < 0:
			errs = append(errs, fieldError(joinPath(path, "guaranteed"), fmt.Sprintf("must be >= 0, got %d", *g)))
		case maxReplicas >= 1 && *g > maxReplicas:
			errs = append(errs, fieldError(joinPath(path, "guaranteed"),
				fmt.Sprintf("must be <= maxReplicas (%d), got %d", maxReplicas, *g), joinPath(policyPath, "maxReplicas")))
		}
	}
	return errs
}

// validateName checks a policy or metric name: a lowercase RFC 1123 label.
func validateName(path, name string) []error {
	switch {
	case name == "":
		return []error{fieldError(path, "required")}
	case len(name) > maxNameLength || !labelPattern.MatchString(name):
		return []error{fieldError(path, fmt.Sprintf(
			"must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most %d characters), got %q",
			maxNameLength, name))}
	}
	return nil
}

// validate returns the problems of one metric, whose YAML path is path.
func (m Metric) validate(path string) []error {
	errs := validateName(joinPath(path, "name"), m.Name)
	qp := joinPath(path, "query")
	switch {
	case m.Query == "":
		errs = append(errs, fieldError(qp, "required"))
	case strings.TrimSpace(m.Query) == "":
		errs = append(errs, fieldError(qp, fmt.Sprintf("must not be blank, got %q", m.Query)))
	}

	tp := joinPath(path, "target")
	var want, other string // the YAML keys of the quantity Type names, and of the other one
	var wantQ, otherQ *Quantity
	switch m.Target.Type {
	case AverageValue:
		want, wantQ, other, otherQ = "averageValue", m.Target.AverageValue, "value", m.Target.Value
	case Value:
		want, wantQ, other, otherQ = "value", m.Target.Value, "averageValue", m.Target.AverageValue
	case "":
		return append(errs, fieldError(joinPath(tp, "type"), "required (AverageValue or Value)"))
	default:
		return append(errs, fieldError(joinPath(tp, "type"),
			fmt.Sprintf("must be AverageValue or Value, got %q", m.Target.Type)))
	}
	switch {
	case wantQ == nil:
		errs = append(errs, fieldError(joinPath(tp, want),
			fmt.Sprintf("required when type is %s", m.Target.Type), joinPath(tp, "type")))
	case wantQ.Float64() <= 0:
		errs = append(errs, fieldError(joinPath(tp, want), fmt.Sprintf("must be > 0, got %s", wantQ)))
	}
	if otherQ != nil {
		errs = append(errs, fieldError(joinPath(tp, other),
			fmt.Sprintf("must not be set when type is %s, got %s", m.Target.Type, otherQ),
			joinPath(tp, "type")))
	}
	return errs
}

// validate returns the problems of one direction's rules, whose YAML path is path. Nil rules
// are valid: they take the direction's defaults.
func (r *Rules) validate(path string) []error {
	if r == nil {
		return nil
	}
	var errs []error
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > MaxStabilizationWindowSeconds) {
		errs = append(errs, fieldError(joinPath(path, "stabilizationWindowSeconds"),
			fmt.Sprintf("must be 0..%d, got %d", MaxStabilizationWindowSeconds, *w)))
	}
	if s := r.SelectPolicy; s != nil {
		switch *s {
		case SelectMax, SelectMin, SelectDisabled:
		default:
			errs = append(errs, fieldError(joinPath(path, "selectPolicy"),
				fmt.Sprintf("must be Max, Min or Disabled, got %q", *s)))
		}
	}
	pp := joinPath(path, "policies")
	// A nil list takes the default policies; a list given empty is an error, as in the HPA.
	if r.Policies != nil && len(r.Policies) == 0 {
		errs = append(errs, fieldError(pp, "must list at least one policy when given, got an empty list"))
	}
	for k, rp := range r.Policies {
		errs = append(errs, rp.validate(indexPath(pp, k))...)
	}
	if t := r.Tolerance; t != nil && t.Float64() < 0 {
		errs = append(errs, fieldError(joinPath(path, "tolerance"), fmt.Sprintf("must be >= 0, got %s", t)))
	}
	return errs
}

// validate returns the problems of one rate policy, whose YAML path is path.
func (rp RatePolicy) validate(path string) []error {
	var errs []error
	switch rp.Type {
	case PodsPolicy, PercentPolicy:
	case "":
		errs = append(errs, fieldError(joinPath(path, "type"), "required (Pods or Percent)"))
	default:
		errs = append(errs, fieldError(joinPath(path, "type"), fmt.Sprintf("must be Pods or Percent, got %q", rp.Type)))
	}
	if rp.Value <= 0 {
		errs = append(errs, fieldError(joinPath(path, "value"), fmt.Sprintf("must be > 0, got %d", rp.Value)))
	}
	if rp.PeriodSeconds < 1 || rp.PeriodSeconds > MaxPeriodSeconds {
		errs = append(errs, fieldError(joinPath(path, "periodSeconds"),
			fmt.Sprintf("must be 1..%d, got %d", MaxPeriodSeconds, rp.PeriodSeconds)))
	}
	return errs
}

// validate returns the problems of a forecast block, whose YAML path is path, with its load
// sampled every step. Nil is valid: no forecast.
func (f *Forecast) validate(path string, step time.Duration) []error {
	if f == nil {
		return nil
	}
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fieldError(joinPath(path, field), fmt.Sprintf(format, args...)))
	}
	switch {
	case f.Load.Query == "":
		add("load.query", "required")
	case strings.TrimSpace(f.Load.Query) == "":
		add("load.query", "must not be blank, got %q", f.Load.Query)
	}
	switch pr := f.Load.PerReplica; {
	case !pr.Set():
		add("load.perReplica", "required (a number > 0 or \"auto\")")
	case !pr.Auto && !(pr.Value > 0):
		add("load.perReplica", "must be > 0 or \"auto\", got %s", pr)
	}
	switch f.Method {
	case "", forecast.MethodAuto, forecast.MethodHolt, forecast.MethodLinear, forecast.MethodOff,
		forecast.MethodHoltWinters, forecast.MethodSeasonalNaive:
	default:
		add("method", "must be auto, holt, holt-winters, seasonal-naive, linear or off, got %q", f.Method)
	}
	if s := f.Season; s != nil && (s.Duration <= 0 || s.Duration > MaxForecastSeason) {
		add("season", "must be > 0 and at most 7d (%v), got %s", MaxForecastSeason, s)
	} else if msg := f.seasonProblem(step); msg != "" {
		add("season", "%s", msg)
	}
	if h := f.Horizon; h != nil && !h.Auto && (h.Duration < MinForecastHorizon || h.Duration > MaxForecastHorizon) {
		add("horizon", "must be \"auto\" or %v..%v, got %s", MinForecastHorizon, MaxForecastHorizon, h)
	}
	if h := f.History; h != nil && (h.Duration < 0 || h.Duration > MaxForecastHistory) {
		add("history", "must be 0..90d, got %s", h)
	}
	if q := f.Quantile; q != nil && !(*q >= MinForecastQuantile && *q <= MaxForecastQuantile) {
		add("quantile", "must be within [%v, %v], got %v", MinForecastQuantile, MaxForecastQuantile, *q)
	}
	if h := f.Hold; h != nil && (h.Duration < 0 || h.Duration > MaxForecastHold) {
		add("hold", "must be 0..24h, got %s", h)
	}
	if g := f.Gate; g != nil {
		if g.MaxError != nil && !(*g.MaxError > 0) {
			add("gate.maxError", "must be > 0, got %v", *g.MaxError)
		}
		if g.Window != nil && (g.Window.Duration <= 0 || g.Window.Duration > MaxGateWindow) {
			add("gate.window", "must be > 0 and at most 7d (%v), got %s", MaxGateWindow, g.Window)
		}
	}
	return errs
}
