package forecast

import (
	"fmt"
	"time"
)

// Auto runs several methods side by side and predicts with the one whose recent loss at
// the fitted horizon, over its last residuals (up to 1,000), is lowest: with
// Options.Quantile q set, the mean pinball loss at q of each method's q-quantile
// forecast (its point plus its residuals' q-quantile, what a caller planning at q uses)
// made one horizon before; without, the mean absolute error of its point. The pinball
// loss charges q per unit of load above the planned quantile and 1 − q per unit below,
// the asymmetric cost of a floor planned at q, and its expectation is least for the true
// q-quantile. The choice is re-made on every Update. Until a method has 20 residuals it is not compared;
// if none has, the first ready one in the order holt-winters, holt, linear,
// seasonal-naive is used. Holt-Winters needs two seasons: until then Auto falls back to
// another method and Chosen says so. Build it with Fit.
type Auto struct {
	cands    []Forecaster
	chosen   int // index into cands, -1 if none is ready
	compared bool
	bestErr  float64
	q        float64 // Options.Quantile, for Chosen's reason
}

// Update implements Forecaster: every method consumes the sample, then the choice is
// re-made.
func (f *Auto) Update(x Sample) {
	for _, c := range f.cands {
		c.Update(x)
	}
	f.choose()
}

// Predict implements Forecaster with the chosen method.
func (f *Auto) Predict(h time.Duration, q float64) (Prediction, bool) {
	if f.chosen < 0 {
		return Prediction{}, false
	}
	return f.cands[f.chosen].Predict(h, q)
}

// Name implements Forecaster: "auto".
func (f *Auto) Name() string { return string(MethodAuto) }

// Chosen is the method Auto predicts with ("" while none is ready) and why, for the
// caller's decision record.
func (f *Auto) Chosen() (m Method, why string) {
	why = f.reason(f.compared, f.bestErr)
	if f.chosen < 0 {
		return "", why
	}
	return Method(f.cands[f.chosen].Name()), why
}

// Method is the method Auto predicts with ("" while none is ready): Chosen without the
// reason, which costs a formatted string per call.
func (f *Auto) Method() Method {
	if f.chosen < 0 {
		return ""
	}
	return Method(f.cands[f.chosen].Name())
}

// Methods are the forecasters Auto chooses among, in preference order.
func (f *Auto) Methods() []Forecaster { return f.cands }

// candidate is a method Auto can compare: its series (residuals, losses) and model.
type candidate interface {
	parts() (*series, model)
}

func (f *Holt) parts() (*series, model)          { return &f.s, &f.m }
func (f *HoltWinters) parts() (*series, model)   { return &f.s, &f.m }
func (f *SeasonalNaive) parts() (*series, model) { return &f.s, &f.m }
func (f *Linear) parts() (*series, model)        { return &f.s, &f.m }

// seriesOf is a method's series, nil for a forecaster that has none.
func seriesOf(c Forecaster) *series {
	if c, ok := c.(candidate); ok {
		s, _ := c.parts()
		return s
	}
	return nil
}

func errorOf(c Forecaster) (float64, bool) {
	if s := seriesOf(c); s != nil {
		return s.meanLoss()
	}
	return 0, false
}

func readyOf(c Forecaster) bool {
	if c, ok := c.(candidate); ok {
		s, m := c.parts()
		return s.started && m.ready()
	}
	return false
}

func (f *Auto) choose() {
	best, bestErr := -1, 0.0
	for i, c := range f.cands {
		if e, ok := errorOf(c); ok && readyOf(c) && (best < 0 || e < bestErr) {
			best, bestErr = i, e
		}
	}
	f.compared, f.bestErr = best >= 0, bestErr
	if best >= 0 {
		f.chosen = best
	} else {
		f.chosen = -1
		for i, c := range f.cands {
			if readyOf(c) {
				f.chosen = i
				break
			}
		}
	}
}

func (f *Auto) reason(compared bool, loss float64) string {
	var hw string
	for _, c := range f.cands {
		if c, ok := c.(*HoltWinters); ok && !readyOf(c) {
			have, need := c.Warm()
			hw = fmt.Sprintf("; holt-winters needs two seasons, has %d of %d values", have, need)
		}
	}
	switch {
	case f.chosen < 0:
		return "no method has enough data yet" + hw
	case compared && f.q != 0:
		return fmt.Sprintf("lowest recent pinball loss at quantile %g (%.4g)%s", f.q, loss, hw)
	case compared:
		return fmt.Sprintf("lowest recent mean absolute error (%.4g)%s", loss, hw)
	default:
		return "no method has enough residuals to compare; first ready" + hw
	}
}

// Off is the forecaster of MethodOff: it never predicts.
type Off struct{}

// Update implements Forecaster.
func (Off) Update(Sample) {}

// Predict implements Forecaster: never ok.
func (Off) Predict(time.Duration, float64) (Prediction, bool) { return Prediction{}, false }

// Name implements Forecaster: "off".
func (Off) Name() string { return string(MethodOff) }
