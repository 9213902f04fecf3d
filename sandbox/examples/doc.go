// Package examples holds the end-to-end test of the shipped policy examples
// (examples/servers/, examples/policy.yaml, examples/zero-policy.yaml and README.md's):
// each runs unchanged, apart from its target's namespace and name and the forecast's time
// scale, against the sandbox's simulator in the mode of its server, and the old examples
// (testdata/old, the files as shipped before issue 24) fail the preflight for the reasons
// they would on a real cluster. The test runs with the build tag e2e and
// PRESCALE_SANDBOX_BIN (make test-e2e), and fails, never skips, without them. It has no
// code of its own.
package examples
