package prom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

// The classes of Sample's errors; test them with errors.Is. Every error Sample returns wraps
// exactly one of them, except a cancelled context, which wraps context.Canceled.
var (
	// ErrEmpty: the query returned no series at all.
	ErrEmpty = errors.New("empty result")
	// ErrStale: the query's series exist, but none has a sample newer than maxAge.
	ErrStale = errors.New("stale result")
	// ErrNotFinite: a series' value is NaN, +Inf or -Inf.
	ErrNotFinite = errors.New("value not finite")
	// ErrShape: the result is a matrix or a string, holds several series without the pod
	// label (a *PodLabelError), or holds one pod twice.
	ErrShape = errors.New("unusable result shape")
	// ErrTimeout: the query did not answer within Options.Timeout or the context's deadline,
	// or Prometheus gave up evaluating it.
	ErrTimeout = errors.New("timeout")
	// ErrUnavailable: Prometheus could not be reached (connection refused, TLS handshake,
	// DNS), answered 5xx, or answered with something that is not its API.
	ErrUnavailable = errors.New("prometheus unavailable")
	// ErrBadQuery: Prometheus rejected the request: bad PromQL (bad_data), an execution
	// error, or another 4xx status such as 401 or 403; or Sample was given a maxAge below
	// a millisecond.
	ErrBadQuery = errors.New("bad query")
)

// The labels Kind returns.
const (
	KindEmpty       = "empty"
	KindStale       = "stale"
	KindNotFinite   = "not_finite"
	KindShape       = "shape"
	KindTimeout     = "timeout"
	KindUnavailable = "unavailable"
	KindBadQuery    = "bad_query"
	KindOther       = "other"
)

var kinds = []struct {
	err  error
	kind string
}{
	{ErrEmpty, KindEmpty},
	{ErrStale, KindStale},
	{ErrNotFinite, KindNotFinite},
	{ErrShape, KindShape},
	{ErrTimeout, KindTimeout},
	{ErrUnavailable, KindUnavailable},
	{ErrBadQuery, KindBadQuery},
}

// Kind returns a short, stable label for err's class, for the controller's
// errors_total{kind} metric: one of the Kind constants, KindOther for an error that wraps no
// sentinel of this package, and "" for nil.
func Kind(err error) string {
	if err == nil {
		return ""
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.kind
		}
	}
	return KindOther
}

// classify returns the sentinel that a failed request's error belongs to, and nil for an
// error of no class (a cancelled context). ctx is the query's own context, whose deadline
// tells a timeout from a refused connection when the transport reports only "canceled".
func classify(ctx context.Context, err error) error {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		return classifyAPI(apiErr)
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrTimeout
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return ErrTimeout
	}
	// Everything else failed before Prometheus answered: refused, reset, TLS, DNS.
	return ErrUnavailable
}

func classifyAPI(e *v1.Error) error {
	switch e.Type {
	case v1.ErrBadData, v1.ErrExec, v1.ErrClient:
		return ErrBadQuery
	case v1.ErrTimeout:
		return ErrTimeout
	case v1.ErrBadResponse:
		// The client library reads no string results (nor any type it does not know): it
		// reports them only by this message, which the e2e test pins.
		if strings.HasPrefix(e.Msg, "unexpected value type") {
			return ErrShape
		}
		return ErrUnavailable
	default: // server_error, bad_response, canceled (Prometheus shutting down)
		return ErrUnavailable
	}
}

// apiBody is the part of Prometheus' error body that the client library leaves unparsed for
// status codes other than 400 and 422 (a 503 for a timed-out query, say).
type apiBody struct {
	ErrorType v1.ErrorType `json:"errorType"`
	Error     string       `json:"error"`
}

// refine replaces a generic "server error: 503" by the error type and message in the body,
// when Prometheus sent one.
func refine(err error) error {
	var apiErr *v1.Error
	if !errors.As(err, &apiErr) || apiErr.Detail == "" {
		return err
	}
	var b apiBody
	if json.Unmarshal([]byte(apiErr.Detail), &b) != nil || b.ErrorType == "" {
		return err
	}
	return &v1.Error{Type: b.ErrorType, Msg: fmt.Sprintf("%s (%s)", b.Error, apiErr.Msg)}
}
