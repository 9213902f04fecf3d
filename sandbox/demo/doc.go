// Package demo runs prescale's first-contact demo on the sandbox: it brings the
// sandbox up, deploys the simulated inference service, replays a compressed
// scenario with a load surge, prints a line per tick and a summary, and tears the
// sandbox down.
//
// Until the prescale controller exists, the service runs at fixed replicas and the
// demo says so. It must not be imported by policy/, forecast/ or scaler/.
package demo
