package backtest

import (
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/prescale/prescale/policy"
	sandbox "github.com/prescale/prescale/sandbox/sim"
)

// promqlPolicy is a policy on the model's series: a per-pod metric and, when not empty, a
// forecast's load, an objective and scale to zero's activation.
func promqlPolicy(t *testing.T, metric, load, objective, activation string) *policy.Policy {
	t.Helper()
	q := func(s string) string { return strconv.Quote(s) }
	y := "policies:\n- name: p\n  target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: model}\n" +
		"  maxReplicas: 10\n  metrics: [{name: queue, query: " + q(metric) + ", target: {type: AverageValue, averageValue: 1}}]\n"
	if load != "" {
		y += "  forecast: {load: {query: " + q(load) + ", perReplica: auto}}\n"
	}
	if objective != "" {
		y += "  objective: {query: " + q(objective) + ", slo: 2s, budget: 0.1%}\n"
	}
	if activation != "" {
		y += "  minReplicas: 0\n  scaleToZero: {activation: {query: " + q(activation) + ", perReplica: 1}}\n"
	}
	f, err := policy.Parse(strings.NewReader(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return &f.Policies[0]
}

// TestUnexportedSeriesIsAnError: a query whose selector names a series the model does not
// export, or selects none of its series, stops the run before it starts, naming the query,
// the policy and the selector.
func TestUnexportedSeriesIsAnError(t *testing.T) {
	const (
		queue = `sum by (pod) (vllm:num_requests_waiting{namespace="inference"})`
		ttft  = `histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[1m])))`
		load  = `sum(rate(inference_objective_request_total[1m]))`
	)
	tests := []struct {
		name string
		p    *policy.Policy
		want string // "" for none
	}{
		{name: "every query on exported series", p: promqlPolicy(t, queue, load, ttft, load)},
		{name: "a histogram's base name, which vLLM does not export",
			p:    promqlPolicy(t, queue, load, "max(vllm:e2e_request_latency_seconds)", ""),
			want: `objective of policy p: query "max(vllm:e2e_request_latency_seconds)": selector vllm:e2e_request_latency_seconds selects no series the model exports`},
		{name: "the simulator's old counter in the forecast",
			p:    promqlPolicy(t, queue, "sum(rate(inference_requests_total[1m]))", "", ""),
			want: `forecast.load of policy p: query "sum(rate(inference_requests_total[1m]))": selector inference_requests_total selects no series the model exports`},
		{name: "an invented name in a metric",
			p:    promqlPolicy(t, "sum by (pod) (vllm:queue_depth)", "", "", ""),
			want: `metric queue of policy p: query "sum by (pod) (vllm:queue_depth)": selector vllm:queue_depth selects no series the model exports`},
		{name: "an exported name in another namespace",
			p:    promqlPolicy(t, `sum by (pod) (vllm:num_requests_waiting{namespace="other"})`, "", "", ""),
			want: `metric queue of policy p: query "sum by (pod) (vllm:num_requests_waiting{namespace=\"other\"})": selector vllm:num_requests_waiting{namespace="other"} selects no series the model exports`},
		{name: "a pod regex that is not the Deployment's",
			p:    promqlPolicy(t, `sum by (pod) (vllm:num_requests_waiting{pod=~"llama-.*"})`, "", "", ""),
			want: `selector vllm:num_requests_waiting{pod=~"llama-.*"} selects no series the model exports`},
		{name: "the activation",
			p:    promqlPolicy(t, queue, "", "", "sum(rate(http_requests_total[1m]))"),
			want: `scaleToZero.activation of policy p: query "sum(rate(http_requests_total[1m]))": selector http_requests_total selects no series the model exports`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(syntheticTrace(10), []Contender{{Name: "p", Policy: tc.p}}, Options{Params: DefaultParams()})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrUnexported)):
				t.Fatalf("Run: error %v; want one containing %q", err, tc.want)
			}
		})
	}
}

// testExpo is a model of 2 Ready pods of 10 requests/s each, 15 s ticks.
func testExpo(t *testing.T) (*expo, *service) {
	t.Helper()
	x := newExpo(DefaultParams(), 10, "inference", "model", 12)
	s := &service{ready: 2}
	x.initial(s.ready)
	return x, s
}

// tick runs tick t of the fluid queue at lambda requests/s through s and x.
func tick(x *expo, s *service, tk int, lambda float64) {
	dt := x.dt
	capacity := x.mu * float64(s.ready) * dt
	served := min(s.queue+lambda*dt, capacity)
	s.queue += lambda*dt - served
	x.advance(tk, s, tickInput{lambda: lambda, served: served, queue: s.queue, delay: s.queue / (x.mu * float64(s.ready))})
}

