package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// validPolicy returns a fresh valid policy with every optional field set, for cases to vary.
func validPolicy() Policy {
	return Policy{
		Name:        "web",
		Target:      TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "default", Name: "web"},
		MinReplicas: ptr[int32](1),
		MaxReplicas: 10,
		Metrics: []Metric{{
			Name:   "rps",
			Query:  "sum(rate(http_requests_total[1m]))",
			Target: MetricTarget{Type: Value, Value: qty("100")},
		}},
		Behavior: &Behavior{
			ScaleUp: &Rules{
				StabilizationWindowSeconds: ptr[int32](0),
				SelectPolicy:               ptr(SelectMax),
				Policies:                   []RatePolicy{{Type: PodsPolicy, Value: 4, PeriodSeconds: 15}},
				Tolerance:                  qty("0.1"),
			},
			ScaleDown: &Rules{
				StabilizationWindowSeconds: ptr[int32](300),
				SelectPolicy:               ptr(SelectMin),
				Policies:                   []RatePolicy{{Type: PercentPolicy, Value: 100, PeriodSeconds: 15}},
				Tolerance:                  qty("0.1"),
			},
		},
	}
}

// validateCase is one change to a valid policy and the problems Validate must report, each
// without its "policies[0]." prefix.
type validateCase struct {
	name   string
	modify func(p *Policy)
	want   []string
}

