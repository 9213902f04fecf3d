// Package sim is the sandbox's simulated GPU inference service. It stands in for a
// vLLM Deployment's traffic: it replays a load (a per-minute trace or a built-in
// generator) at a time-compression factor, treats each Ready pod of the target
// Deployment as a server, shares the load among them with the fluid queue model of
// the backtest spec (shared/specs/backtest-model.md), and exports per pod what real
// servers export (vllm:*, DCGM_FI_DEV_GPU_UTIL) plus service-level series.
//
// What it exports depends on Options.Server. By default (ServerPrescale) it speaks its
// own dialect: a few vllm:* gauges, the queueing delay as a histogram and
// DCGM_FI_DEV_GPU_UTIL as load/capacity, labelled namespace, service and pod, and
// inference_requests_total and prescale_sim_* for the service. In a server mode (vLLM,
// TGI, SGLang, Triton) each Ready pod exports exactly the series of that server as
// testdata/upstream defines them (read from the servers' source), with requests of
// drawn prompt and output lengths (Lengths) whose times come from Engine; beside them,
// optionally, dcgm-exporter's per-GPU series (a duty cycle) and the Gateway API
// Inference Extension endpoint picker's demand counters. The exposition test holds each
// mode against those files.
//
// Load, Step and Engine are pure: no clock, no I/O. Sim does the I/O: it watches pods
// through client-go and serves /metrics. It must not import policy/ or scaler/.
package sim
