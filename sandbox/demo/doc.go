// Package demo runs prescale's first-contact demo on the sandbox: it brings the sandbox up,
// deploys two identical simulated vLLM services, backfills days of their history into
// Prometheus, has a real HPA scale one and `prescale run` (the binary, with
// examples/servers/vllm.yaml as shipped on the demo's time scale) the other under the same
// load, prints both per tick, compares them from the measured values, plots the run and
// tears everything down.
//
// It drives prescale as a process, as a user would: it imports sandbox, sandbox/sim and
// examples (the embedded policy file), never scaler/ or the engine. It must not be imported by policy/, forecast/ or scaler/.
package demo
