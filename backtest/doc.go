// Package backtest replays a load trace through a simulated GPU inference service (the
// reference model in shared/specs/backtest-model.md) under several autoscaling policies and
// scores them side by side: GPU-hours, under-provisioned and SLO-violation minutes, scale
// events, queue and queueing delay.
//
// Every policy but the oracle is driven through engine.Engine, the code that prescale run
// uses; the oracle is the model's clairvoyant formula. The model exports, at each tick, the
// series of a vLLM V1 server per Ready pod, of dcgm-exporter per GPU and of a gateway's
// request counters (expo.go, with the simulator's definitions of sandbox/sim), and a
// policy's queries are evaluated over them by the Prometheus PromQL engine (promql.go,
// store.go); the reference HPA baseline reads the spec's v1 quantities (bind.go).
//
// The simulation (Run) takes everything as arguments: no clock (simulated time starts at Epoch), no I/O. Input comes from ReadTrace
// and PrometheusLoad.Load (the only network access); output from WriteTable, WriteSweep,
// WriteHTML and Plot, each writing to an io.Writer.
//
// backtest may import engine, policy, gonum, the Prometheus client, the Prometheus module's
// promql and storage, sandbox/sim (for the definitions of the series the simulator
// exports, so that both export the same) and prom (the Prometheus reader that
// prescale run uses, so that both read history alike); it must not
// import cmd/ or the controller (scaler/), and engine/ and policy/ must never import it.
package backtest
