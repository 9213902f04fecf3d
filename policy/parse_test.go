package policy

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// quantityEqual compares Quantities by their text and exact value.
var quantityEqual = cmp.Comparer(func(a, b Quantity) bool {
	return a.String() == b.String() && a.MilliValue() == b.MilliValue()
})

func ptr[T any](v T) *T { return &v }

// errorLines returns the lines of the problems that err joins, sorted.
func errorLines(err error) []string {
	var lines []string
	for _, e := range unjoin(err) {
		lines = append(lines, e.Error())
	}
	slices.Sort(lines)
	return lines
}

func TestParseExample(t *testing.T) {
	r, err := os.Open("../examples/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := Parse(r)
	if err != nil {
		t.Fatalf("Parse(examples/policy.yaml): %v", err)
	}
	want := File{Policies: []Policy{{
		Name:        "llama-70b",
		Target:      TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "inference", Name: "llama-70b"},
		MinReplicas: ptr[int32](1),
		MaxReplicas: 32,
		Metrics: []Metric{
			{
				Name:   "queue",
				Query:  `sum by (pod) (vllm:num_requests_waiting{namespace="inference", pod=~"llama-70b-[a-z0-9]+-[a-z0-9]{5}"})`,
				Target: MetricTarget{Type: AverageValue, AverageValue: qty("5")},
			},
			{
				Name:   "kv-cache",
				Query:  `max by (pod) (vllm:kv_cache_usage_perc{namespace="inference", pod=~"llama-70b-[a-z0-9]+-[a-z0-9]{5}"})`,
				Target: MetricTarget{Type: AverageValue, AverageValue: qty("800m")},
			},
			{
				Name:   "p95-ttft",
				Query:  `histogram_quantile(0.95, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket{namespace="inference", pod=~"llama-70b-[a-z0-9]+-[a-z0-9]{5}"}[1m])))`,
				Target: MetricTarget{Type: Value, Value: qty("2.5")},
			},
		},
		Behavior: &Behavior{
			ScaleUp: &Rules{
				StabilizationWindowSeconds: ptr[int32](0),
				SelectPolicy:               ptr(SelectMax),
				Tolerance:                  qty("0.1"),
				Policies: []RatePolicy{
					{Type: PercentPolicy, Value: 100, PeriodSeconds: 15},
					{Type: PodsPolicy, Value: 4, PeriodSeconds: 15},
				},
			},
			ScaleDown: &Rules{
				StabilizationWindowSeconds: ptr[int32](300),
				Policies:                   []RatePolicy{{Type: PercentPolicy, Value: 100, PeriodSeconds: 15}},
			},
		},
	}}}
	if diff := cmp.Diff(want, got, quantityEqual); diff != "" {
		t.Errorf("Parse(examples/policy.yaml) mismatch (-want +got):\n%s", diff)
	}
}

// web is a minimal valid policy file; the cases below vary it. Its lines:
//
//	1 policies:
//	2   - name: web
//	3     target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
//	4     maxReplicas: 4
//	5     metrics:
//	6       - {name: rps, query: "sum(rate(http_requests_total[1m]))", target: {type: Value, value: 100}}
const web = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics:
      - {name: rps, query: "sum(rate(http_requests_total[1m]))", target: {type: Value, value: 100}}
