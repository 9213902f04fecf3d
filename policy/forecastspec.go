package policy

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prescale/prescale/forecast"
	"go.yaml.in/yaml/v3"
)

// Forecast is a policy's forecast block: predict the load one pod start-up ahead and keep
// enough replicas for it. Its proposal, ceil(forecast quantile at now + horizon /
// perReplica), joins the metrics' maximum before behavior and limits, so the forecast only
// adds capacity ahead of load; scale-down stays with the reactive rules.
type Forecast struct {
	Load Load `yaml:"load"`
	// Method is one of auto, holt, holt-winters, seasonal-naive, linear, off; default auto.
	Method forecast.Method `yaml:"method"`
	// Season is the seasonal cycle of holt-winters and seasonal-naive; default 24h.
	Season *Duration `yaml:"season"`
	// Horizon is how far ahead to plan: "auto" (the default) is the measured start-up time
	// plus one tick, or a duration within 1s..1h.
	Horizon *AutoDuration `yaml:"horizon"`
	// History is how much load history to fit on at start-up, 0..90d; default 14d.
	History *Duration `yaml:"history"`
	// Quantile of the forecast to plan for, within [0.5, 0.999]; default 0.9.
	Quantile *float64 `yaml:"quantile"`
	// Gate turns the forecast off while it is inaccurate; default {maxError: 0.3, window: 2h}.
	Gate *GateSpec `yaml:"gate"`
	// Hold keeps the forecast's plan for this long after it falls: the load planned for
	// is the largest planned over the last Hold, 0..24h. Default: 1h with an objective, 0
	// without.
	Hold *Duration `yaml:"hold"`
}

// Load is the demand the forecast predicts.
type Load struct {
	// Query is the PromQL of the total demand, for example requests/s.
	Query string `yaml:"query"`
	// PerReplica is the demand one replica carries at target, or "auto" (learned).
	PerReplica AutoFloat `yaml:"perReplica"`
}

// GateSpec is the accuracy gate: while the forecast's under-prediction rate over Window
// (the fraction of comparisons in which the load exceeded the planned quantile Hi of the
// prediction made one horizon before) is above MaxError, the forecast is gated off.
type GateSpec struct {
	MaxError *float64  `yaml:"maxError"`
	Window   *Duration `yaml:"window"`
}

// Forecast defaults.
const (
	DefaultForecastMethod   = forecast.MethodAuto
	DefaultForecastSeason   = 24 * time.Hour
	DefaultForecastHistory  = 14 * 24 * time.Hour
	DefaultForecastQuantile = 0.9
	DefaultGateMaxError     = 0.3
	DefaultGateWindow       = 2 * time.Hour
	// MaxGateWindow bounds gate.window, one week. A forecast proposes nothing until it has
	// seen one window of samples (history included), so a longer window would leave a
	// policy without history reactive for longer than a week, and one longer than
	// forecast.history (default 14d) could not warm up from its history at start-up; the
	// gate keeps one comparison per load sample of the window (a week at the shortest
	// interval, 1s, is 604,800 of them, about 30 MB); and a failing forecast is gated
	// only once its misses dominate the window, which a week already takes days to do.
	MaxGateWindow      = 7 * 24 * time.Hour
	MaxForecastHistory = 90 * 24 * time.Hour
	MinForecastHorizon = time.Second
	MaxForecastHorizon = time.Hour
	// DefaultObjectiveHold is forecast.hold's default with an objective.
	DefaultObjectiveHold = 90 * time.Minute
	MaxForecastHold      = 24 * time.Hour
	MinForecastQuantile  = 0.5
	MaxForecastQuantile  = 0.999
	// MinForecastStep is the shortest sampling step the engine's forecast predictor is built with (the
	// controller's shortest interval): File.Validate checks the season against it, and
	// ParseStep, File.ValidateStep and Forecast.CheckStep against the step given.
	MinForecastStep = time.Second
	// MaxForecastSeason bounds forecast.season, one week, the longest cycle of request
	// load. The forecasters keep a few values per step of a season (holt-winters three,
	// seasonal-naive one): at the 1s shortest interval a week is 604,800 steps, about 20 MB
	// for auto's candidates, where 1000w would take gigabytes at the first sample.
	MaxForecastSeason = 7 * 24 * time.Hour
)

