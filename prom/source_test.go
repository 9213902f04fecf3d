package prom

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/policy"
)

// fakeAPI answers Query from a list of replies, in order, and records the evaluation time of
// each call. The real Prometheus is in the e2e tests (which check the lookback it is sent);
// this covers Sample's own logic.
type fakeAPI struct {
	v1.API  // nil: any other method panics
	replies []fakeReply
	times   []time.Time
}

type fakeReply struct {
	v        model.Value
	warnings v1.Warnings
	err      error
}

func (f *fakeAPI) Query(_ context.Context, _ string, ts time.Time, _ ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error) {
	f.times = append(f.times, ts)
	if len(f.replies) == 0 {
		return nil, nil, nil, errors.New("fakeAPI: no reply left")
	}
	r := f.replies[0]
	f.replies = f.replies[1:]
	return r.v, r.warnings, nil, r.err
}

func TestSample(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	empty := fakeReply{v: model.Vector{}}
	one := fakeReply{v: model.Vector{series(model.Metric{}, 4)}}
	tests := []struct {
		name    string
		query   string
		maxAge  time.Duration
		replies []fakeReply
		want    policy.Sample
		// wantErr is the class; wantMsg the whole message.
		wantErr     error
		wantMsg     string
		wantQueries int
	}{
		{
			name: "one query for a result", query: "sum(x)", maxAge: time.Minute,
			replies: []fakeReply{one}, want: policy.Sample{Value: 4}, wantQueries: 1,
		},
		{
			name: "empty, and empty with the longer lookback: empty", query: "sum by (pod) (x)", maxAge: 2 * time.Minute,
			replies: []fakeReply{empty, empty}, wantErr: ErrEmpty,
			wantMsg: `query "sum by (pod) (x)": empty result`, wantQueries: 2,
		},
		{
			name: "empty, but not with the longer lookback: stale", query: "sum by (pod) (x)", maxAge: 2 * time.Minute,
			replies: []fakeReply{empty, one}, wantErr: ErrStale,
			wantMsg: `query "sum by (pod) (x)": no sample newer than 2m0s: stale result`, wantQueries: 2,
		},
		{
			name: "the stale message names the lookback sent, in whole seconds", query: "x", maxAge: 2500 * time.Millisecond,
			replies: []fakeReply{empty, one}, wantErr: ErrStale,
			wantMsg: `query "x": no sample newer than 2s: stale result`, wantQueries: 2,
		},
		{
			name: "Prometheus' warnings go with an empty result", query: "x", maxAge: time.Minute,
			replies: []fakeReply{{v: model.Vector{}, warnings: v1.Warnings{"results truncated", "remote down"}}, empty},
			wantErr: ErrEmpty,
			wantMsg: `query "x": empty result (warnings: results truncated; remote down)`, wantQueries: 2,
		},
		{
			name: "warnings go with a result, which is used", query: "sum(x)", maxAge: time.Minute,
			replies:     []fakeReply{{v: one.v, warnings: v1.Warnings{"results truncated"}}},
			want:        policy.Sample{Value: 4, Warnings: []string{"results truncated"}},
			wantQueries: 1,
		},
		{
			name: "the probe failing leaves the result empty", query: "x", maxAge: time.Minute,
			replies: []fakeReply{empty, {err: &v1.Error{Type: v1.ErrServer, Msg: "server error: 502"}}},
			wantErr: ErrEmpty, wantMsg: `query "x": empty result`, wantQueries: 2,
		},
		{
			name: "bad PromQL names the query, the class and Prometheus' error", query: "sum(", maxAge: time.Minute,
			replies: []fakeReply{{err: &v1.Error{Type: v1.ErrBadData, Msg: "invalid parameter \"query\": 1:5: parse error"}}},
			wantErr: ErrBadQuery,
			wantMsg: `query "sum(": bad query: bad_data: invalid parameter "query": 1:5: parse error`, wantQueries: 1,
		},
		{
			name: "a 503 with Prometheus' timeout body is a timeout", query: "x", maxAge: time.Minute,
			replies: []fakeReply{{err: &v1.Error{Type: v1.ErrServer, Msg: "server error: 503",
				Detail: `{"status":"error","errorType":"timeout","error":"query timed out in expression evaluation"}`}}},
			wantErr: ErrTimeout,
			wantMsg: `query "x": timeout: timeout: query timed out in expression evaluation (server error: 503)`, wantQueries: 1,
		},
		{
			name: "a NaN names the query and the pod", query: "x", maxAge: time.Minute,
			replies: []fakeReply{{v: model.Vector{podSample("vllm-0", 1), podSample("vllm-1", math.NaN())}}},
			wantErr: ErrNotFinite, wantMsg: `query "x": pod "vllm-1": value NaN: value not finite`, wantQueries: 1,
		},
		{
			name: "maxAge below a millisecond asks nothing", query: "x", maxAge: time.Microsecond,
			wantErr: ErrBadQuery, wantMsg: `query "x": maxAge must be at least 1ms, got 1µs: bad query`,
		},
		{
			name: "maxAge of a millisecond is enough", query: "x", maxAge: time.Millisecond,
			replies: []fakeReply{one}, want: policy.Sample{Value: 4}, wantQueries: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := &fakeAPI{replies: tc.replies}
			s := &Source{api: api, timeout: DefaultTimeout, podLabel: DefaultPodLabel}
			got, err := s.Sample(context.Background(), tc.query, t0, tc.maxAge)
			if !errorsIsOrNil(err, tc.wantErr) {
				t.Fatalf("Sample() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && err.Error() != tc.wantMsg {
				t.Errorf("Sample() error = %q\nwant %q", err, tc.wantMsg)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Sample() mismatch (-want +got):\n%s", diff)
			}
			if got := s.QueryCount(); got != int64(tc.wantQueries) {
				t.Errorf("QueryCount() = %d, want %d", got, tc.wantQueries)
			}
			for _, ts := range api.times {
				if !ts.Equal(t0) {
					t.Errorf("query evaluated at %s, want now = %s", ts, t0)
				}
			}
		})
	}
}