func evalAt(t *testing.T, x *expo, query string, latency bool) policy.Sample {
	t.Helper()
	q, err := checkQuery(promqlPolicy(t, "vllm:num_requests_waiting", "", "", ""), "test", query)
	if err != nil {
		t.Fatal(err)
	}
	return x.sample(&q, Epoch.Add(time.Duration(x.now)*DefaultParams().Tick), map[string]float64{}, latency)
}

// TestPerPodQueries: a per-pod query gives one value per Ready pod, keyed by the pod label
// as on a cluster; a pod starting has none, and a removed pod none from the next tick.
func TestPerPodQueries(t *testing.T) {
	x, s := testExpo(t)
	// 24 requests/s on 2 pods of 10: 60 a tick queue, 30 a pod, rounded as vLLM counts.
	tick(x, s, 0, 24)
	x.scaled(0, 3, 100) // a third pod, starting
	tick(x, s, 1, 24)
	got := evalAt(t, x, `sum by (pod) (vllm:num_requests_waiting{namespace="inference"})`, false)
	want := map[string]float64{podName("model", 0): 60, podName("model", 1): 60} // 2 ticks x 30
	if diff := cmp.Diff(want, got.PerPod); got.Err != nil || diff != "" {
		t.Errorf("waiting per pod (-want +got):\n%s (err %v)", diff, got.Err)
	}
	x.scaled(1, 1, 100) // the starting pod, then the second Ready one
	s.ready = 1
	tick(x, s, 2, 0)
	got = evalAt(t, x, `sum by (pod) (vllm:num_requests_waiting)`, false)
	if diff := cmp.Diff([]string{podName("model", 0)}, sortedKeys(got.PerPod)); got.Err != nil || diff != "" {
		t.Errorf("pods after the removal (-want +got):\n%s (err %v)", diff, got.Err)
	}
	// Without the pod label the result is one series: a value, not per pod.
	if got := evalAt(t, x, `sum(vllm:num_requests_waiting)`, false); got.PerPod != nil || got.Err != nil {
		t.Errorf("sum without pod: %+v, want one value", got)
	}
	// The series of a family the query does not group by pod: several series without it.
	if got := evalAt(t, x, `sum by (pod) (vllm:kv_cache_usage_perc) or vector(1)`, false); got.Err == nil {
		t.Errorf("several series without pod: %+v, want an error", got)
	}
}

func sortedKeys(m map[string]float64) []string {
	var k []string
	for p := range m {
		k = append(k, p)
	}
	sort.Strings(k)
	return k
}

// TestHistogramQuantileObjective: the objective's histogram_quantile over the TTFT buckets'
// rates reads the model's queueing delay plus the mean request's prefill, interpolated in
// its bucket as Prometheus does.
func TestHistogramQuantileObjective(t *testing.T) {
	const q = `histogram_quantile(0.99, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace="inference"}[1m])))`
	x, s := testExpo(t)
	// The mean request's prefill: a step (inBatch over the prefill's and the output's
	// steps) times 1 + prompt/100 steps.
	step := inBatch / (x.prompt/100 + x.output)
	prefill := step * (1 + x.prompt/100)
	if !(prefill > 0.1 && prefill <= 0.25) {
		t.Fatalf("prefill %v s: the cases below want it in the bucket (0.1, 0.25]", prefill)
	}
	for tk := range 4 {
		tick(x, s, tk, 16) // under capacity: no queue
	}
	// Every request in (0.1, 0.25]: p99 = 0.1 + 0.99 x 0.15.
	if got := evalAt(t, x, q, true); got.Err != nil || math.Abs(got.Value-0.2485) > 1e-9 {
		t.Errorf("no queue: p99 TTFT %+v, want 0.2485", got)
	}
	// 23 requests/s on 20 of capacity: each tick queues 45 more; delays of 2.25, 4.5,
	// 6.75 and 9 s put the TTFTs (delay + prefill) of ticks 4..7 in (1, 2.5], (2.5, 5],
	// (5, 7.5] and (7.5, 10]. The rate's window at tick 7 (ticks 4..7) increases by the
	// requests of ticks 5..7 (tick 4's are before its first sample), one tick's in each of
	// the last three buckets, extrapolated alike: the 99th percentile is in (7.5, 10], at
	// 7.5 + 2.5 x (0.99 x 3 - 2) / 1 = 9.925.
	for tk := 4; tk < 8; tk++ {
		tick(x, s, tk, 23)
	}
	if got := evalAt(t, x, q, true); got.Err != nil || math.Abs(got.Value-9.925) > 1e-9 {
		t.Errorf("queueing: p99 TTFT %+v, want 9.925", got)
	}
}

