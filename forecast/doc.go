// Package forecast holds prescale's load forecasters: it predicts the load one pod
// start-up ahead so the controller can raise the replica floor before the load arrives.
// Like policy/, it is pure: the standard library and gonum only, no I/O, no clock (every
// time is a sample's), no logging; `make check` enforces it.
//
// # Use
//
//	f, err := forecast.Fit(history, forecast.Options{Method: forecast.MethodAuto,
//		Step: time.Minute, Horizon: 195 * time.Second, Season: 24 * time.Hour, Quantile: 0.9})
//	// every tick:
//	f.Update(forecast.Sample{At: now, Value: load})
//	p, ok := f.Predict(195*time.Second, 0.9) // ok false: not enough data yet
//	open, changed := gate.Observe(predictionMadeOneHorizonAgo, load, now)
//
// # Methods
//
//   - [Holt]: level and trend (double exponential smoothing).
//   - [HoltWinters]: additive level, trend and one season; predicts after two seasons.
//   - [SeasonalNaive]: the value one season earlier; predicts after one season.
//   - [Linear]: a Tukey-bisquare robust line over the last Window values (why bisquare:
//     see [Linear]).
//   - [Auto]: all of the above that apply, side by side; predicts with the one with the
//     lowest loss at the fitted horizon over its last (up to 1,000) residuals, re-chosen
//     on every Update. The loss is the pinball loss at Options.Quantile q of the
//     q-quantile forecast (the point plus the method's residual q-quantile, what a
//     caller planning at q provisions for) made one horizon before: q per unit of load
//     above it, 1 − q per unit below; without a Quantile, the point's absolute error.
//     Methods with fewer than 20 residuals are not
//     compared; if none has 20, the first ready in the order holt-winters, holt, linear,
//     seasonal-naive. [Auto.Chosen] names the method and why, including that
//     Holt-Winters still needs two seasons.
//   - [Off]: never predicts.
//
// # Fitting
//
// [Fit] places the history on the grid, picks the parameters that minimise the error
// of the forecast ceil(Horizon/Step) steps ahead (the forecast the controller uses)
// over the history — smoothing weights by Nelder–Mead (gonum/optimize) on their
// logits, Linear's window among 5, 10, 15 and 20 steps — and replays the history
// through Update so the forecaster is warm. The error is the loss of what the caller
// plans with, as for Auto's choice: with Options.Quantile q, the mean pinball loss at q
// of the point plus the q-quantile of its errors (the interval its residuals would
// give); without, the point's mean squared error.
//
// # The grid, gaps and bad values
//
// A forecaster works on slots Step apart from its first sample; a sample goes to the
// nearest slot. A sample in an already filled slot or earlier is ignored (set Step to the
// sampling interval). Missing slots are filled with the model's own one-step forecast
// (the last value until it is ready) and record no residual; after a gap longer than a
// day (or two seasons, if longer) the forecaster restarts from the new sample. NaN, ±Inf,
// negative values and values above 1e15 are ignored, as if missing. Update is O(1) per
// slot (Linear: O(Window), Window <= 20); no allocation once warm.
//
// # Predictions and intervals
//
// Predict(h) is the forecast h after the last slot, interpolated linearly between whole
// steps (195 s on a 1-minute grid: 3.25 steps). Forecasts below zero are 0. The interval
// adds to the point the empirical quantiles q and 1-q of the method's last (up to 1,000)
// residuals actual − forecast at the fitted horizon ceil(Horizon/Step) steps (kept
// sorted as they arrive, so Predict does not sort), scaled by
// sqrt(h / that horizon) for other horizons (h of at least one step); with fewer than 20 residuals it is the point itself. Point, Lo and Hi
// are always finite and non-negative, with Lo <= Point <= Hi.
//
// # Gating
//
// [Gate] compares, every tick, the prediction made one horizon ago with the load now,
// and gates the forecast off (opens) while the rate at which the load exceeded the
// prediction's Hi (the planned quantile) over its window is above maxError; it also
// reports the point's weighted MAPE. Why the rate and not the MAPE: see [Gate].
package forecast
