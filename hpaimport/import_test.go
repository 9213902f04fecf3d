package hpaimport

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/prescale/prescale/policy"
)

// wantMetric is one imported metric: its query written by hand from the adapter's source
// (or from Convert's documented cAdvisor translation), not copied from the output.
type wantMetric struct {
	name, query, targetType, target string
}

// The pods of the examples' workloads, as podRegex writes them.
const (
	myAppPods  = `my-app-[a-z0-9]+-[a-z0-9]{5}`
	llamaPods  = `llama-70b-[a-z0-9]+-[a-z0-9]{5}`
	tritonPods = `triton-[0-9]+`
)

var (
	// queueMetrics: hpa/queue.yaml through the adapter's docs/externalmetrics.md rules.
	queueMetrics = []wantMetric{
		// externalRules[1]: seriesQuery {__name__="queue_depth",name!=""} names the series
		// queue_depth; name.matches "" is ".*" and name.as "" is "$0", so the API name is
		// queue_depth. BuildExternal: the selector's requirements sorted by key (name,
		// namespace), each "k=%q"; resources.namespaced false adds no namespace; GroupBy "".
		// Template: sum(<<.Series>>{<<.LabelMatchers>>}) by (name). Then sum() as the HPA
		// sums an external metric's series.
		{"queue-depth", `sum(sum(queue_depth{name="my-sample-queue",namespace="queue"}) by (name))`, "AverageValue", "50"},
		// Resource cpu, Utilization 70: usage in percent of requests, per pod.
		{"cpu-utilization", `100 * sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="default",pod=~"` + myAppPods + `",container!="",container!="POD"}[1m]))` +
			` / sum by (pod) (kube_pod_container_resource_requests{namespace="default",pod=~"` + myAppPods + `",resource="cpu"})`, "AverageValue", "70"},
	}
	// vllmMetrics: hpa/vllm.yaml through the custom rule of adapter/vllm.yaml.
	vllmMetrics = []wantMetric{
		// seriesQuery {__name__=~"^vllm:num_requests_running$",...} names the series;
		// name.matches ^vllm:(.*)$ as vllm_${1} names it vllm_num_requests_running. Build: no
		// selector; namespace="inference" (overrides' namespace label), then the pods label
		// pod=~ (the adapter's pod names, here their pattern); GroupBy pod.
		{"vllm-num-requests-running", `sum(vllm:num_requests_running{namespace="inference",pod=~"` + llamaPods + `"}) by (pod)`, "AverageValue", "48"},
	}
	// gpuMetrics: hpa/gpu.yaml through the DCGM rule of adapter/gpu.yaml.
	gpuMetrics = []wantMetric{
		// seriesQuery DCGM_FI_DEV_GPU_UTIL{...} names the series; name.as gpu_utilization.
		// Build: the selector's In of two values, sorted, as modelName=~"a|b"; then the
		// overrides' namespace label exported_namespace="gpu", then the pod label
		// exported_pod=~ (a StatefulSet's pods); GroupBy exported_pod, which label_replace
		// copies to pod.
		{"gpu-utilization", `label_replace(avg(DCGM_FI_DEV_GPU_UTIL{modelName=~"NVIDIA-A100-SXM4-80GB|NVIDIA-H100-80GB-HBM3",exported_namespace="gpu",exported_pod=~"` + tritonPods + `"}) by (exported_pod), "pod", "$1", "exported_pod", "(.*)")`, "AverageValue", "80"},
		// ContainerResource memory of container server, AverageValue 60Gi.
		{"server-memory", `sum by (pod) (container_memory_working_set_bytes{namespace="gpu",pod=~"` + tritonPods + `",container="server"})`, "AverageValue", "60Gi"},
	}
	// vllmSeries are series names a Prometheus scraping vLLM, cAdvisor and a gateway has.
	vllmSeries = []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:request_success_total",
		"vllm:time_to_first_token_seconds_bucket", "http_requests_total", "container_cpu_usage_seconds_total",
		"container_memory_working_set_bytes"}
)

