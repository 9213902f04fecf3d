package main

import (
	"os"
	"testing"
)

// TestMain runs prescale itself when PRESCALE_TEST_MAIN is 1: a test that needs prescale in
// a process of its own (a signal, klog's standard error at the default verbosity, the exit
// code) runs the test binary with it (startPrescale).
func TestMain(m *testing.M) {
	if os.Getenv("PRESCALE_TEST_MAIN") == "1" {
		os.Exit(execute(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
