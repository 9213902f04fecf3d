package external

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/scaler"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fakeSource answers each query from a table and records the instant and maxAge asked for.
type fakeSource struct {
	samples map[string]policy.Sample
	errs    map[string]error
	gotNow  time.Time
	gotAge  time.Duration
}

func (f *fakeSource) Sample(_ context.Context, q string, now time.Time, maxAge time.Duration) (policy.Sample, error) {
	f.gotNow, f.gotAge = now, maxAge
	if err, ok := f.errs[q]; ok {
		return policy.Sample{}, err
	}
	s, ok := f.samples[q]
	if !ok {
		return policy.Sample{}, errors.New("empty result")
	}
	return s, nil
}

func testPolicies() []policy.Policy {
	target := policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "inference", Name: "llm"}
	return []policy.Policy{
		{Name: "llm", Target: target, Metrics: []policy.Metric{
			{Name: "queue", Query: "queue_per_pod"},
			{Name: "rps", Query: "rps_total"},
			{Name: "gpu", Query: "gpu_stale"},
			{Name: "nan", Query: "nan_scalar"},
			{Name: "inf", Query: "inf_pod"},
			{Name: "nopods", Query: "empty_vector"},
			{Name: "decimal", Query: "decimal_scalar"},
		}},
		// "a-b" + "c" and "a" + "b-c" both spell a-b-c.
		{Name: "a-b", Target: target, Metrics: []policy.Metric{{Name: "c", Query: "x"}}},
		{Name: "a", Target: target, Metrics: []policy.Metric{{Name: "b-c", Query: "x"}}},
	}
}

func newTestProvider(t *testing.T) (*Provider, *fakeSource) {
	t.Helper()
	src := &fakeSource{
		samples: map[string]policy.Sample{
			// 1.0009 -> 1000m and 2.0005 -> 2000m: each series truncated before the sum.
			"queue_per_pod":  {PerPod: map[string]float64{"a": 1.0009, "b": 2.0005, "c": 0.25}},
			"rps_total":      {Value: 12.3456},
			"nan_scalar":     {Value: math.NaN()},
			"inf_pod":        {PerPod: map[string]float64{"a": 1, "b": math.Inf(1)}},
			"empty_vector":   {PerPod: map[string]float64{}},
			"decimal_scalar": {Value: 4.1}, // 4.1*1000 is 4099.999...: the engine counts 4100
		},
		errs: map[string]error{"gpu_stale": errors.New("sample is 3m0s old, older than staleness 2m0s")},
	}
	p, err := NewProvider(Options{Source: src, Policies: testPolicies, Clock: clocktesting.NewFakePassiveClock(epoch), Staleness: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return p, src
}

func TestGetExternalMetric(t *testing.T) {
	for _, tc := range []struct {
		name      string
		metric    string
		namespace string
		selector  labels.Selector
		wantMilli int64
		wantErr   string
		isErr     func(error) bool
	}{
		{name: "per-pod series are summed after truncation to 1/1000", metric: "llm-queue",
			wantMilli: 1000 + 2000 + 250},
		{name: "scalar value truncated to 1/1000", metric: "llm-rps", wantMilli: 12345},
		{name: "a decimal within 1e-9 of a thousandth counts as that thousandth", metric: "llm-decimal", wantMilli: 4100},
		{name: "stale data is an error, never zero", metric: "llm-gpu", wantErr: "older than staleness",
			isErr: apierrors.IsServiceUnavailable},
		{name: "NaN is an error", metric: "llm-nan", wantErr: "NaN", isErr: apierrors.IsServiceUnavailable},
		{name: "an infinite series is an error", metric: "llm-inf", wantErr: "+Inf", isErr: apierrors.IsServiceUnavailable},
		{name: "an empty per-pod result is an error", metric: "llm-nopods", wantErr: "no sample", isErr: apierrors.IsServiceUnavailable},
		{name: "the forecast, not configured, is an error", metric: "llm-forecast-replicas", wantErr: "forecast not configured",
			isErr: apierrors.IsServiceUnavailable},
		{name: "unknown metric", metric: "llm-latency", wantErr: "no prescale policy metric", isErr: apierrors.IsNotFound},
		{name: "unknown policy", metric: "other-queue", wantErr: "no prescale policy metric", isErr: apierrors.IsNotFound},
		{name: "another namespace than the target's", metric: "llm-queue", namespace: "default",
			wantErr: "serves namespace inference only", isErr: apierrors.IsNotFound},
		{name: "a label selector is refused", metric: "llm-queue", selector: labels.SelectorFromSet(labels.Set{"pod": "a"}),
			wantErr: "takes no label selector", isErr: apierrors.IsBadRequest},
		{name: "a name two policy metrics spell is refused", metric: "a-b-c", wantErr: "ambiguous", isErr: apierrors.IsBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, src := newTestProvider(t)
			ns := tc.namespace
			if ns == "" {
				ns = "inference"
			}
			sel := tc.selector
			if sel == nil {
				sel = labels.Everything()
			}
			got, err := p.GetExternalMetric(context.Background(), ns, sel, provider.ExternalMetricInfo{Metric: tc.metric})
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("got %v, want an error containing %q", got, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !tc.isErr(err) {
					t.Fatalf("error %q (%T): want one containing %q of the expected class", err, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Items) != 1 {
				t.Fatalf("got %d items, want 1", len(got.Items))
			}
			it := got.Items[0]
			if it.MetricName != tc.metric || it.Value.MilliValue() != tc.wantMilli || !it.Timestamp.Time.Equal(epoch) || it.MetricLabels != nil {
				t.Errorf("got %s = %s (%dm) at %v labels %v, want %dm at %v", it.MetricName, it.Value.String(), it.Value.MilliValue(),
					it.Timestamp, it.MetricLabels, tc.wantMilli, epoch)
			}
			if !src.gotNow.Equal(epoch) || src.gotAge != 2*time.Minute {
				t.Errorf("source asked at %v with maxAge %v, want %v and 2m", src.gotNow, src.gotAge, epoch)
			}
		})
	}
}

// fakeForecasts answers each policy's forecast from a table and records the instant.
type fakeForecasts struct {
	replicas map[string]int32
	errs     map[string]error
	gotNow   time.Time
}

func (f *fakeForecasts) ForecastReplicas(policy string, now time.Time) (int32, error) {
	f.gotNow = now
	if err, ok := f.errs[policy]; ok {
		return 0, err
	}
	r, ok := f.replicas[policy]
	if !ok {
		return 0, scaler.ErrForecastNotConfigured
	}
	return r, nil
}

func TestGetForecastMetric(t *testing.T) {
	fc := &fakeForecasts{
		replicas: map[string]int32{"llm": 6},
		errs: map[string]error{
			"a-b": fmt.Errorf("its error 0.420 is above gate.maxError 0.3: %w", scaler.ErrForecastGated),
			"a":   fmt.Errorf("the last forecast is 3m0s old, older than 2m0s: %w", scaler.ErrForecastStale),
		},
	}
	for _, tc := range []struct {
		name      string
		metric    string
		forecasts Forecasts
		want      int64
		wantErr   string
	}{
		{name: "the proposal, in replicas", metric: "llm-forecast-replicas", forecasts: fc, want: 6},
		{name: "gated is an error, never zero", metric: "a-b-forecast-replicas", forecasts: fc, wantErr: "forecast gated"},
		{name: "stale is an error", metric: "a-forecast-replicas", forecasts: fc, wantErr: "forecast stale"},
		{name: "without Forecasts, not configured", metric: "llm-forecast-replicas", wantErr: "forecast not configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewProvider(Options{Source: &fakeSource{}, Policies: func() []policy.Policy {
				target := policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "inference", Name: "llm"}
				return []policy.Policy{{Name: "llm", Target: target}, {Name: "a-b", Target: target}, {Name: "a", Target: target}}
			}, Clock: clocktesting.NewFakePassiveClock(epoch), Staleness: 2 * time.Minute, Forecasts: tc.forecasts})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.GetExternalMetric(context.Background(), "inference", labels.Everything(), provider.ExternalMetricInfo{Metric: tc.metric})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !apierrors.IsServiceUnavailable(err) {
					t.Fatalf("got %v, error %v; want ServiceUnavailable containing %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if it := got.Items[0]; it.Value.Value() != tc.want || it.MetricName != tc.metric || !it.Timestamp.Time.Equal(epoch) {
				t.Errorf("got %s = %s at %v, want %d at %v", it.MetricName, it.Value.String(), it.Timestamp, tc.want, epoch)
			}
			if !fc.gotNow.Equal(epoch) {
				t.Errorf("forecast asked as of %v, want %v", fc.gotNow, epoch)
			}
		})
	}
}