func TestConvert(t *testing.T) {
	tests := []struct {
		name, config, hpa string
		form              Form
		series            []string
		namespace         string
		want              []wantMetric
		// rule is the start of the first metric's note: the rule it came from.
		rule string
	}{
		{name: "queue-depth and CPU through the adapter's config", config: "adapter/queue.yaml", hpa: "hpa/queue.yaml", form: FormAdapter,
			want: queueMetrics, rule: "prometheus-adapter testdata/adapter/queue.yaml (adapter config) externalRules[1]"},
		{name: "queue-depth and CPU through the chart's values", config: "helm/queue.yaml", hpa: "hpa/queue.yaml", form: FormHelm,
			want: queueMetrics, rule: "prometheus-adapter testdata/helm/queue.yaml (Helm values) rules.external[1]"},
		{name: "queue-depth and CPU through a ConfigMap", config: "configmap/queue.yaml", hpa: "hpa/queue.yaml", form: FormConfigMap,
			want: queueMetrics, rule: "prometheus-adapter testdata/configmap/queue.yaml (ConfigMap) externalRules[1]"},
		{name: "vLLM requests running through the adapter's config", config: "adapter/vllm.yaml", hpa: "hpa/vllm.yaml", form: FormAdapter,
			want: vllmMetrics, rule: "prometheus-adapter testdata/adapter/vllm.yaml (adapter config) rules[0]"},
		{name: "vLLM requests running through the chart's values", config: "helm/vllm.yaml", hpa: "hpa/vllm.yaml", form: FormHelm,
			want: vllmMetrics, rule: "prometheus-adapter testdata/helm/vllm.yaml (Helm values) rules.custom[0]"},
		{name: "vLLM requests running through a ConfigMap", config: "configmap/vllm.yaml", hpa: "hpa/vllm.yaml", form: FormConfigMap,
			want: vllmMetrics, rule: "prometheus-adapter testdata/configmap/vllm.yaml (ConfigMap) rules[0]"},
		{name: "GPU utilization through the adapter's config", config: "adapter/gpu.yaml", hpa: "hpa/gpu.yaml", form: FormAdapter,
			want: gpuMetrics, rule: "prometheus-adapter testdata/adapter/gpu.yaml (adapter config) rules[0]"},
		{name: "GPU utilization through the chart's values", config: "helm/gpu.yaml", hpa: "hpa/gpu.yaml", form: FormHelm,
			want: gpuMetrics, rule: "prometheus-adapter testdata/helm/gpu.yaml (Helm values) rules.custom[0]"},
		{name: "GPU utilization through a ConfigMap", config: "configmap/gpu.yaml", hpa: "hpa/gpu.yaml", form: FormConfigMap,
			want: gpuMetrics, rule: "prometheus-adapter testdata/configmap/gpu.yaml (ConfigMap) rules[0]"},
		{name: "vLLM's series name through the chart's default rules, series listed", config: "helm/defaults.yaml", hpa: "hpa/vllm-defaults.yaml", form: FormHelm,
			series: vllmSeries,
			// The chart's default rule 4: seriesQuery {namespace!="",__name__!~"^container_.*"},
			// filter isNot .*_total$, name as is; template <<.Resource>> gives the labels
			// namespace and pod. Rule 5 would need vllm:num_requests_running_total, rule 6
			// ..._seconds_total, rules 1-3 container_..., none of which is listed.
			want: []wantMetric{{"vllm-num-requests-running", `sum(vllm:num_requests_running{namespace="inference",pod=~"` + llamaPods + `"}) by (pod)`, "AverageValue", "48"}},
			rule: "prometheus-adapter testdata/helm/defaults.yaml (Helm values) the chart's default rule 4 of 6"},
		{name: "an Object metric of a Service through the chart's default rules, series listed", config: "helm/defaults.yaml", hpa: "hpa/object.yaml", form: FormHelm,
			series: vllmSeries,
			// The chart's default rule 5: http_requests_total named http_requests by
			// ^(.*)_total$; the template's label for services is service. Build: namespace,
			// then service="llama-70b" (one object: =); GroupBy service.
			want: []wantMetric{{"http-requests", `sum(rate(http_requests_total{namespace="inference",service="llama-70b"}[5m])) by (service)`, "Value", "200"}},
			rule: "prometheus-adapter testdata/helm/defaults.yaml (Helm values) the chart's default rule 5 of 6"},
		{name: "the adapter's walkthrough: its ConfigMap and sample-app's HPA, series listed", config: "configmap/walkthrough.yaml", hpa: "hpa/walkthrough.yaml", form: FormConfigMap,
			series: []string{"http_requests_total", "up"}, namespace: "default",
			// name.matches ^(.*)_total as $1 names http_requests_total http_requests (its end is
			// not anchored, so only the listed series tell); the template's labels namespace
			// and pod. The metricsQuery is a literal block: its line breaks stay, as the adapter
			// sends them; no final newline, as config.yaml's "|-" strips the file's last one.
			want: []wantMetric{{"http-requests", "sum by (pod) (\n  irate (\n    http_requests_total{namespace=\"default\",pod=~\"sample-app-[a-z0-9]+-[a-z0-9]{5}\"}[1m]\n  )\n)", "AverageValue", "500m"}},
			rule: "prometheus-adapter testdata/configmap/walkthrough.yaml (ConfigMap) rules[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, form := mustConfig(t, tt.config)
			if form != tt.form {
				t.Errorf("form = %q, want %q", form, tt.form)
			}
			hpas := mustHPAs(t, tt.hpa)
			ps, err := Convert(hpas, cfg, Options{Series: tt.series, Namespace: tt.namespace})
			if err != nil {
				t.Fatalf("Convert: %v", err)
			}
			if len(ps) != 1 {
				t.Fatalf("got %d policies, want 1", len(ps))
			}
			var got []wantMetric
			for _, m := range ps[0].Metrics {
				q, _ := m.Target.Quantity()
				got = append(got, wantMetric{m.Name, m.Query, string(m.Target.Type), q.String()})
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(wantMetric{})); diff != "" {
				t.Errorf("metrics (-want +got):\n%s", diff)
			}
			if note := ps[0].Notes[0][0]; !strings.HasPrefix(note, tt.rule) {
				t.Errorf("note = %q, want it to start with %q", note, tt.rule)
			}
			// The file validates as prescale validate reads it.
			out, err := Render(ps)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if _, err := policy.Parse(bytes.NewReader(out)); err != nil {
				t.Errorf("the file does not parse: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "# "+tt.rule) {
				t.Errorf("the file has no comment %q:\n%s", "# "+tt.rule, out)
			}
		})
	}
}

