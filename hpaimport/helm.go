package hpaimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// helmValues is the part of the prometheus-adapter chart's values that becomes the adapter's
// configuration (charts/prometheus-adapter/values.yaml, rules:); the other keys are kept
// aside unread.
type helmValues struct {
	Rules helmRules      `yaml:"rules"`
	Other map[string]any `yaml:",inline"`
}

type helmRules struct {
	// Default adds the chart's default rules; the chart's values.yaml sets it true, so an
	// override file that leaves it out keeps them.
	Default  *bool          `yaml:"default"`
	Custom   []Rule         `yaml:"custom"`
	External []Rule         `yaml:"external"`
	Existing *string        `yaml:"existing"`
	Resource *ResourceRules `yaml:"resource"`
}

// parseHelmValues builds the configuration that the chart's templates/configmap.yaml
// renders from values: rules = the default rules (when rules.default) then rules.custom;
// externalRules = rules.external; resourceRules = rules.resource.
func parseHelmValues(name string, data []byte) (*Config, error) {
	var v helmValues
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("adapter config %s (%s): %w", name, FormHelm, err)
	}
	if v.Rules.Existing != nil && *v.Rules.Existing != "" {
		return nil, fmt.Errorf("adapter config %s (%s): rules.existing: the adapter reads the ConfigMap %q, not these values: give that ConfigMap's manifest (kubectl get configmap %s -o yaml)",
			name, FormHelm, *v.Rules.Existing, *v.Rules.Existing)
	}
	c := &Config{ExternalRules: v.Rules.External, ResourceRules: v.Rules.Resource}
	var defaults int
	if v.Rules.Default == nil || *v.Rules.Default {
		c.Rules = HelmDefaultRules()
		defaults = len(c.Rules)
	}
	c.Rules = append(c.Rules, v.Rules.Custom...)
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("adapter config %s (%s): %w", name, FormHelm, err)
	}
	// Sources name the values' own paths: the chart's default rule i, rules.custom[i].
	for i := range c.Rules {
		if i < defaults {
			c.Sources.Rules = append(c.Sources.Rules, fmt.Sprintf("%s (%s) the chart's default rule %d of %d (rules.default)", name, FormHelm, i+1, defaults))
		} else {
			c.Sources.Rules = append(c.Sources.Rules, fmt.Sprintf("%s (%s) rules.custom[%d]", name, FormHelm, i-defaults))
		}
	}
	for i := range c.ExternalRules {
		c.Sources.ExternalRules = append(c.Sources.ExternalRules, fmt.Sprintf("%s (%s) rules.external[%d]", name, FormHelm, i))
	}
	return c, nil
}

// helmDefaultRules is the rules list that the prometheus-adapter chart (5.3.0, app
// v0.12.0) writes when rules.default is true, copied from
// charts/prometheus-adapter/templates/configmap.yaml of prometheus-community/helm-charts.
// Three rules for cAdvisor's container_* series (counters in seconds, other counters,
// gauges) on the namespace and pod labels, and three for every other namespaced series
// (gauges, counters, counters in seconds) whose labels name resources by the template.
const helmDefaultRules = `
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters: []
  resources:
    overrides:
      namespace:
        resource: namespace
      pod:
        resource: pod
  name:
    matches: ^container_(.*)_seconds_total$
    as: ""
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[5m]))
    by (<<.GroupBy>>)
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: ^container_.*_seconds_total$
  resources:
    overrides:
      namespace:
        resource: namespace
      pod:
        resource: pod
  name:
    matches: ^container_(.*)_total$
    as: ""
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[5m]))
    by (<<.GroupBy>>)
- seriesQuery: '{__name__=~"^container_.*",container!="POD",namespace!="",pod!=""}'
  seriesFilters:
  - isNot: ^container_.*_total$
  resources:
    overrides:
      namespace:
        resource: namespace
      pod:
        resource: pod
  name:
    matches: ^container_(.*)$
    as: ""
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>,container!="POD"}) by (<<.GroupBy>>)
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters:
  - isNot: .*_total$
  resources:
    template: <<.Resource>>
  name:
    matches: ""
    as: ""
  metricsQuery: sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters:
  - isNot: .*_seconds_total
  resources:
    template: <<.Resource>>
  name:
    matches: ^(.*)_total$
    as: ""
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
- seriesQuery: '{namespace!="",__name__!~"^container_.*"}'
  seriesFilters: []
  resources:
    template: <<.Resource>>
  name:
    matches: ^(.*)_seconds_total$
    as: ""
  metricsQuery: sum(rate(<<.Series>>{<<.LabelMatchers>>}[5m])) by (<<.GroupBy>>)
`

// HelmDefaultRules returns the chart's default rules (rules.default: true), a new slice
// each call.
func HelmDefaultRules() []Rule {
	var rules []Rule
	dec := yaml.NewDecoder(bytes.NewReader([]byte(helmDefaultRules)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		panic(fmt.Sprintf("the chart's default rules do not decode: %v", err)) // a constant: TestHelmDefaultRules
	}
	return rules
}