// MinSeason returns the shortest season a forecaster sampled every step can be built with:
// the forecast package rounds the season to the nearest whole number of steps, which must
// be at least two, so 1.5 steps (2*step - step/2, as its rounding computes it). step must be
// > 0; a step so long that the result would overflow gives the longest duration.
func MinSeason(step time.Duration) time.Duration {
	if m := step + (step - step/2); m > 0 {
		return m
	}
	return maxDuration
}

// CheckStep reports whether the forecast can be built with its load sampled every step:
// prescale run's interval, replay's --interval, and the backtest's one-minute load step.
// The forecaster is fitted with the season (set, or the 24h default) at every method but
// off, and refuses one shorter than MinSeason(step). It returns nil for a nil forecast and
// for method off, else a *FieldError whose Path, "forecast.season", is relative to the
// policy and whose message says the season, the step and the shortest season allowed; a
// driver that samples the load at another step than the interval the file was validated
// for (the backtest) calls it before building the forecast. f must have passed Validate.
func (f *Forecast) CheckStep(step time.Duration) error {
	if step <= 0 {
		return fmt.Errorf("check forecast against the load's step: the step must be > 0, got %v", step)
	}
	if msg := f.seasonProblem(step); msg != "" {
		return fieldError("forecast.season", msg)
	}
	return nil
}

// seasonProblem returns what is wrong with the season at step, "" if nothing is. A season
// out of its own range (<= 0, > MaxForecastSeason) is Validate's problem, not this one's.
func (f *Forecast) seasonProblem(step time.Duration) string {
	if f == nil || f.MethodOrDefault() == forecast.MethodOff {
		return ""
	}
	season := f.SeasonOrDefault()
	if season <= 0 || season > MaxForecastSeason || season >= MinSeason(step) {
		return ""
	}
	def := ""
	if f.Season == nil {
		def = " (the default)"
	}
	return fmt.Sprintf("must be at least %v, two steps of the load sampled every %v (a season is rounded to whole steps), got %v%s",
		MinSeason(step), step, season, def)
}

// MethodOrDefault returns the method, auto when unset.
func (f *Forecast) MethodOrDefault() forecast.Method {
	if f.Method == "" {
		return DefaultForecastMethod
	}
	return f.Method
}

// SeasonOrDefault returns the season, 24h when unset.
func (f *Forecast) SeasonOrDefault() time.Duration {
	if f.Season == nil {
		return DefaultForecastSeason
	}
	return f.Season.Duration
}

// HoldFor returns the hold: the configured one, or its default for a policy with an
// objective (1h) or without (0).
func (f *Forecast) HoldFor(objective bool) time.Duration {
	switch {
	case f.Hold != nil:
		return f.Hold.Duration
	case objective:
		return DefaultObjectiveHold
	}
	return 0
}

// HistoryOrDefault returns how much history to load, 14d when unset.
func (f *Forecast) HistoryOrDefault() time.Duration {
	if f.History == nil {
		return DefaultForecastHistory
	}
	return f.History.Duration
}

// QuantileOrDefault returns the quantile, 0.9 when unset.
func (f *Forecast) QuantileOrDefault() float64 {
	if f.Quantile == nil {
		return DefaultForecastQuantile
	}
	return *f.Quantile
}

// HorizonFor returns the horizon: the configured duration, or, when it is unset or "auto",
// startup + tick + lag, where lag is how far the load query trails the demand it measures
// (half of rate(...[1m])'s window: 30 s).
func (f *Forecast) HorizonFor(startup, tick, lag time.Duration) time.Duration {
	if f.Horizon == nil || f.Horizon.Auto {
		return startup + tick + lag
	}
	return f.Horizon.Duration
}

// GateOrDefault returns the gate's maxError and window with their defaults.
func (f *Forecast) GateOrDefault() (maxError float64, window time.Duration) {
	maxError, window = DefaultGateMaxError, DefaultGateWindow
	if f.Gate != nil && f.Gate.MaxError != nil {
		maxError = *f.Gate.MaxError
	}
	if f.Gate != nil && f.Gate.Window != nil {
		window = f.Gate.Window.Duration
	}
	return maxError, window
}

// Duration is a time.Duration written as Go writes durations ("90s", "1h30m") or with the
// day and week suffixes "d" (24h) and "w" (7d), alone or first: "14d", "1w2d", "1d12h".
type Duration struct{ time.Duration }