// TestConvertSpec checks that every HPA field comes over: target, bounds, behavior, dryRun.
func TestConvertSpec(t *testing.T) {
	cfg, _ := mustConfig(t, "adapter/vllm.yaml")
	ps, err := Convert(mustHPAs(t, "hpa/vllm.yaml"), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := ps[0].Policy
	got.Metrics = nil
	max, pods := policy.SelectMax, policy.PodsPolicy
	want := policy.Policy{
		Name:        "llama-70b",
		Target:      policy.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "inference", Name: "llama-70b"},
		MinReplicas: new(int32(2)),
		MaxReplicas: 32,
		DryRun:      new(true),
		Behavior: &policy.Behavior{
			ScaleUp: &policy.Rules{StabilizationWindowSeconds: new(int32(0)), SelectPolicy: &max,
				Policies: []policy.RatePolicy{{Type: policy.PercentPolicy, Value: 100, PeriodSeconds: 15}, {Type: pods, Value: 4, PeriodSeconds: 15}}},
			ScaleDown: &policy.Rules{StabilizationWindowSeconds: new(int32(300)),
				Policies: []policy.RatePolicy{{Type: policy.PercentPolicy, Value: 100, PeriodSeconds: 15}}},
		},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b policy.Quantity) bool { return a.String() == b.String() })); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	if ps[0].HPA != "inference/llama-70b" {
		t.Errorf("HPA = %q", ps[0].HPA)
	}
}

