package testutil

import (
	"math"
	"net"
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition.
const PollInterval = 200 * time.Millisecond

// FreeAddr returns a loopback host:port whose port was free a moment ago, for a server that
// cannot listen on port 0 and report the port it got (Prometheus, a child process).
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("pick a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Eventually calls check every PollInterval until it returns nil, and fails the test with
// check's last error, which says what it saw last, when timeout has passed.
func Eventually(tb testing.TB, timeout time.Duration, what string, check func() error) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(PollInterval)
	}
}

// Tail returns the last n bytes of s, or s when it is shorter: the end of a log for a
// failure message.
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Near reports whether a and b differ by less than tol.
func Near(a, b, tol float64) bool { return math.Abs(a-b) < tol }
