// Package e2e holds the controller's end-to-end tests: `prescale run` as a process against
// the sandbox's real kube-apiserver, kube-controller-manager, scheduler and kwok GPU nodes, and
// a real Prometheus scraping a test exporter whose per-pod values the tests set. They run
// with the build tag e2e and PRESCALE_SANDBOX_BIN (make test-e2e), and fail, never skip,
// without them.
package e2e
