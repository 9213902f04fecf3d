// Package testutil holds the helpers that tests of several packages share: a free loopback
// address, polling until a condition holds, the tail of a log, float comparison. It is for
// _test.go files only.
//
// It imports the standard library alone, so that the tests of the pure packages (policy/,
// forecast/, engine/, alloc/; hack/check-purity.sh) may use it. Its subpackage promtest
// starts a real Prometheus for the I/O tests.
package testutil