`

func TestParseValid(t *testing.T) {
	webPolicy := Policy{
		Name:        "web",
		Target:      TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "web"},
		MaxReplicas: 4,
		Metrics: []Metric{{
			Name:   "rps",
			Query:  "sum(rate(http_requests_total[1m]))",
			Target: MetricTarget{Type: Value, Value: qty("100")},
		}},
	}
	tests := []struct {
		name     string
		yaml     string
		settings []string
		want     File
	}{
		{
			name: "minimal policy leaves optional fields nil",
			yaml: web,
			want: File{Policies: []Policy{webPolicy}},
		},
		{
			name: "capacity: priority and guaranteed minimum",
			yaml: web + "    capacity: {priority: -5, guaranteed: 4}\n",
			want: File{Policies: []Policy{func() Policy {
				p := webPolicy
				p.Capacity = &Capacity{Priority: ptr[int32](-5), Guaranteed: ptr[int32](4)}
				return p
			}()}},
		},
		{
			name:     "caller's settings are skipped, at any position",
			yaml:     "prometheus: {url: http://prom:9090}\n" + web + "interval: 15s\n",
			settings: []string{"prometheus", "interval"},
			want:     File{Policies: []Policy{webPolicy}},
		},
		{
			name: "dryRun per policy",
			yaml: web + "    dryRun: true\n",
			want: File{Policies: []Policy{func() Policy {
				p := webPolicy
				p.DryRun = ptr(true)
				return p
			}()}},
		},
		{
			name: "null values are unset",
			yaml: web + "    minReplicas: ~\n    behavior:\n",
			want: File{Policies: []Policy{webPolicy}},
		},
		{
			name: "quantity suffixes and quoted quantities",
			yaml: strings.Replace(web, "value: 100", `value: "500m"`, 1),
			want: File{Policies: []Policy{func() Policy {
				p := webPolicy
				p.Metrics = []Metric{{Name: "rps", Query: "sum(rate(http_requests_total[1m]))", Target: MetricTarget{Type: Value, Value: qty("500m")}}}
				return p
			}()}},
		},
		{
			name: "anchors and aliases",
			yaml: `policies:
  - name: web
    target: &t {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: &max 4
    metrics:
      - {name: rps, query: "sum(rate(http_requests_total[1m]))", target: {type: Value, value: 100}}
  - name: api
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: api}
    maxReplicas: *max
    metrics:
      - {name: rps, query: "sum(rate(http_requests_total[1m]))", target: {type: Value, value: 100}}