func TestListAllExternalMetrics(t *testing.T) {
	p, _ := newTestProvider(t)
	var got []string
	for _, m := range p.ListAllExternalMetrics() {
		got = append(got, m.Metric)
	}
	want := []string{"llm-queue", "llm-rps", "llm-gpu", "llm-nan", "llm-inf", "llm-nopods", "llm-decimal", "llm-forecast-replicas",
		"a-b-c", "a-b-forecast-replicas", "a-b-c", "a-forecast-replicas"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("metrics (-want +got):\n%s", d)
	}
}

func TestNewProviderRequires(t *testing.T) {
	for _, o := range []Options{
		{Policies: testPolicies, Staleness: time.Minute},
		{Source: &fakeSource{}, Staleness: time.Minute},
		{Source: &fakeSource{}, Policies: testPolicies},
	} {
		if _, err := NewProvider(o); err == nil {
			t.Errorf("NewProvider(%+v): want an error", o)
		}
	}
}

func TestServeOptionsArgs(t *testing.T) {
	got, err := ServeOptions{Address: "127.0.0.1:6443", CertFile: "c.pem", KeyFile: "k.pem", Kubeconfig: "kc"}.args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--secure-port=6443", "--bind-address=127.0.0.1", "--tls-cert-file=c.pem", "--tls-private-key-file=k.pem",
		"--lister-kubeconfig=kc", "--authentication-kubeconfig=kc", "--authorization-kubeconfig=kc"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("args (-want +got):\n%s", d)
	}
	for _, bad := range []ServeOptions{{Address: "6443"}, {Address: ":http"}, {Address: ":6443", CertFile: "c.pem"}} {
		if _, err := bad.args(); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}