// TestExpositionMatchesSimulator: for the same state (two Ready pods, a tick without queue
// and one with, requests of the model's mean size), the model's series are the
// simulator's in vllm mode with dcgm-exporter: names, label sets and values.
func TestExpositionMatchesSimulator(t *testing.T) {
	const workload = "llm"
	ready := []string{podName(workload, 0), podName(workload, 1)}
	x := newExpo(DefaultParams(), 10, "ns", workload, 12)
	s := &service{ready: 2}
	x.initial(2)
	// The sandbox's pod: 10 requests/s, a batch of 16 (inBatch 1.6 s).
	simulator, err := sandbox.New(fake.NewClientset(), sandbox.Options{
		Namespace: "ns", Deployment: workload, Load: sandbox.Trace{0}, Mu: 10, Tick: 15 * time.Second,
		Compression: 15000, BatchSize: 16, Server: sandbox.ServerVLLM, DCGM: true, Seed: 1,
		Lengths: sandbox.Lengths{x.meanReq},
	})
	if err != nil {
		t.Fatal(err)
	}
	var st sandbox.State
	// 16 requests/s serves 120 a pod in tick 0; 22 serves 150 a pod and queues 15 a pod
	// (1.5 s) in tick 1: whole requests, which the simulator counts as the model does.
	for tk, lambda := range []float64{16, 22} {
		var r sandbox.Tick
		st, r = sandbox.Step(st, lambda, 10, 2, 15*time.Second)
		simulator.Export(sandbox.Report{N: tk, ModelTime: time.Duration(tk) * 15 * time.Second, Lambda: lambda, Mu: 10, Ready: 2, Tick: r}, ready, Epoch)
		s.queue = r.Queue
		x.advance(tk, s, tickInput{lambda: lambda, served: r.Served, queue: r.Queue, delay: r.Delay})
	}
	got := map[string]float64{}
	q := &querier{x: x}
	ts := epochMS + x.tickMS
	ss := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, ".+"))
	for ss.Next() {
		ser := ss.At()
		it := ser.Iterator(nil)
		if it.Seek(ts) == 0 || it.AtT() != ts {
			continue
		}
		_, v := it.At()
		if !strings.HasPrefix(ser.Labels().Get(model.MetricNameLabel), "inference_") { // the simulator's gateway is off
			got[ser.Labels().String()] = v
		}
	}
	want := map[string]float64{}
	families, err := simulator.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range modelFamilies {
		exported[f.Name] = true
	}
	for _, mf := range families {
		if !exported[mf.GetName()] {
			continue
		}
		for _, m := range mf.GetMetric() {
			add := func(name string, v float64, extra ...string) {
				b := labels.NewScratchBuilder(len(m.GetLabel()) + 2)
				for _, l := range m.GetLabel() {
					b.Add(l.GetName(), l.GetValue())
				}
				b.Add(model.MetricNameLabel, name)
				if len(extra) == 2 {
					b.Add(extra[0], extra[1])
				}
				b.Sort()
				want[b.Labels().String()] = v
			}
			switch {
			case m.GetHistogram() != nil:
				h := m.GetHistogram()
				for _, bk := range h.GetBucket() {
					add(mf.GetName()+"_bucket", float64(bk.GetCumulativeCount()), "le", formatLE(bk.GetUpperBound()))
				}
				add(mf.GetName()+"_bucket", float64(h.GetSampleCount()), "le", "+Inf")
				add(mf.GetName()+"_sum", h.GetSampleSum())
				add(mf.GetName()+"_count", float64(h.GetSampleCount()))
			case m.GetCounter() != nil:
				add(mf.GetName(), m.GetCounter().GetValue())
			default:
				add(mf.GetName(), m.GetGauge().GetValue())
			}
		}
	}
	// The simulator creates every child of vLLM's families at start; the model exports the
	// "stop" reason only (every request stops), so a zero "length" or "abort" is no
	// difference.
	for k, v := range want {
		if _, ok := got[k]; !ok && v == 0 && strings.Contains(k, "finished_reason") {
			delete(want, k)
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("model's series (+) against the simulator's (-):\n%s", diff)
	}
	if len(got) < 3*25 {
		t.Errorf("%d series compared, want at least the three histograms of each pod", len(got))
	}
}
