// Package sim is the sandbox's simulated GPU inference service. It stands in for a
// vLLM Deployment's traffic: it replays a load (a per-minute trace or a built-in
// generator) at a time-compression factor, treats each Ready pod of the target
// Deployment as a server, shares the load among them with the fluid queue model of
// the backtest spec (shared/specs/backtest-model.md), and exports per pod what real
// servers export (vllm:*, DCGM_FI_DEV_GPU_UTIL) plus service-level series.
//
// Load and Step are pure: no clock, no I/O. Sim does the I/O: it watches pods through
// client-go and serves /metrics. It must not import policy/ or scaler/.
package sim
