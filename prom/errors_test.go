package prom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

func TestKind(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("query %q: %w", "x", ErrEmpty), KindEmpty},
		{fmt.Errorf("query %q: no sample newer than 2m0s: %w", "x", ErrStale), KindStale},
		{fmt.Errorf("query %q: pod %q: %w", "x", "a", ErrNotFinite), KindNotFinite},
		{fmt.Errorf("query %q: %w", "x", ErrShape), KindShape},
		{fmt.Errorf("query %q: %w: %w", "x", ErrTimeout, context.DeadlineExceeded), KindTimeout},
		{fmt.Errorf("query %q: %w", "x", ErrUnavailable), KindUnavailable},
		{fmt.Errorf("query %q: %w", "x", ErrBadQuery), KindBadQuery},
		{context.Canceled, KindOther},
		{errors.New("something else"), KindOther},
	}
	for _, tc := range tests {
		if got := Kind(tc.err); got != tc.want {
			t.Errorf("Kind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassify(t *testing.T) {
	live := context.Background()
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want error
	}{
		{"bad PromQL", live, &v1.Error{Type: v1.ErrBadData, Msg: "parse error"}, ErrBadQuery},
		{"execution error", live, &v1.Error{Type: v1.ErrExec, Msg: "many-to-many matching"}, ErrBadQuery},
		{"401 from a proxy", live, &v1.Error{Type: v1.ErrClient, Msg: "client error: 401"}, ErrBadQuery},
		{"Prometheus' evaluation timeout", live, &v1.Error{Type: v1.ErrTimeout, Msg: "query timed out"}, ErrTimeout},
		{"5xx", live, &v1.Error{Type: v1.ErrServer, Msg: "server error: 502"}, ErrUnavailable},
		{"not Prometheus' API", live, &v1.Error{Type: v1.ErrBadResponse, Msg: "invalid character '<'"}, ErrUnavailable},
		{"a string result, which the client library does not read", live, &v1.Error{Type: v1.ErrBadResponse, Msg: `unexpected value type "string"`}, ErrShape},
		{"Prometheus shutting down", live, &v1.Error{Type: v1.ErrCanceled, Msg: "query was canceled"}, ErrUnavailable},
		{"deadline", expired, fmt.Errorf("post: %w", context.DeadlineExceeded), ErrTimeout},
		{"transport says canceled after the deadline", expired, fmt.Errorf("post: %w", context.Canceled), ErrTimeout},
		{"network timeout", live, &net.OpError{Op: "read", Err: timeoutErr{}}, ErrTimeout},
		{"connection refused", live, refused, ErrUnavailable},
		{"caller cancelled", live, fmt.Errorf("post: %w", context.Canceled), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.ctx, tc.err); got != tc.want {
				t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestRefine(t *testing.T) {
	generic := &v1.Error{
		Type:   v1.ErrServer,
		Msg:    "server error: 503",
		Detail: `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`,
	}
	got := refine(generic)
	var apiErr *v1.Error
	if !errors.As(got, &apiErr) || apiErr.Type != v1.ErrTimeout {
		t.Fatalf("refine() = %v, want a timeout error", got)
	}
	if want := "timeout: query timed out in expression evaluation (server error: 503)"; got.Error() != want {
		t.Errorf("refine() = %q, want %q", got, want)
	}
	html := &v1.Error{Type: v1.ErrServer, Msg: "server error: 502", Detail: "<html>bad gateway</html>"}
	if got := refine(html); got != html {
		t.Errorf("refine(non-JSON body) = %v, want it unchanged", got)
	}
}