// An HTTP Prometheus that answers with a result and warnings (a partial response, as Thanos
// or a federated Prometheus gives when a store does not answer): Sample returns both.
func TestSampleWarningsOverHTTP(t *testing.T) {
	const body = `{"status":"success","data":{"resultType":"vector","result":[` +
		`{"metric":{"pod":"vllm-0"},"value":[1764205200,"3"]},{"metric":{"pod":"vllm-1"},"value":[1764205200,"5"]}]},` +
		`"warnings":["partial response: store 10.0.0.7:10901 did not answer"]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	}))
	defer srv.Close()
	s, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Sample(t.Context(), "vllm:num_requests_waiting", time.Unix(1764205200, 0), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Sample{PerPod: map[string]float64{"vllm-0": 3, "vllm-1": 5},
		Warnings: []string{"partial response: store 10.0.0.7:10901 did not answer"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sample() (-want +got):\n%s", diff)
	}
}

// Latency reads one series or a scalar; +Inf is a latency over any SLO, not an error.
func TestLatency(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	p99 := model.Metric{"le_quantile": "0.99"}
	tests := []struct {
		name    string
		replies []fakeReply
		want    float64
		// wantWarnings are Prometheus' warnings returned with the latency.
		wantWarnings []string
		wantErr      error
		wantMsg      string
	}{
		{name: "one series", replies: []fakeReply{{v: model.Vector{series(p99, 1.5)}}}, want: 1.5},
		{name: "a scalar", replies: []fakeReply{{v: &model.Scalar{Value: 0.25}}}, want: 0.25},
		{
			name:    "warnings go with the latency",
			replies: []fakeReply{{v: model.Vector{series(p99, 1.5)}, warnings: v1.Warnings{"partial response"}}}, want: 1.5,
			wantWarnings: []string{"partial response"},
		},
		{name: "zero is a latency", replies: []fakeReply{{v: model.Vector{series(model.Metric{}, 0)}}}, want: 0},
		{
			name:    "+Inf, the quantile in the +Inf bucket, is a latency beyond any bound",
			replies: []fakeReply{{v: model.Vector{series(p99, math.Inf(1))}}}, want: math.Inf(1),
		},
		{
			name:    "a +Inf scalar too",
			replies: []fakeReply{{v: &model.Scalar{Value: model.SampleValue(math.Inf(1))}}}, want: math.Inf(1),
		},
		{
			name:    "NaN is missing, never zero",
			replies: []fakeReply{{v: model.Vector{series(p99, math.NaN())}}},
			wantErr: ErrNotFinite, wantMsg: `query "lat": {le_quantile="0.99"}: value NaN: value not finite`,
		},
		{
			name:    "-Inf is missing",
			replies: []fakeReply{{v: &model.Scalar{Value: model.SampleValue(math.Inf(-1))}}},
			wantErr: ErrNotFinite, wantMsg: `query "lat": scalar: value -Inf: value not finite`,
		},
		{
			name:    "a result per pod is not one series",
			replies: []fakeReply{{v: model.Vector{podSample("vllm-0", 1)}}},
			wantErr: ErrShape, wantMsg: `query "lat": want one series, got a result per pod (vllm:num_requests_waiting{namespace="llm", pod="vllm-0"}): unusable result shape`,
		},
		{
			name:    "several series",
			replies: []fakeReply{{v: model.Vector{series(model.Metric{"shard": "1"}, 1), series(model.Metric{"shard": "2"}, 2)}}},
			wantErr: ErrShape, wantMsg: `query "lat": want one series, got 2 ({shard="1"}, {shard="2"}): unusable result shape`,
		},
		{
			name:    "empty, then series with the longer lookback: stale",
			replies: []fakeReply{{v: model.Vector{}}, {v: model.Vector{series(p99, 1)}}},
			wantErr: ErrStale, wantMsg: `query "lat": no sample newer than 1m0s: stale result`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Source{api: &fakeAPI{replies: tc.replies}, timeout: DefaultTimeout, podLabel: DefaultPodLabel}
			got, warnings, err := s.Latency(context.Background(), "lat", t0, time.Minute)
			if !errorsIsOrNil(err, tc.wantErr) {
				t.Fatalf("Latency() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && err.Error() != tc.wantMsg {
				t.Errorf("Latency() error = %q\nwant %q", err, tc.wantMsg)
			}
			if got != tc.want {
				t.Errorf("Latency() = %v, want %v", got, tc.want)
			}
			if diff := cmp.Diff(tc.wantWarnings, warnings); diff != "" {
				t.Errorf("Latency() warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSampleWrapsOneClass(t *testing.T) {
	// Every class but one is absent from each error, so that Kind is unambiguous.
	api := &fakeAPI{replies: []fakeReply{{err: &v1.Error{Type: v1.ErrTimeout, Msg: "query timed out"}}}}
	s := &Source{api: api, timeout: DefaultTimeout, podLabel: DefaultPodLabel}
	_, err := s.Sample(context.Background(), "x", time.Time{}, time.Minute)
	var classes []string
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			classes = append(classes, k.kind)
		}
	}
	if strings.Join(classes, ",") != KindTimeout {
		t.Errorf("error %q is of classes %v, want only %s", err, classes, KindTimeout)
	}
}

// errorsIsOrNil reports whether err matches want, a nil want meaning "no error".
func errorsIsOrNil(err, want error) bool {
	if want == nil {
		return err == nil
	}
	return errors.Is(err, want)
}

// SeriesExist asks the series API for one series of the selector over [now - lookback, now].
func TestSeriesExist(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	type request struct{ Match, Start, End, Limit string }
	var got []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/series" || r.ParseForm() != nil {
			http.NotFound(w, r)
			return
		}
		req := request{Match: strings.Join(r.Form["match[]"], ","), Start: r.Form.Get("start"), End: r.Form.Get("end"), Limit: r.Form.Get("limit")}
		got = append(got, req)
		w.Header().Set("Content-Type", "application/json")
		switch req.Match {
		case `{__name__="x_bucket"}`:
			_, _ = io.WriteString(w, `{"status":"success","data":[{"__name__":"x_bucket","le":"0.1"}]}`)
		case `{__name__="x"}`:
			_, _ = io.WriteString(w, `{"status":"success","data":[]}`)
		case `{__name__="down"}`:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"error","errorType":"unavailable","error":"shutting down"}`)
		default:
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"status":"error","errorType":"bad_data","error":"parse error"}`)
		}
	}))
	defer srv.Close()
	s, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		selector string
		want     bool
		wantErr  error
		wantMsg  string
	}{
		{name: "a series of the selector", selector: `{__name__="x_bucket"}`, want: true},
		{name: "no series", selector: `{__name__="x"}`, want: false},
		{name: "a selector Prometheus refuses", selector: `{`, wantErr: ErrBadQuery, wantMsg: "series {: bad query: bad_data: parse error"},
		{name: "Prometheus unavailable", selector: `{__name__="down"}`, wantErr: ErrUnavailable, wantMsg: `series {__name__="down"}: prometheus unavailable`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got = nil
			ok, err := s.SeriesExist(t.Context(), tc.selector, now, 2*time.Hour)
			if !errorsIsOrNil(err, tc.wantErr) {
				t.Fatalf("SeriesExist() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.HasPrefix(err.Error(), tc.wantMsg) {
				t.Errorf("SeriesExist() error = %q, want it to start with %q", err, tc.wantMsg)
			}
			if ok != tc.want {
				t.Errorf("SeriesExist() = %t, want %t", ok, tc.want)
			}
			// now, 2026-11-27T01:00:00Z, is 20784 days after the epoch (56 years with 14 leap
			// days to 2026, and 330 days into it) and an hour: 20784 × 86400 + 3600 =
			// 1795741200; two hours earlier is 1795734000.
			want := []request{{Match: tc.selector, Start: "1795734000", End: "1795741200", Limit: "1"}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}
}

// MetricNames asks the label values API for __name__ over [now - lookback, now].
func TestMetricNames(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)
	var path, start, end string
	down := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		path, start, end = r.URL.Path, r.Form.Get("start"), r.Form.Get("end")
		w.Header().Set("Content-Type", "application/json")
		if down {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"error","errorType":"unavailable","error":"shutting down"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"success","data":["up","vllm:num_requests_running"]}`)
	}))
	defer srv.Close()
	s, err := New(Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	names, err := s.MetricNames(t.Context(), now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"up", "vllm:num_requests_running"}, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	// now is 1795741200 (TestSeriesExist); an hour earlier 1795737600.
	if path != "/api/v1/label/__name__/values" || start != "1795737600" || end != "1795741200" {
		t.Errorf("request %s start %s end %s, want /api/v1/label/__name__/values from 1795737600 to 1795741200", path, start, end)
	}
	down = true
	if _, err := s.MetricNames(t.Context(), now, time.Hour); !errors.Is(err, ErrUnavailable) {
		t.Errorf("error = %v, want ErrUnavailable", err)
	}
}