// maxDuration is the longest time.Duration: 2562047h47m16.854775807s, about 292 years
// (15250w1d23h47m16.854775807s).
const maxDuration = time.Duration(math.MaxInt64)

// goDuration matches the syntax of time.ParseDuration without a sign: one or more decimal
// numbers, each with a unit. A text that matches it and that time.ParseDuration refuses is
// out of range, not malformed.
var goDuration = regexp.MustCompile(`^\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$`)

// ParseDuration parses a Duration. A duration longer than the longest time.Duration (about
// 292 years) is an error, never a value that wrapped around: "30500w4d" or "15251w" are
// refused, with the text, rather than read as 1526 s or a negative duration.
func ParseDuration(s string) (Duration, error) {
	rest := strings.TrimSpace(s)
	if rest == "" {
		return Duration{}, fmt.Errorf("%q is not a duration (such as 90s, 2h or 14d)", s)
	}
	tooLong := func() error {
		return fmt.Errorf("%q is longer than the longest duration, %v (about 292 years)", s, maxDuration)
	}
	var total time.Duration
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		i := strings.Index(rest, u.suffix)
		if i < 0 {
			continue
		}
		n, err := strconv.ParseUint(rest[:i], 10, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			return Duration{}, tooLong()
		case err != nil:
			return Duration{}, fmt.Errorf("%q is not a duration (such as 90s, 2h or 14d)", s)
		case n > uint64((maxDuration-total)/u.unit):
			// checked before n*unit and the sum are made, either of which would wrap
			// around (30500w is 1.8e19 ns: it wrapped to -344073s)
			return Duration{}, tooLong()
		}
		total += time.Duration(n) * u.unit
		rest = rest[i+1:]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		switch {
		case err != nil && goDuration.MatchString(rest):
			return Duration{}, tooLong() // time.ParseDuration refuses overflow
		case err != nil || d < 0:
			return Duration{}, fmt.Errorf("%q is not a duration (such as 90s, 2h or 14d)", s)
		case d > maxDuration-total:
			return Duration{}, tooLong()
		}
		total += d
	}
	return Duration{total}, nil
}

// String writes the duration as Go does.
func (d Duration) String() string { return d.Duration.String() }

// UnmarshalYAML reads a duration scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("want a duration (such as 90s, 2h or 14d), got %s", describe(n))
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// AutoDuration is "auto" or a Duration.
type AutoDuration struct {
	Auto     bool
	Duration time.Duration
}

// UnmarshalYAML reads "auto" or a duration.
func (a *AutoDuration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "auto" {
		*a = AutoDuration{Auto: true}
		return nil
	}
	var d Duration
	if err := d.UnmarshalYAML(n); err != nil {
		return fmt.Errorf("want \"auto\" or a duration (such as 90s), got %s", describe(n))
	}
	*a = AutoDuration{Duration: d.Duration}
	return nil
}

// String returns "auto" or the duration.
func (a AutoDuration) String() string {
	if a.Auto {
		return "auto"
	}
	return a.Duration.String()
}

// AutoFloat is "auto" or a number. The zero value is neither (unset).
type AutoFloat struct {
	Auto  bool
	Value float64
	set   bool
}

// NewAutoFloat returns the number v; AutoFloat{Auto: true} is "auto".
func NewAutoFloat(v float64) AutoFloat { return AutoFloat{Value: v, set: true} }

// Set reports whether the field was given.
func (a AutoFloat) Set() bool { return a.Auto || a.set }

// UnmarshalYAML reads "auto" or a number.
func (a *AutoFloat) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Value == "auto" {
		*a = AutoFloat{Auto: true}
		return nil
	}
	v, err := decodeFloat(n)
	if err != nil {
		return fmt.Errorf("want \"auto\" or a number, got %s", describe(n))
	}
	*a = NewAutoFloat(v)
	return nil
}

// String returns "auto", the number, or "" when unset.
func (a AutoFloat) String() string {
	switch {
	case a.Auto:
		return "auto"
	case a.set:
		return strconv.FormatFloat(a.Value, 'g', -1, 64)
	}
	return ""
}

// decodeFloat reads a finite YAML number.
func decodeFloat(n *yaml.Node) (float64, error) {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil {
		return 0, fmt.Errorf("want a number, got %s", describe(n))
	}
	if v != v || v > 1e300 || v < -1e300 {
		return 0, fmt.Errorf("want a finite number, got %s", n.Value)
	}
	return v, nil
}
