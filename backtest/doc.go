// Package backtest replays a load trace through a simulated GPU inference service (the
// reference model in shared/specs/backtest-model.md) under several autoscaling policies and
// scores them side by side: GPU-hours, under-provisioned and SLO-violation minutes, scale
// events, queue and queueing delay.
//
// Every policy but the oracle is driven through engine.Engine, the code that prescale run
// uses; the oracle is the model's clairvoyant formula. The simulation (Run) takes everything
// as arguments: no clock (simulated time starts at Epoch), no I/O. Input comes from ReadTrace
// and PrometheusLoad.Load (the only network access); output from WriteTable, WriteSweep,
// WriteHTML and Plot, each writing to an io.Writer.
//
// backtest may import engine, policy, gonum, the Prometheus client and scaler/prom (the
// Prometheus reader that prescale run uses, so that both read history alike); it must not
// import cmd/ or the controller (scaler/), and engine/ and policy/ must never import it.
package backtest
