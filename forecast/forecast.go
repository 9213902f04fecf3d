package forecast

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Sample is one observation of the load (requests/s, or any non-negative rate) at a time.
type Sample struct {
	At    time.Time
	Value float64
}

// Prediction is a point forecast and an interval around it. All three are finite and
// non-negative, and Lo <= Point <= Hi.
type Prediction struct {
	Point, Lo, Hi float64
}

// Forecaster is one method's state.
//
// Update consumes one sample in O(1) amortised time (a gap costs one step per missing
// slot, see the package doc). Predict gives the point forecast h after the last accepted
// sample and an interval from the empirical residuals at the fitted horizon; ok is false
// while the method has too little data. Name is the method's name.
type Forecaster interface {
	Update(s Sample)
	Predict(h time.Duration, quantile float64) (p Prediction, ok bool)
	Name() string
}

// Method names a forecasting method, as written in a policy file.
type Method string

// The methods. MethodOff gives a forecaster that never predicts.
const (
	MethodAuto          Method = "auto"
	MethodHolt          Method = "holt"
	MethodHoltWinters   Method = "holt-winters"
	MethodSeasonalNaive Method = "seasonal-naive"
	MethodLinear        Method = "linear"
	MethodOff           Method = "off"
)

// Options configure Fit.
type Options struct {
	// Method to fit; "" means MethodAuto.
	Method Method
	// Season is the length of the one seasonal cycle (for example 24h); 0 means none.
	// It is rounded to a whole number of Steps and must be at least 2 Steps if set.
	Season time.Duration
	// Step is the sampling grid: samples are placed on slots Step apart (required, > 0).
	Step time.Duration
	// Horizon is how far ahead the forecast matters (start-up time plus one tick). The
	// parameters are fitted on the error ceil(Horizon/Step) steps ahead, and the
	// intervals come from the residuals at that horizon (required, > 0).
	Horizon time.Duration
	// Quantile is the quantile the caller plans for (Predict takes its own): Auto
	// chooses the method with the lowest recent pinball loss at it. 0 means none: Auto
	// chooses by the point's mean absolute error. If set it must be in (0, 1).
	Quantile float64
}

// maxValue bounds accepted sample values: larger ones, like NaN, ±Inf and negatives,
// are ignored, which keeps every sum and product finite.
const maxValue = 1e15

// maxGap is how long a gap Update fills, slot by slot; after a longer one the
// forecaster starts again from the new sample.
const maxGap = 24 * time.Hour

// ErrOptions is wrapped by every error Fit returns for invalid Options.
var ErrOptions = errors.New("invalid forecast options")

func (o Options) steps() (horizon, season int, err error) {
	var errs []error
	if o.Step <= 0 {
		errs = append(errs, fmt.Errorf("step: must be > 0, got %v", o.Step))
	}
	if o.Horizon <= 0 {
		errs = append(errs, fmt.Errorf("horizon: must be > 0, got %v", o.Horizon))
	}
	if o.Season < 0 {
		errs = append(errs, fmt.Errorf("season: must be >= 0, got %v", o.Season))
	}
	if o.Quantile != 0 && !(o.Quantile > 0 && o.Quantile < 1) {
		errs = append(errs, fmt.Errorf("quantile: must be in (0, 1), got %v", o.Quantile))
	}
	switch o.Method {
	case "", MethodAuto, MethodHolt, MethodHoltWinters, MethodSeasonalNaive, MethodLinear, MethodOff:
	default:
		errs = append(errs, fmt.Errorf("method: unknown %q", o.Method))
	}
	if len(errs) > 0 {
		return 0, 0, fmt.Errorf("%w: %w", ErrOptions, errors.Join(errs...))
	}
	horizon = int((o.Horizon + o.Step - 1) / o.Step)
	season = int((o.Season + o.Step/2) / o.Step)
	if o.Season > 0 && season < 2 {
		return 0, 0, fmt.Errorf("%w: season: must be at least 2 steps (%v), got %v", ErrOptions, 2*o.Step, o.Season)
	}
	if (o.Method == MethodHoltWinters || o.Method == MethodSeasonalNaive) && season == 0 {
		return 0, 0, fmt.Errorf("%w: season: method %s needs a season", ErrOptions, o.Method)
	}
	return horizon, season, nil
}

// valid reports whether a sample value is usable.
func valid(v float64) bool { return v >= 0 && v <= maxValue }

// finite reports whether v is neither NaN nor ±Inf.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
