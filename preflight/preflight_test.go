package preflight

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/prom"
)

// t0 is the instant every Check evaluates at.
var t0 = time.Date(2026, 11, 27, 1, 0, 0, 0, time.UTC)

// staleness is the staleness setting of every Check here.
const staleness = 2 * time.Minute

// answer is what the fake Prometheus returns for one query: series whose samples are age
// old. A lookback shorter than age finds none of them, as in Prometheus.
type answer struct {
	series []model.Metric
	values []float64 // one per series
	age    time.Duration
	// errType and errMsg, when set, make the query fail with Prometheus' 400 error body.
	errType, errMsg string
}

func one(v float64) answer { return answer{series: []model.Metric{{}}, values: []float64{v}} }

func pods(values ...float64) answer {
	a := answer{values: values}
	for i := range values {
		a.series = append(a.series, model.Metric{"pod": model.LabelValue(fmt.Sprintf("vllm-%d", i))})
	}
	return a
}

// fakeProm plays Prometheus' HTTP API: instant queries answered from answers (an unknown
// query has an empty result), and the series API from names (the metric names that have
// series).
type fakeProm struct {
	answers map[string]answer
	names   map[string]bool

	mu       sync.Mutex
	requests int
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.mu.Unlock()
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/query":
		f.query(w, r)
	case "/api/v1/series":
		name, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(r.Form.Get("match[]"), "{__name__="), "}"))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%q}`, err.Error())
			return
		}
		data := []model.LabelSet{}
		if f.names[name] {
			data = append(data, model.LabelSet{model.MetricNameLabel: model.LabelValue(name)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeProm) query(w http.ResponseWriter, r *http.Request) {
	q := r.Form.Get("query")
	ts, _ := strconv.ParseFloat(r.Form.Get("time"), 64)
	lookback, err := time.ParseDuration(r.Form.Get("lookback_delta"))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":%q}`, err.Error())
		return
	}
	a := f.answers[q]
	if a.errType != "" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":%q,"error":%q}`, a.errType, a.errMsg)
		return
	}
	vec := model.Vector{}
	if a.age <= lookback {
		for i, m := range a.series {
			vec = append(vec, &model.Sample{Metric: m, Value: model.SampleValue(a.values[i]),
				Timestamp: model.TimeFromUnixNano(int64(ts * 1e9))})
		}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success",
		"data": map[string]any{"resultType": "vector", "result": vec}})
}

