// Package policy holds prescale's policy file format (the spec, its defaults and its
// validation) and Decide, the pure decision engine: the HPA's replica math, its behavior
// (stabilization windows, rate policies, tolerances) and min/max rules, plus prescale's own
// additions on top (forecast floor, scale to zero). The GPU capacity cap is not Decide's:
// the controller applies alloc's grants to its decisions.
//
// Everything here is a function of its inputs and of the instant `now` it is given: no I/O,
// no clock, no logging. It must not import k8s.io/..., Prometheus or viper packages, and must
// never call time.Now(); `make check` enforces both.
package policy