`,
			want: File{Policies: []Policy{webPolicy, func() Policy {
				p := webPolicy
				p.Name = "api"
				p.Target.Name = "api"
				return p
			}()}},
		},
		{
			name: "minReplicas 0 and an empty rules block",
			yaml: web + "    minReplicas: 0\n    behavior: {scaleDown: {}}\n",
			want: File{Policies: []Policy{func() Policy {
				p := webPolicy
				p.MinReplicas = ptr[int32](0)
				p.Behavior = &Behavior{ScaleDown: &Rules{}}
				return p
			}()}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.yaml), tt.settings...)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, quantityEqual); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		settings []string
		want     []string
	}{
		{
			name: "empty file",
			yaml: "",
			want: []string{"policy file is empty: want a mapping with a policies list"},
		},
		{
			name: "only comments",
			yaml: "# policies come later\n",
			want: []string{"policy file is empty: want a mapping with a policies list"},
		},
		{
			name: "explicit null document",
			yaml: "~\n",
			want: []string{"policy file is empty: want a mapping with a policies list"},
		},
		{
			name: "top level is a list",
			yaml: "- name: web\n",
			want: []string{"policy file: want a mapping with a policies list, got a list (line 1)"},
		},
		{
			name: "two documents", // the second starts at its "---" on line 7
			yaml: web + "---\n" + web,
			want: []string{"policy file holds more than one YAML document: the second starts at line 7"},
		},
		{
			name:     "no policies key",
			yaml:     "interval: 15s\n",
			settings: []string{"interval"},
			want:     []string{"policies: at least one policy is required"},
		},
		{
			name: "empty policies list",
			yaml: "policies: []\n",
			want: []string{"policies: at least one policy is required (line 1)"},
		},
		{
			// web's maxReplicas is 4; capacity is on line 7.
			name: "capacity: priority out of range, guarantee above maxReplicas",
			yaml: web + "    capacity: {priority: 1000000001, guaranteed: 5}\n",
			want: []string{
				"policies[0].capacity.guaranteed: must be <= maxReplicas (4), got 5 (line 7)",
				"policies[0].capacity.priority: must be -1000000000..1000000000, got 1000000001 (line 7)",
			},
		},
		{
			name: "capacity: a negative guarantee, an unknown key",
			yaml: web + "    capacity:\n      guaranteed: -1\n      weight: 3\n",
			want: []string{
				"policies[0].capacity.guaranteed: must be >= 0, got -1 (line 8)",
				`policies[0].capacity.weight: unknown field (line 9)`,
			},
		},
		{
			name: "dryRun must be a boolean",
			yaml: web + "    dryRun: \"yes\"\n",
			want: []string{`policies[0].dryRun: want true or false, got "yes" (line 7)`},
		},
		{
			name: "policies is a mapping",
			yaml: "policies: {name: web}\n",
			want: []string{"policies: want a list, got a mapping (line 1)"},
		},
		{
			name: "unknown top-level key that is not a setting",
			yaml: web + "prometheus: {url: http://prom:9090}\n",
			want: []string{"prometheus: unknown field (line 7)"},
		},
		{
			name:     "a setting of another caller is still unknown",
			yaml:     web + "prometheus: {url: http://prom:9090}\n",
			settings: []string{"interval"},
			want:     []string{"prometheus: unknown field (line 7)"},
		},
		{
			name:     "settings are only skipped at the top level",
			yaml:     web + "    interval: 15s\n",
			settings: []string{"interval"},
			want:     []string{"policies[0].interval: unknown field (line 7)"},
		},
		{
			name: "string where an integer is wanted, without a follow-on range error",
			yaml: strings.Replace(web, "maxReplicas: 4", "maxReplicas: many", 1) + "    minReplicas: 2\n",
			want: []string{`policies[0].maxReplicas: want an integer, got "many" (line 4)`},
		},
		{
			name: "quoted number where an integer is wanted",
			yaml: strings.Replace(web, "maxReplicas: 4", `maxReplicas: "4"`, 1),
			want: []string{`policies[0].maxReplicas: want an integer, got "4" (line 4)`},
		},
		{
			name: "fraction where an integer is wanted",
			yaml: strings.Replace(web, "maxReplicas: 4", "maxReplicas: 4.5", 1),
			want: []string{`policies[0].maxReplicas: want an integer, got "4.5" (line 4)`},
		},
		{
			name: "integer above int32",
			yaml: strings.Replace(web, "maxReplicas: 4", "maxReplicas: 2147483648", 1),
			want: []string{"policies[0].maxReplicas: want an integer within -2147483648..2147483647, got 2147483648 (line 4)"},
		},
		{
			name: "largest int32 is accepted",
			yaml: strings.Replace(web, "maxReplicas: 4", "maxReplicas: 2147483647", 1) + "    minReplicas: -2147483649\n",
			want: []string{"policies[0].minReplicas: want an integer within -2147483648..2147483647, got -2147483649 (line 7)"},
		},
		{
			name: "list where a mapping is wanted",
			yaml: strings.Replace(web, "target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}", "target: [web]", 1),
			want: []string{"policies[0].target: want a mapping, got a list (line 3)"},
		},
		{
			name: "mapping where a string is wanted",
			yaml: strings.Replace(web, "name: web\n", "name: {first: web}\n", 1),
			want: []string{"policies[0].name: want a string, got a mapping (line 2)"},
		},
		{
			name: "mapping where a quantity is wanted",
			yaml: strings.Replace(web, "value: 100", "value: {amount: 100}", 1),
			want: []string{"policies[0].metrics[0].target.value: want a number, got a mapping (line 6)"},
		},
		{
			name: "malformed quantity",
			yaml: strings.Replace(web, "value: 100", "value: 100x", 1),
			want: []string{`policies[0].metrics[0].target.value: "100x" is not a number (a quantity such as 5, 0.5, 500m or 2k) (line 6)`},
		},
		{
			name: "scalar where a list element mapping is wanted",
			yaml: strings.Replace(web, "      - {name: rps", "      - rps\n      - {name: rps", 1),
			want: []string{`policies[0].metrics[0]: want a mapping, got "rps" (line 6)`},
		},
		{
			name: "duplicate key, the second is not decoded",
			yaml: web + "    maxReplicas: 0\n",
			want: []string{"policies[0].maxReplicas: duplicate key, first at line 4 (line 7)"},
		},
		{
			name: "duplicate key, the first is still validated",
			yaml: strings.Replace(web, "maxReplicas: 4", "maxReplicas: 0", 1) + "    maxReplicas: 5\n",
			want: []string{
				"policies[0].maxReplicas: must be >= 1, got 0 (line 4)",
				"policies[0].maxReplicas: duplicate key, first at line 4 (line 7)",
			},
		},
		{
			name: "mapping key that is not a string",
			yaml: "[policies]: 1\n" + web,
			want: []string{"policy file: want string keys, got a list (line 1)"},
		},
		{
			name: "unknown nested key",
			yaml: web + "    behavior:\n      scaleUp: {foo: 1}\n",
			want: []string{"policies[0].behavior.scaleUp.foo: unknown field (line 8)"},
		},
		{
			name: "misspelt key is unknown and the field it meant is missing",
			yaml: strings.Replace(web, "maxReplicas: 4", "maxReplica: 4", 1),
			want: []string{
				"policies[0].maxReplica: unknown field (line 4)",
				// maxReplicas is absent: its line is its policy's.
				"policies[0].maxReplicas: must be >= 1, got 0 (line 2)",
			},
		},
		{
			name: "null metrics",
			yaml: strings.Split(web, "      - {")[0], // metrics: with no list
			want: []string{"policies[0].metrics: at least one metric is required (line 5)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.yaml), tt.settings...)
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want errors", got)
			}
			if diff := cmp.Diff(File{}, got, quantityEqual); diff != "" {
				t.Errorf("Parse returned a File beside its error (-want +got):\n%s", diff)
			}
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, errorLines(err)); diff != "" {
				t.Errorf("Parse errors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSyntaxError(t *testing.T) {
	_, err := Parse(strings.NewReader("policies:\n  - name: [web\n"))
	if err == nil {
		t.Fatal("Parse succeeded, want a syntax error")
	}
	if got := err.Error(); !strings.HasPrefix(got, "parse policy file: yaml: line ") {
		t.Errorf("Parse error = %q, want it to start with %q", got, "parse policy file: yaml: line ")
	}
}

// TestParseManyProblems checks that one file with many problems reports each of them, once,
// with its line, and nothing that only follows from another problem.
func TestParseManyProblems(t *testing.T) {
	r, err := os.Open("testdata/many-problems.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = Parse(r, "prometheus")
	want := []string{
		"interval: unknown field (line 2)",
		`policies[0].name: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most 63 characters), got "Llama" (line 4)`,
		"policies[0].target.name: required (line 5)",
		// maxReplicas failed to decode, so minReplicas 5 is not compared with it.
		`policies[0].maxReplicas: want an integer, got "many" (line 7)`,
		"policies[0].maxReplicas: duplicate key, first at line 7 (line 8)",
		`policies[0].metrics[0].query: must not be blank, got "  " (line 11)`,
		"policies[0].metrics[0].target.averageValue: must be > 0, got -5 (line 12)",
		"policies[0].metrics[0].target.value: must not be set when type is AverageValue, got 3 (line 12)",
		`policies[0].metrics[1].name: duplicate metric name "queue", also metrics[0] (line 13)`,
		// value failed to decode, so there is no "required when type is Value".
		`policies[0].metrics[1].target.value: "abc" is not a number (a quantity such as 5, 0.5, 500m or 2k) (line 15)`,
		"policies[0].behavior.scaleUp.stabilizationWindowSeconds: must be 0..3600, got 3601 (line 17)",
		"policies[0].behavior.scaleUp.foo: unknown field (line 17)",
		"policies[0].behavior.scaleUp.policies: must list at least one policy when given, got an empty list (line 17)",
		`policies[0].behavior.scaleDown.selectPolicy: must be Max, Min or Disabled, got "max" (line 18)`,
		"policies[0].behavior.scaleDown.tolerance: must be >= 0, got -0.1 (line 18)",
		`policies[0].behavior.scaleDown.policies[0].type: must be Pods or Percent, got "pods" (line 18)`,
		"policies[0].behavior.scaleDown.policies[0].value: must be > 0, got 0 (line 18)",
		"policies[0].behavior.scaleDown.policies[0].periodSeconds: must be 1..1800, got 1801 (line 18)",
		"policies[1].minReplicas: must be <= maxReplicas (3), got 5 (line 21)",
		// metrics failed to decode, so there is no "at least one metric is required".
		"policies[1].metrics: want a list, got a mapping (line 23)",
		`policies[2].name: duplicate policy name "llama", also policies[1] (line 24)`,
		// apps/v1 and apps/v2 are one group: the same object.
		"policies[2].target: duplicate target Deployment inference/x, also policies[1] (line 25)",
		"policies[2].maxReplicas: want an integer within -2147483648..2147483647, got 3000000000 (line 26)",
		`policies[2].metrics[0]: want a mapping, got "5" (line 27)`,
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, errorLines(err)); diff != "" {
		t.Errorf("Parse errors mismatch (-want +got):\n%s", diff)
	}
}

// TestParseErrorsInFileOrder checks that the joined problems come in line order, as a user
// reads the file.
func TestParseErrorsInFileOrder(t *testing.T) {
	yaml := web + "    minReplicas: -1\n    foo: 1\n"
	_, err := Parse(strings.NewReader(strings.Replace(yaml, "name: web\n", "name: Web\n", 1)))
	var lines []int
	for _, e := range unjoin(err) {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("problem %v is a %T, want a *FieldError", e, e)
		}
		lines = append(lines, fe.Line)
	}
	if diff := cmp.Diff([]int{2, 7, 8}, lines); diff != "" {
		t.Errorf("problem lines mismatch (-want +got):\n%s", diff)
	}
}
