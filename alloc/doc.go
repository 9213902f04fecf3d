// Package alloc arbitrates scarce GPUs across policies: one allocation per tick grants each
// policy's wanted replicas out of the GPUs free on the nodes its pods may use, by priority,
// guaranteed minimum and deficit, and explains each grant; AllocateTiers allocates tiers of
// policies one after another (the controller's writers, then its dry-run policies). The
// algorithm is documented in docs/capacity.md.
//
// Allocate is a pure function of its Input: no I/O, no clock, no logging, and the same
// result whatever the order of the input's policies and nodes. It must not import
// k8s.io/..., Prometheus or viper packages; `make check` enforces it.
package alloc
