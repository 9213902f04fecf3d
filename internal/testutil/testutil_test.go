package testutil

import (
	"errors"
	"net"
	"testing"
	"time"
)

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		name, s string
		n       int
		want    string
	}{
		{name: "shorter than n: all of it", s: "abc", n: 4, want: "abc"},
		{name: "exactly n: all of it", s: "abcd", n: 4, want: "abcd"},
		{name: "longer than n: the last n bytes", s: "abcde", n: 4, want: "bcde"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Tail(tc.s, tc.n); got != tc.want {
				t.Errorf("Tail(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
			}
		})
	}
}

func TestNear(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b float64
		want bool
	}{
		{name: "equal", a: 1, b: 1, want: true},
		{name: "under the tolerance", a: 1, b: 1 + 0.5e-9, want: true},
		{name: "at the tolerance: not near", a: 0, b: 1e-9, want: false},
		{name: "above it, either side", a: 1, b: 1 - 2e-9, want: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Near(tc.a, tc.b, 1e-9); got != tc.want {
				t.Errorf("Near(%v, %v, 1e-9) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestFreeAddr(t *testing.T) {
	addr := FreeAddr(t)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	l.Close()
}

// Eventually returns once check succeeds: on the third call here, two poll intervals in.
func TestEventually(t *testing.T) {
	calls := 0
	Eventually(t, 10*time.Second, "the third call", func() error {
		calls++
		if calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("check called %d times, want 3", calls)
	}
}
