// Package demo runs prescale's first-contact demo on the sandbox: it brings the
// sandbox up, deploys the simulated inference service, runs the prescale controller
// against it (policy.yaml), replays a compressed scenario with a load surge, prints a
// line per tick and a summary, and tears the sandbox down.
//
// It must not be imported by policy/, forecast/ or scaler/.
package demo
