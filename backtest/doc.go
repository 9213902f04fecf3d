// Package backtest replays a load trace through a simulated GPU inference service (the
// reference model in shared/specs/backtest-model.md) under several autoscaling policies and
// scores them side by side: GPU-hours, under-provisioned and SLO-violation minutes, scale
// events, queue and queueing delay.
//
// Every policy but the oracle is driven through policy.Decide, the code that prescale run
// uses; the oracle is the model's clairvoyant formula. The simulation (Run) takes everything
// as arguments: no clock (simulated time starts at Epoch), no I/O. Input comes from ReadTrace
// and PrometheusLoad.Load (the only network access); output from WriteTable, WriteSweep,
// WriteHTML and Plot, each writing to an io.Writer.
//
// backtest may import policy, gonum and the Prometheus client; it must not import cmd/ or
// scaler/, and policy/ must never import it.
package backtest