// An HPA without metrics has the API's default: 80 % CPU utilization.
func TestConvertDefaultMetric(t *testing.T) {
	hpas, err := ParseHPAs("inline", []byte(`apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 10
`))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := Convert(hpas, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := ps[0].Metrics
	if len(m) != 1 || m[0].Name != "cpu-utilization" || m[0].Target.AverageValue.String() != "80" {
		t.Errorf("metrics = %+v, want cpu-utilization with target 80", m)
	}
	if got := ps[0].Notes[0][0]; got != "the HPA lists no metrics: its default, 80 % CPU utilization" {
		t.Errorf("first note = %q", got)
	}
}

// resourceRules are read (strictly) but not used; the Resource metric's comment says so.
func TestConvertResourceRules(t *testing.T) {
	cfg, form := mustConfig(t, "adapter/resource.yaml")
	if form != FormAdapter || cfg.ResourceRules == nil || cfg.ResourceRules.Window != "3m" || cfg.ResourceRules.CPU.ContainerLabel != "container" {
		t.Fatalf("form %q, resourceRules %+v", form, cfg.ResourceRules)
	}
	hpas := mustHPAs(t, "hpa/queue.yaml")
	hpas[0].Spec.Metrics = hpas[0].Spec.Metrics[1:] // the CPU metric alone
	ps, err := Convert(hpas, cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	notes := ps[0].Notes[0]
	if last := notes[len(notes)-1]; !strings.Contains(last, "resourceRules") {
		t.Errorf("notes %q do not mention resourceRules", notes)
	}
}

func TestParseAdapterConfigErrors(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"an indentation mistake names the file and the line", "bad/indent.yaml", []string{"testdata/bad/indent.yaml", "line 6"}},
		{"an unknown key names the line", "bad/unknown-key.yaml", []string{"testdata/bad/unknown-key.yaml", "line 5", "metricQuery"}},
		// Line 7 of the embedded config.yaml is line 13 of the manifest (its text starts
		// after "config.yaml: |" on line 6).
		{"a mistake inside a ConfigMap names the manifest's line", "bad/configmap-indent.yaml", []string{"testdata/bad/configmap-indent.yaml", "(ConfigMap)", "line 13"}},
		{"an unknown key under the chart's rules names the line", "bad/helm-unknown.yaml", []string{"(Helm values)", "line 5", "resource"}},
		{"a metricsQuery that does not parse is refused as the adapter refuses it", "bad/template-parse.yaml", []string{"rules[0]: metricsQuery: unable to parse metrics query template"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = ParseAdapterConfig(filepath.Join("testdata", tt.file), data)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestConvertErrors(t *testing.T) {
	tests := []struct {
		name, config, hpa string
		series            []string
		want              []string
	}{
		{name: "no rule serves the metric", config: "adapter/gpu.yaml", hpa: "hpa/vllm.yaml",
			want: []string{"HPA inference/llama-70b metrics[0]: Pods metric vllm_num_requests_running: no prometheus-adapter rule serves it",
				"rules[0] (seriesQuery: DCGM_FI_DEV_GPU_UTIL{exported_namespace!=\"\",exported_pod!=\"\"}): names no series vllm_num_requests_running"}},
		{name: "a rule without a pod label does not serve a Pods metric", config: "bad/no-pod-label.yaml", hpa: "hpa/vllm.yaml",
			want: []string{"no prometheus-adapter rule serves it", "no label for resource pods"}},
		{name: "two rules serve the metric", config: "bad/ambiguous.yaml", hpa: "hpa/vllm.yaml",
			want: []string{"Pods metric vllm_num_requests_running: ambiguous: 2 series", "rules[0]", "rules[1]", "would serve it from series vllm:num_requests_running"}},
		{name: "the chart's default rules without the series are ambiguous", config: "helm/defaults.yaml", hpa: "hpa/vllm-defaults.yaml",
			// Rules 1-3 could serve it from container_vllm:num_requests_running_seconds_total,
			// ..._total and container_vllm:num_requests_running; rules 4-6 from
			// vllm:num_requests_running, ..._total and ..._seconds_total.
			want: []string{"ambiguous: 6 series", "--prometheus", "the chart's default rule 4 of 6"}},
		{name: "a template field the adapter does not have", config: "bad/template-field.yaml", hpa: "hpa/vllm.yaml",
			want: []string{"HPA inference/llama-70b", "vllm_num_requests_running", "rules[0]", "the adapter would fail to render it", "can't evaluate field Namespace"}},
		{name: "a name.matches whose end is not anchored cannot be inverted without the series", config: "configmap/walkthrough.yaml", hpa: "hpa/vllm.yaml",
			want: []string{"Pods metric vllm_num_requests_running: cannot tell which prometheus-adapter rule serves it",
				`its name (matches "^(.*)_total", as "$1") cannot be inverted`}},
		{name: "an HPA manifest without a namespace, and none given", config: "configmap/walkthrough.yaml", hpa: "hpa/walkthrough.yaml",
			series: []string{"http_requests_total"},
			want:   []string{"HPA sample-app: no metadata.namespace"}},
		{name: "a query that aggregates the pod label away serves no value per pod", config: "bad/no-group-by.yaml", hpa: "hpa/vllm.yaml",
			want: []string{"Pods metric vllm_num_requests_running: testdata/bad/no-group-by.yaml (adapter config) rules[0]", "aggregates away the label pod"}},
		{name: "an external metric without external rules", config: "adapter/vllm.yaml", hpa: "hpa/queue.yaml",
			want: []string{"External metric queue_depth: no prometheus-adapter rule serves it", "none (the configuration has no externalRules)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := mustConfig(t, tt.config)
			_, err := Convert(mustHPAs(t, tt.hpa), cfg, Options{Series: tt.series})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestHelmDefaultRules(t *testing.T) {
	rules := HelmDefaultRules()
	if len(rules) != 6 {
		t.Fatalf("%d default rules, want the chart's 6", len(rules))
	}
	for i := range rules {
		if err := rules[i].compile(); err != nil {
			t.Errorf("default rule %d: %v", i+1, err)
		}
	}
	// The chart's folded plain scalar reads as one line.
	if want := `sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[5m])) by (<<.GroupBy>>)`; rules[0].MetricsQuery != want {
		t.Errorf("rule 1 metricsQuery = %q, want %q", rules[0].MetricsQuery, want)
	}
}

func TestInverse(t *testing.T) {
	tests := []struct {
		name, matches, as, metric string
		want                      string
		judged                    bool
	}{
		{name: "no name mapping keeps the whole name", metric: "vllm:num_requests_running", want: "vllm:num_requests_running", judged: true},
		{name: "the chart's counters", matches: "^(.*)_total$", metric: "http_requests", want: "http_requests_total", judged: true},
		{name: "the chart's cAdvisor counters in seconds", matches: "^container_(.*)_seconds_total$", metric: "cpu_usage", want: "container_cpu_usage_seconds_total", judged: true},
		{name: "text around a braced reference", matches: "^(.*)_total$", as: "${1}_per_second", metric: "http_requests_per_second", want: "http_requests_total", judged: true},
		{name: "text around the reference that the metric lacks: the rule cannot name it", matches: "^(.*)_total$", as: "${1}_per_second", metric: "http_requests", judged: true},
		{name: "an unbraced reference runs into the text: a group named 1_per_second", matches: "^(.*)_total$", as: "$1_per_second", metric: "http_requests_per_second"},
		{name: "a suffix not anchored at the end", matches: "^(.*)_total", metric: "http_requests"},
		{name: "a prefix not anchored at the start", matches: "container_(.*)$", metric: "cpu"},
		{name: "two capture groups", matches: "^(.*)_(.*)$", as: "$1$2", metric: "ab"},
		{name: "a pattern that is not a literal around the group", matches: "^[a-z]+_(.*)$", metric: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := newNamer(&Rule{SeriesQuery: "{__name__!=\"\"}", Name: NameMapping{Matches: tt.matches, As: tt.as}})
			if err != nil {
				t.Fatal(err)
			}
			got, judged := n.inverse(tt.metric)
			if got != tt.want || judged != tt.judged {
				t.Errorf("inverse(%q) = %q, %t; want %q, %t", tt.metric, got, judged, tt.want, tt.judged)
			}
		})
	}
}

func TestLiteralSet(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{"^foo$", []string{"foo"}},
		{"foo", []string{"foo"}},
		{"^vllm:num_requests_running$", []string{"vllm:num_requests_running"}},
		{"^(foo|bar)$", []string{"bar", "foo"}},
		{"foo|fob", []string{"fob", "foo"}},
		{"^container_.*", nil},
		{".*_total", nil},
		{"(?i)foo", nil},
	}
	for _, tt := range tests {
		got := literalSet(tt.expr)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("literalSet(%q) (-want +got):\n%s", tt.expr, diff)
		}
	}
}

func mustConfig(t *testing.T, file string) (*Config, Form) {
	t.Helper()
	name := filepath.Join("testdata", file)
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	c, form, err := ParseAdapterConfig(name, data)
	if err != nil {
		t.Fatalf("ParseAdapterConfig: %v", err)
	}
	return c, form
}

func mustHPAs(t *testing.T, file string) []autoscalingv2.HorizontalPodAutoscaler {
	t.Helper()
	name := filepath.Join("testdata", file)
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	hpas, err := ParseHPAs(name, data)
	if err != nil {
		t.Fatalf("ParseHPAs: %v", err)
	}
	return hpas
}
