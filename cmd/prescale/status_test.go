package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// prescale status never prints the password of --addr: not when the server cannot be
// reached, answers an error or something that is not a status, nor when --addr is not a URL
// it can use. A URL with a password shows it as xxxxx, as run and backtest show Prometheus'.
func TestStatusRedactsThePassword(t *testing.T) {
	answer := func(code int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}))
		t.Cleanup(srv.Close)
		return strings.TrimPrefix(srv.URL, "http://")
	}
	closed := closedPort(t)
	failing := answer(http.StatusInternalServerError, "boom")
	garbage := answer(http.StatusOK, "not json")
	tests := []struct {
		name string
		addr string
		// wantStderr is the start of standard error.
		wantStderr string
	}{
		{name: "nothing listens", addr: "http://admin:s3cret@" + closed,
			wantStderr: "prescale: get status from http://admin:xxxxx@" + closed + `: Get "http://admin:***@` + closed + `/status": dial tcp `},
		{name: "the server answers an error", addr: "http://admin:s3cret@" + failing,
			wantStderr: "prescale: get status from http://admin:xxxxx@" + failing + ": 500 Internal Server Error\n"},
		{name: "the server answers something else", addr: "http://admin:s3cret@" + garbage + "/",
			wantStderr: "prescale: decode status from http://admin:xxxxx@" + garbage + ": invalid character"},
		{name: "a URL that does not parse", addr: "http://admin:s3cret@local host:8080",
			wantStderr: "prescale: --addr: must be an http or https URL such as http://localhost:8080, got (a URL that does not parse)\n"},
		{name: "no scheme: admin is read as one", addr: "admin:s3cret@localhost:8080",
			wantStderr: `prescale: --addr: must be an http or https URL such as http://localhost:8080, got one of scheme "admin"` + "\n"},
		{name: "no host", addr: "http://admin:s3cret@",
			wantStderr: "prescale: --addr: must be an http or https URL such as http://localhost:8080, got http://admin:xxxxx@\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := execute([]string{"status", "--addr", tc.addr}, strings.NewReader(""), &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if strings.Contains(stderr.String(), "s3cret") {
				t.Errorf("stderr shows the password: %q", stderr.String())
			}
			if !strings.HasPrefix(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr = %q, want it to start with %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

// closedPort returns host:port of a port on 127.0.0.1 that nothing listens on: one that was
// just listened on, then closed.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}