// check runs Check on the policies of yaml against f.
func check(t *testing.T, f *fakeProm, yaml string) (Report, error) {
	t.Helper()
	file, err := policy.Parse(strings.NewReader(yaml))
	if err != nil {
		t.Fatalf("policy.Parse: %v", err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	src, err := prom.New(prom.Options{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return Check(t.Context(), src, file.Policies, t0, Options{Staleness: staleness, Concurrency: 4})
}

// policyWith is a policy file of one policy, llm, with the given metrics (YAML list items)
// and extra keys.
func policyWith(metrics string, extra string) string {
	return `policies:
  - name: llm
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: llm}
    minReplicas: 1
    maxReplicas: 8
    metrics:
` + metrics + extra
}

func metric(name, query, target string) string {
	return fmt.Sprintf("      - {name: %s, query: %q, target: %s}\n", name, query, target)
}

const (
	avg70  = "{type: AverageValue, averageValue: 70}"
	avg5   = "{type: AverageValue, averageValue: 5}"
	value4 = "{type: Value, value: 4}"
)

// want is an expected problem: its kind, query and substrings of its detail.
type want struct {
	Query  string
	Kind   Kind
	Detail []string
}

func TestCheck(t *testing.T) {
	histogramQuery := "histogram_quantile(0.99, sum by (le) (rate(lat_seconds_bucket[1m])))"
	objective := func(query, slo string) string {
		return fmt.Sprintf("    forecast: {load: {query: load, perReplica: 2}}\n    objective: {query: %q, slo: %s, budget: 1%%}\n", query, slo)
	}
	tests := []struct {
		name    string
		yaml    string
		answers map[string]answer
		names   []string
		want    []want
		queries int
	}{
		{
			name:    "a per-pod metric with values is no problem",
			yaml:    policyWith(metric("queue", "sum by (pod) (waiting)", avg5), ""),
			answers: map[string]answer{"sum by (pod) (waiting)": pods(1, 3)}, names: []string{"waiting"},
			queries: 1,
		},
		// no series: empty, against a zero.
		{
			name:    "an empty result names the metric that has no series",
			yaml:    policyWith(metric("queue", "sum by (pod) (waiting)", avg5), ""),
			queries: 1,
			want: []want{{"metric queue", KindNoSeries, []string{`query "sum by (pod) (waiting)" returned no series`,
				"(no series named waiting in the last 1h2m0s)"}}},
		},
		{
			name:    "a result of zero is a value",
			yaml:    policyWith(metric("queue", "sum(waiting)", value4), ""),
			answers: map[string]answer{"sum(waiting)": one(0)}, names: []string{"waiting"},
			queries: 1,
		},
		// stale: 2m1s old against a staleness of 2m, and 1m59s.
		{
			name:    "a sample older than the staleness",
			yaml:    policyWith(metric("queue", "waiting", avg5), ""),
			answers: map[string]answer{"waiting": {series: []model.Metric{{"pod": "a"}}, values: []float64{1}, age: staleness + time.Second}},
			names:   []string{"waiting"}, queries: 1,
			want: []want{{"metric queue", KindStale, []string{`query "waiting": its series have no sample newer than the staleness setting, 2m0s`}}},
		},
		{
			name:    "a sample just newer than the staleness",
			yaml:    policyWith(metric("queue", "waiting", avg5), ""),
			answers: map[string]answer{"waiting": {series: []model.Metric{{"pod": "a"}}, values: []float64{1}, age: staleness - time.Second}},
			names:   []string{"waiting"}, queries: 1,
		},
		// NaN and ±Inf, against a finite value.
		{
			name:    "NaN, +Inf and -Inf",
			yaml:    policyWith(metric("a", "nan", value4)+metric("b", "inf", value4)+metric("c", "-inf", avg5), ""),
			answers: map[string]answer{"nan": one(math.NaN()), "inf": pods(1, math.Inf(1)), "-inf": one(math.Inf(-1))},
			names:   []string{"nan", "inf"}, queries: 3,
			want: []want{
				{"metric a", KindNotFinite, []string{"value NaN"}},
				{"metric b", KindNotFinite, []string{`pod "vllm-1": value +Inf`}},
				{"metric c", KindNotFinite, []string{"value -Inf"}},
			},
		},
		{
			name:    "an objective's NaN says when histogram_quantile gives it; +Inf and a finite latency",
			yaml:    policyWith(metric("queue", "q", avg5), objective(histogramQuery, "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3), histogramQuery: one(math.NaN())},
			names:   []string{"q", "load", "lat_seconds_bucket"}, queries: 3,
			want: []want{{"objective", KindNotFinite, []string{"value NaN", "histogram_quantile is NaN while its rate window saw no request"}}},
		},
		{
			name:    "an objective at +Inf",
			yaml:    policyWith(metric("queue", "q", avg5), objective(histogramQuery, "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3), histogramQuery: one(math.Inf(1))},
			names:   []string{"q", "load", "lat_seconds_bucket"}, queries: 3,
			want: []want{{"objective", KindNotFinite, []string{"value +Inf", "beyond its largest bound"}}},
		},
		{
			name:    "an objective at a finite latency",
			yaml:    policyWith(metric("queue", "q", avg5), objective(histogramQuery, "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3), histogramQuery: one(1.5)},
			names:   []string{"q", "load", "lat_seconds_bucket"}, queries: 3,
		},
		// negative, against zero.
		{
			name:    "negative values",
			yaml:    policyWith(metric("a", "a", avg5)+metric("b", "b", value4), ""),
			answers: map[string]answer{"a": pods(0, -1, -2), "b": one(-0.5)}, names: []string{"a", "b"}, queries: 2,
			want: []want{
				{"metric a", KindNegative, []string{`negative values (pod "vllm-1" -1, pod "vllm-2" -2)`}},
				{"metric b", KindNegative, []string{"value -0.5 is negative"}},
			},
		},
		// the pod label.
		{
			name:    "several series without the pod label",
			yaml:    policyWith(metric("gpu", "gpu_util", avg70), ""),
			answers: map[string]answer{"gpu_util": {series: []model.Metric{{"exported_pod": "a"}, {"exported_pod": "b"}}, values: []float64{50, 60}}},
			names:   []string{"gpu_util"}, queries: 1,
			want: []want{{"metric gpu", KindNoPodLabel, []string{`2 series without the "pod" label`, `exported_pod="a"`, "honorLabels"}}},
		},
		{
			name:    "several series with the pod label",
			yaml:    policyWith(metric("gpu", "gpu_util", avg70), ""),
			answers: map[string]answer{"gpu_util": pods(50, 60)}, names: []string{"gpu_util"}, queries: 1,
		},
		{
			name:    "grouped by pod, one series without it, against an AverageValue target",
			yaml:    policyWith(metric("gpu", "avg by (pod) (gpu_util)", avg70), ""),
			answers: map[string]answer{"avg by (pod) (gpu_util)": one(55)}, names: []string{"gpu_util"}, queries: 1,
			want: []want{{"metric gpu", KindNoPodLabel, []string{`groups by "pod", but its one series has no "pod" label`, "total of all pods"}}},
		},
		{
			name:    "grouped by pod, one series with it",
			yaml:    policyWith(metric("gpu", "avg by (pod) (gpu_util)", avg70), ""),
			answers: map[string]answer{"avg by (pod) (gpu_util)": pods(55)}, names: []string{"gpu_util"}, queries: 1,
		},
		{
			name:    "a total against an AverageValue target is the External semantics",
			yaml:    policyWith(metric("reqs", "sum(rate(requests_total[1m]))", avg5), ""),
			answers: map[string]answer{"sum(rate(requests_total[1m]))": one(12)}, names: []string{"requests_total"}, queries: 1,
		},
		{
			name:    "grouped by pod, one series without it, against a Value target: summed either way",
			yaml:    policyWith(metric("gpu", "avg by (pod) (gpu_util)", value4), ""),
			answers: map[string]answer{"avg by (pod) (gpu_util)": one(3)}, names: []string{"gpu_util"}, queries: 1,
		},
		{
			name:    "one pod in two series",
			yaml:    policyWith(metric("gpu", "gpu_util", avg70), ""),
			answers: map[string]answer{"gpu_util": {series: []model.Metric{{"pod": "a", "gpu": "0"}, {"pod": "a", "gpu": "1"}}, values: []float64{50, 60}}},
			names:   []string{"gpu_util"}, queries: 1,
			want: []want{{"metric gpu", KindShape, []string{`pod "a" in several series`}}},
		},
		{
			name:    "two pods in two series",
			yaml:    policyWith(metric("gpu", "gpu_util", avg70), ""),
			answers: map[string]answer{"gpu_util": {series: []model.Metric{{"pod": "a", "gpu": "0"}, {"pod": "b", "gpu": "0"}}, values: []float64{50, 60}}},
			names:   []string{"gpu_util"}, queries: 1,
		},
		// values the target cannot mean.
		{
			name:    "a 0..1 ratio per pod against 70",
			yaml:    policyWith(metric("kv", "kv_cache_usage_perc", avg70), ""),
			answers: map[string]answer{"kv_cache_usage_perc": pods(0.35, 0.4)}, names: []string{"kv_cache_usage_perc"}, queries: 1,
			want: []want{{"metric kv", KindScale, []string{`query "kv_cache_usage_perc": all 2 values (largest 0.4) are within 0..1 against averageValue 70, 175 times`}}},
		},
		{
			name:    "the ratio as a percentage against 70",
			yaml:    policyWith(metric("kv", "100 * kv_cache_usage_perc", avg70), ""),
			answers: map[string]answer{"100 * kv_cache_usage_perc": pods(35, 40)}, names: []string{"kv_cache_usage_perc"}, queries: 1,
		},
		{
			// A Value target is compared with the sum: 30 + 40 = 70, a percentage against 0.7.
			name:    "a sum of percentages against a Value of 0.7",
			yaml:    policyWith(metric("gpu", "gpu_util", "{type: Value, value: 0.7}"), ""),
			answers: map[string]answer{"gpu_util": pods(30, 40)}, names: []string{"gpu_util"}, queries: 1,
			want: []want{{"metric gpu", KindScale, []string{"the value 70 is within 0..100 against value 0.7, below 1"}}},
		},
		{
			name:    "an objective in milliseconds",
			yaml:    policyWith(metric("queue", "q", avg5), objective("ttft_ms", "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3), "ttft_ms": one(2500)}, names: []string{"q", "load", "ttft_ms"}, queries: 3,
			want: []want{{"objective", KindScale, []string{"latency 2500 s against the slo 2s, 1250 times over"}}},
		},
		// a histogram's base name.
		{
			name:    "a histogram's base name explains the empty result",
			yaml:    policyWith(metric("queue", "q", avg5), objective("max(lat_seconds)", "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3)}, names: []string{"q", "load", "lat_seconds_bucket"}, queries: 3,
			want: []want{{"objective", KindHistogram, []string{`query "max(lat_seconds)": lat_seconds has no series but lat_seconds_bucket has`}}},
		},
		{
			name:    "the histogram's buckets",
			yaml:    policyWith(metric("queue", "q", avg5), objective(histogramQuery, "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3), histogramQuery: one(0.8)},
			names:   []string{"q", "load", "lat_seconds_bucket"}, queries: 3,
		},
		{
			name:    "a base name hidden by a fallback still reads nothing",
			yaml:    policyWith(metric("queue", "q", avg5), objective("max(lat_seconds) or vector(0)", "2s")),
			answers: map[string]answer{"q": pods(1), "load": one(3), "max(lat_seconds) or vector(0)": one(0)},
			names:   []string{"q", "load", "lat_seconds_bucket"}, queries: 3,
			want: []want{{"objective", KindHistogram, []string{"lat_seconds is a histogram"}}},
		},
		// other failures, and every query of a policy.
		{
			name:    "a query Prometheus refuses",
			yaml:    policyWith(metric("queue", "sum(", avg5), ""),
			answers: map[string]answer{"sum(": {errType: "bad_data", errMsg: "unexpected end of input"}}, queries: 1,
			want: []want{{"metric queue", KindQuery, []string{"bad query", "unexpected end of input"}}},
		},
		{
			name: "the forecast load and the activation are checked, each by its name",
			yaml: strings.Replace(policyWith(metric("queue", "q", avg5),
				"    forecast: {load: {query: load, perReplica: 2}}\n    scaleToZero: {activation: {query: act, perReplica: 2}}\n"),
				"minReplicas: 1", "minReplicas: 0", 1),
			answers: map[string]answer{"q": pods(1), "act": one(-1)}, names: []string{"q"}, queries: 3,
			want: []want{
				{"forecast load", KindNoSeries, []string{`query "load" returned no series (no series named load in the last 1h2m0s)`}},
				{"activation", KindNegative, []string{"value -1 is negative"}},
			},
		},
		{
			name: "the objective's waiting query is checked by its name, as run reads it",
			yaml: policyWith(metric("queue", "q", avg5), fmt.Sprintf(
				"    forecast: {load: {query: load, perReplica: 2}}\n    objective: {query: %q, slo: 2s, budget: 1%%, waiting: wq}\n", histogramQuery)),
			answers: map[string]answer{"q": pods(1), "load": one(3), histogramQuery: one(1.5), "wq": one(-1)},
			names:   []string{"q", "load", "lat_seconds_bucket", "wq"}, queries: 4,
			want: []want{{"objective waiting", KindNegative, []string{"value -1 is negative"}}},
		},
		{
			name: "an objective's waiting query that returns nothing",
			yaml: policyWith(metric("queue", "q", avg5), fmt.Sprintf(
				"    forecast: {load: {query: load, perReplica: 2}}\n    objective: {query: %q, slo: 2s, budget: 1%%, waiting: wq}\n", histogramQuery)),
			answers: map[string]answer{"q": pods(1), "load": one(3), histogramQuery: one(1.5)},
			names:   []string{"q", "load", "lat_seconds_bucket"}, queries: 4,
			want: []want{{"objective waiting", KindNoSeries, []string{`query "wq" returned no series`}}},
		},
		{
			name:    "a forecast whose method is off is not queried, as in run",
			yaml:    policyWith(metric("queue", "q", avg5), "    forecast: {load: {query: load, perReplica: 2}, method: off}\n"),
			answers: map[string]answer{"q": pods(1)}, names: []string{"q"}, queries: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeProm{answers: tc.answers, names: map[string]bool{}}
			for _, n := range tc.names {
				f.names[n] = true
			}
			r, err := check(t, f, tc.yaml)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if r.Queries != tc.queries {
				t.Errorf("Queries = %d, want %d", r.Queries, tc.queries)
			}
			var got []want
			for _, p := range r.Problems {
				if p.Policy != "llm" {
					t.Errorf("problem %q: policy %q, want llm", p, p.Policy)
				}
				got = append(got, want{Query: p.Query, Kind: p.Kind})
			}
			var kinds []want
			for _, w := range tc.want {
				kinds = append(kinds, want{Query: w.Query, Kind: w.Kind})
			}
			if diff := cmp.Diff(kinds, got); diff != "" {
				t.Fatalf("problems (-want +got):\n%s\ngot:\n%s", diff, lines(r.Problems))
			}
			for i, w := range tc.want {
				for _, d := range w.Detail {
					if !strings.Contains(r.Problems[i].Detail, d) {
						t.Errorf("problem %d: %q, want it to contain %q", i, r.Problems[i].Detail, d)
					}
				}
			}
		})
	}
}

func lines(ps []Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

// A problem's line names the policy, the query and the kind.
func TestProblemString(t *testing.T) {
	p := Problem{Policy: "llm", Query: "metric gpu", Kind: KindScale, Detail: `query "x": why`}
	if got, want := p.String(), `policy llm, metric gpu: scale: query "x": why`; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// Each metric name is asked of the series API once per Check, however many queries name
// it: one request for a name that has series, two (the name, then name_bucket) for one that
// has none.
func TestCheckAsksEachNameOnce(t *testing.T) {
	yaml := policyWith(metric("a", "sum by (pod) (x)", avg5)+metric("b", "max by (pod) (x)", avg5)+metric("c", "sum(y)", value4), "")
	f := &fakeProm{answers: map[string]answer{"sum by (pod) (x)": pods(1), "max by (pod) (x)": pods(1)}, names: map[string]bool{"x": true}}
	r, err := check(t, f, yaml)
	if err != nil {
		t.Fatal(err)
	}
	// 3 queries, plus 1 series request for x and 2 for y (y, y_bucket); y's query is empty
	// and costs prom's second query with the longer lookback: 3 + 1 + 2 + 1 = 7.
	if f.requests != 7 {
		t.Errorf("%d requests, want 7; problems:\n%s", f.requests, lines(r.Problems))
	}
}

// A Prometheus that cannot be reached ends the Check with an error, not a problem per query.
func TestCheckUnavailable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	file, err := policy.Parse(strings.NewReader(policyWith(metric("a", "x", avg5)+metric("b", "y", avg5), "")))
	if err != nil {
		t.Fatal(err)
	}
	src, err := prom.New(prom.Options{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	r, err := Check(t.Context(), src, file.Policies, t0, Options{Staleness: staleness})
	if !errors.Is(err, prom.ErrUnavailable) {
		t.Fatalf("Check() error = %v, want prom.ErrUnavailable", err)
	}
	if r.Queries != 0 || len(r.Problems) != 0 {
		t.Errorf("Check() report = %+v, want none beside the error", r)
	}
}

func TestCheckOptions(t *testing.T) {
	_, err := Check(t.Context(), nil, nil, t0, Options{})
	if err == nil || err.Error() != "preflight options: staleness: must be > 0, got 0s" {
		t.Errorf("Check() error = %v, want the staleness named", err)
	}
}