// runValidateCases runs each case on a policy from base, as the one policy of a file.
func runValidateCases(t *testing.T, base func() Policy, tests []validateCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base()
			tt.modify(&p)
			var want []string
			for _, w := range tt.want {
				want = append(want, "policies[0]."+w)
			}
			slices.Sort(want)
			if diff := cmp.Diff(want, errorLines(File{Policies: []Policy{p}}.Validate())); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidatePolicy(t *testing.T) {
	tests := []validateCase{
		{name: "valid policy", modify: func(*Policy) {}},
		{
			name:   "optional fields unset",
			modify: func(p *Policy) { p.MinReplicas = nil; p.Behavior = nil },
		},
		{
			name:   "empty behavior and empty rules take the defaults",
			modify: func(p *Policy) { p.Behavior = &Behavior{ScaleUp: &Rules{}} },
		},
		{
			// validPolicy's maxReplicas is 10: both bounds are allowed.
			name: "capacity at its bounds",
			modify: func(p *Policy) {
				p.Capacity = &Capacity{Priority: ptr(MaxPriority), Guaranteed: ptr[int32](10)}
			},
		},
		{name: "capacity empty", modify: func(p *Policy) { p.Capacity = &Capacity{} }},
		{
			name: "capacity one past its bounds",
			modify: func(p *Policy) {
				p.Capacity = &Capacity{Priority: ptr(MinPriority - 1), Guaranteed: ptr[int32](11)}
			},
			want: []string{
				"capacity.guaranteed: must be <= maxReplicas (10), got 11",
				"capacity.priority: must be -1000000000..1000000000, got -1000000001",
			},
		},
		{name: "name missing", modify: func(p *Policy) { p.Name = "" }, want: []string{"name: required"}},
		{
			name:   "name with upper case",
			modify: func(p *Policy) { p.Name = "Web" },
			want:   []string{`name: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most 63 characters), got "Web"`},
		},
		{
			name:   "name starting with a digit",
			modify: func(p *Policy) { p.Name = "7b" },
			want:   []string{`name: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most 63 characters), got "7b"`},
		},
		{
			name:   "name ending with a dash",
			modify: func(p *Policy) { p.Name = "web-" },
			want:   []string{`name: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most 63 characters), got "web-"`},
		},
		{name: "name of 63 characters", modify: func(p *Policy) { p.Name = strings.Repeat("a", 63) }},
		{
			name:   "name of 64 characters",
			modify: func(p *Policy) { p.Name = strings.Repeat("a", 64) },
			want:   []string{`name: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most 63 characters), got "` + strings.Repeat("a", 64) + `"`},
		},
		{
			name:   "target empty",
			modify: func(p *Policy) { p.Target = TargetRef{} },
			want: []string{
				"target.apiVersion: required",
				"target.kind: required",
				"target.name: required",
				"target.namespace: required",
			},
		},
		{name: "minReplicas 0 allows scaling to zero", modify: func(p *Policy) { p.MinReplicas = ptr[int32](0) }},
		{
			name:   "minReplicas negative",
			modify: func(p *Policy) { p.MinReplicas = ptr[int32](-1) },
			want:   []string{"minReplicas: must be >= 0, got -1"},
		},
		{name: "maxReplicas 1", modify: func(p *Policy) { p.MaxReplicas = 1; p.MinReplicas = nil }},
		{
			name:   "maxReplicas 0 with minReplicas unset: only the maxReplicas error",
			modify: func(p *Policy) { p.MaxReplicas = 0; p.MinReplicas = nil },
			want:   []string{"maxReplicas: must be >= 1, got 0"},
		},
		{name: "minReplicas equal to maxReplicas", modify: func(p *Policy) { p.MinReplicas = ptr[int32](10) }},
		{
			name:   "minReplicas above maxReplicas",
			modify: func(p *Policy) { p.MinReplicas = ptr[int32](11) },
			want:   []string{"minReplicas: must be <= maxReplicas (10), got 11"},
		},
		{name: "no metrics", modify: func(p *Policy) { p.Metrics = nil }, want: []string{"metrics: at least one metric is required"}},
		{
			name: "metric problems",
			modify: func(p *Policy) {
				p.Metrics = append(p.Metrics,
					Metric{Name: "rps", Query: " \t\n", Target: MetricTarget{Type: "Utilization"}},
					Metric{Target: MetricTarget{Value: qty("1")}},
				)
			},
			want: []string{
				`metrics[1].name: duplicate metric name "rps", also metrics[0]`,
				`metrics[1].query: must not be blank, got " \t\n"`,
				`metrics[1].target.type: must be AverageValue or Value, got "Utilization"`,
				"metrics[2].name: required",
				"metrics[2].query: required",
				"metrics[2].target.type: required (AverageValue or Value)",
			},
		},
		{
			name:   "AverageValue target missing its quantity and given the other",
			modify: func(p *Policy) { p.Metrics[0].Target = MetricTarget{Type: AverageValue, Value: qty("5")} },
			want: []string{
				"metrics[0].target.averageValue: required when type is AverageValue",
				"metrics[0].target.value: must not be set when type is AverageValue, got 5",
			},
		},
		{
			name:   "Value target missing its quantity and given the other",
			modify: func(p *Policy) { p.Metrics[0].Target = MetricTarget{Type: Value, AverageValue: qty("5")} },
			want: []string{
				"metrics[0].target.averageValue: must not be set when type is Value, got 5",
				"metrics[0].target.value: required when type is Value",
			},
		},
		{
			name:   "target 0",
			modify: func(p *Policy) { p.Metrics[0].Target.Value = qty("0") },
			want:   []string{"metrics[0].target.value: must be > 0, got 0"},
		},
		{name: "target 0.001", modify: func(p *Policy) { p.Metrics[0].Target.Value = qty("0.001") }},
		{name: "target 1m", modify: func(p *Policy) { p.Metrics[0].Target.Value = qty("1m") }},
		{
			name:   "averageValue negative",
			modify: func(p *Policy) { p.Metrics[0].Target = MetricTarget{Type: AverageValue, AverageValue: qty("-5")} },
			want:   []string{"metrics[0].target.averageValue: must be > 0, got -5"},
		},
		{name: "window 3600", modify: func(p *Policy) { p.Behavior.ScaleDown.StabilizationWindowSeconds = ptr[int32](3600) }},
		{
			name:   "window 3601",
			modify: func(p *Policy) { p.Behavior.ScaleDown.StabilizationWindowSeconds = ptr[int32](3601) },
			want:   []string{"behavior.scaleDown.stabilizationWindowSeconds: must be 0..3600, got 3601"},
		},
		{
			name:   "window -1",
			modify: func(p *Policy) { p.Behavior.ScaleUp.StabilizationWindowSeconds = ptr[int32](-1) },
			want:   []string{"behavior.scaleUp.stabilizationWindowSeconds: must be 0..3600, got -1"},
		},
		{name: "selectPolicy Disabled", modify: func(p *Policy) { p.Behavior.ScaleDown.SelectPolicy = ptr(SelectDisabled) }},
		{
			name:   "selectPolicy empty",
			modify: func(p *Policy) { p.Behavior.ScaleUp.SelectPolicy = ptr(SelectPolicy("")) },
			want:   []string{`behavior.scaleUp.selectPolicy: must be Max, Min or Disabled, got ""`},
		},
		{
			name:   "rate policies given empty",
			modify: func(p *Policy) { p.Behavior.ScaleUp.Policies = []RatePolicy{} },
			want:   []string{"behavior.scaleUp.policies: must list at least one policy when given, got an empty list"},
		},
		{name: "rate policies unset", modify: func(p *Policy) { p.Behavior.ScaleUp.Policies = nil }},
		{name: "period 1", modify: func(p *Policy) { p.Behavior.ScaleUp.Policies[0].PeriodSeconds = 1 }},
		{
			name:   "period 0",
			modify: func(p *Policy) { p.Behavior.ScaleUp.Policies[0].PeriodSeconds = 0 },
			want:   []string{"behavior.scaleUp.policies[0].periodSeconds: must be 1..1800, got 0"},
		},
		{name: "period 1800", modify: func(p *Policy) { p.Behavior.ScaleUp.Policies[0].PeriodSeconds = 1800 }},
		{
			name:   "period 1801",
			modify: func(p *Policy) { p.Behavior.ScaleUp.Policies[0].PeriodSeconds = 1801 },
			want:   []string{"behavior.scaleUp.policies[0].periodSeconds: must be 1..1800, got 1801"},
		},
		{name: "rate value 1", modify: func(p *Policy) { p.Behavior.ScaleDown.Policies[0].Value = 1 }},
		{
			name: "rate policy without type and value",
			modify: func(p *Policy) {
				p.Behavior.ScaleDown.Policies = append(p.Behavior.ScaleDown.Policies, RatePolicy{PeriodSeconds: 60})
			},
			want: []string{
				"behavior.scaleDown.policies[1].type: required (Pods or Percent)",
				"behavior.scaleDown.policies[1].value: must be > 0, got 0",
			},
		},
		{
			name:   "rate policy type in the wrong case",
			modify: func(p *Policy) { p.Behavior.ScaleDown.Policies[0].Type = "percent" },
			want:   []string{`behavior.scaleDown.policies[0].type: must be Pods or Percent, got "percent"`},
		},
		{name: "tolerance 0", modify: func(p *Policy) { p.Behavior.ScaleUp.Tolerance = qty("0") }},
		{name: "a metric named like the forecast's external metric, but longer", modify: func(p *Policy) { p.Metrics[0].Name = "forecast-replicas-2" }},
		{
			name: "metric names that prescale gives to what is not a policy metric",
			modify: func(p *Policy) {
				p.Metrics = append(p.Metrics, avg("forecast-replicas", "1"), avg("forecast", "1"), avg("objective", "1"))
			},
			want: []string{
				`metrics[1].name: must not be "forecast-replicas", a name prescale reserves: the external metric "<policy>-forecast-replicas" is the policy's forecast`,
				`metrics[2].name: must not be "forecast", a name prescale reserves: decision records, events and logs name the forecast's proposal so when it wins, and prescale_query_warnings_total the forecast's load query`,
				`metrics[3].name: must not be "objective", a name prescale reserves: prescale_query_warnings_total names the objective's latency query so`,
			},
		},
		{
			name:   "tolerance -0.1",
			modify: func(p *Policy) { p.Behavior.ScaleUp.Tolerance = qty("-0.1") },
			want:   []string{"behavior.scaleUp.tolerance: must be >= 0, got -0.1"},
		},
	}
	runValidateCases(t, validPolicy, tests)
}

func TestValidateFile(t *testing.T) {
	named := func(name, apiVersion, kind, namespace, target string) Policy {
		p := validPolicy()
		p.Name = name
		p.Target = TargetRef{APIVersion: apiVersion, Kind: kind, Namespace: namespace, Name: target}
		return p
	}
	metricNamed := func(p Policy, metric string) Policy {
		p.Metrics[0].Name = metric
		return p
	}
	tests := []struct {
		name     string
		policies []Policy
		want     []string
	}{
		{name: "no policies", want: []string{"policies: at least one policy is required"}},
		{
			name: "distinct names and targets",
			policies: []Policy{
				named("a", "apps/v1", "Deployment", "default", "web"),
				named("b", "apps/v1", "StatefulSet", "default", "web"), // another kind
				named("c", "apps/v1", "Deployment", "other", "web"),    // another namespace
				named("d", "example.com/v1", "Deployment", "default", "web"),
				named("e", "v1", "Deployment", "default", "web"), // the core group
			},
		},
		{
			name: "duplicate name",
			policies: []Policy{
				named("web", "apps/v1", "Deployment", "default", "a"),
				named("api", "apps/v1", "Deployment", "default", "b"),
				named("web", "apps/v1", "Deployment", "default", "c"),
			},
			want: []string{`policies[2].name: duplicate policy name "web", also policies[0]`},
		},
		{
			name: "one target in two versions of its group",
			policies: []Policy{
				named("a", "apps/v1", "Deployment", "default", "web"),
				named("b", "apps/v1beta2", "Deployment", "default", "web"),
			},
			want: []string{"policies[1].target: duplicate target Deployment default/web, also policies[0]"},
		},
		{
			// Policy "a-b" metric "c" and policy "a" metric "b-c" are both served as the
			// external metric "a-b-c".
			name: "two policies' metrics that spell one external metric name",
			policies: []Policy{
				metricNamed(named("a", "apps/v1", "Deployment", "default", "x"), "b-c"),
				metricNamed(named("a-b", "apps/v1", "Deployment", "default", "y"), "c"),
			},
			want: []string{`policies[1].metrics[0].name: serves the external metric "a-b-c", which policies[0].metrics[0] (policy "a", metric "b-c") also serves: rename a policy or the metric`},
		},
		{
			name: "a metric that spells an earlier policy's forecast metric",
			policies: []Policy{
				named("a", "apps/v1", "Deployment", "default", "x"),
				metricNamed(named("a-forecast", "apps/v1", "Deployment", "default", "y"), "replicas"),
			},
			want: []string{`policies[1].metrics[0].name: serves the external metric "a-forecast-replicas", which the forecast of policies[0] (policy "a") also serves: rename a policy or the metric`},
		},
		{
			name: "a metric that spells a later policy's forecast metric",
			policies: []Policy{
				metricNamed(named("a-forecast", "apps/v1", "Deployment", "default", "y"), "replicas"),
				named("a", "apps/v1", "Deployment", "default", "x"),
			},
			want: []string{`policies[0].metrics[0].name: serves the external metric "a-forecast-replicas", which the forecast of policies[1] (policy "a") also serves: rename a policy or the metric`},
		},
		{
			name: "hyphenated names that spell distinct external metrics",
			policies: []Policy{
				metricNamed(named("a", "apps/v1", "Deployment", "default", "x"), "b-c"),
				metricNamed(named("a-b", "apps/v1", "Deployment", "default", "y"), "d"),
				metricNamed(named("a-forecast", "apps/v1", "Deployment", "default", "z"), "replica"),
			},
		},
		{
			name: "policies problems are all reported",
			policies: []Policy{
				named("a", "apps/v1", "Deployment", "default", ""),
				named("B", "apps/v1", "Deployment", "default", "web"),
			},
			want: []string{
				"policies[0].target.name: required",
				`policies[1].name: must be a lowercase RFC 1123 label (a-z, 0-9 and '-', starting with a letter, ending with a letter or digit, at most 63 characters), got "B"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, errorLines(File{Policies: tt.policies}.Validate())); diff != "" {
				t.Errorf("Validate mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateDoesNotMutate checks that Validate leaves unset fields unset: defaulting is not
// its job.
func TestValidateDoesNotMutate(t *testing.T) {
	p := validPolicy()
	p.MinReplicas = nil
	p.Behavior = &Behavior{ScaleUp: &Rules{}}
	f := File{Policies: []Policy{p}}
	if err := f.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := validPolicy()
	want.MinReplicas = nil
	want.Behavior = &Behavior{ScaleUp: &Rules{}}
	if diff := cmp.Diff(File{Policies: []Policy{want}}, f, quantityEqual); diff != "" {
		t.Errorf("Validate changed the file (-want +got):\n%s", diff)
	}
}
