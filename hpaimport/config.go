package hpaimport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Config is a prometheus-adapter configuration: pkg/config/config.go's
// MetricsDiscoveryConfig, whose field names and YAML keys it keeps.
type Config struct {
	// Rules serve the custom metrics API (the HPA's Pods and Object metrics).
	Rules []Rule `yaml:"rules"`
	// ResourceRules serve the resource metrics API when the adapter replaces metrics-server.
	// They are read, not used: Resource metrics become cAdvisor queries (see Import).
	ResourceRules *ResourceRules `yaml:"resourceRules,omitempty"`
	// ExternalRules serve the external metrics API (the HPA's External metrics).
	ExternalRules []Rule `yaml:"externalRules,omitempty"`

	// Sources says where each rule came from, for messages and comments: Sources.Rules[i]
	// describes Rules[i], Sources.ExternalRules[i] ExternalRules[i]. Not part of the file.
	Sources Sources `yaml:"-"`
}

// Sources describe the rules of a Config: the file and form each came from, and its index
// in that file's list.
type Sources struct {
	Rules, ExternalRules []string
}

// Rule is one discovery rule: config.DiscoveryRule.
type Rule struct {
	SeriesQuery   string          `yaml:"seriesQuery"`
	SeriesFilters []RegexFilter   `yaml:"seriesFilters"`
	Resources     ResourceMapping `yaml:"resources"`
	Name          NameMapping     `yaml:"name"`
	MetricsQuery  string          `yaml:"metricsQuery,omitempty"`
}

// RegexFilter is config.RegexFilter: exactly one of Is and IsNot.
type RegexFilter struct {
	Is    string `yaml:"is,omitempty"`
	IsNot string `yaml:"isNot,omitempty"`
}

// ResourceMapping is config.ResourceMapping.
type ResourceMapping struct {
	Template   string                   `yaml:"template,omitempty"`
	Overrides  map[string]GroupResource `yaml:"overrides,omitempty"`
	Namespaced *bool                    `yaml:"namespaced,omitempty"`
}

// GroupResource is config.GroupResource.
type GroupResource struct {
	Group    string `yaml:"group,omitempty"`
	Resource string `yaml:"resource"`
}

// NameMapping is config.NameMapping.
type NameMapping struct {
	Matches string `yaml:"matches"`
	As      string `yaml:"as"`
}

// ResourceRules is config.ResourceRules.
type ResourceRules struct {
	CPU    ResourceRule `yaml:"cpu"`
	Memory ResourceRule `yaml:"memory"`
	Window string       `yaml:"window"`
}

// ResourceRule is config.ResourceRule.
type ResourceRule struct {
	ContainerQuery string          `yaml:"containerQuery"`
	NodeQuery      string          `yaml:"nodeQuery"`
	Resources      ResourceMapping `yaml:"resources"`
	ContainerLabel string          `yaml:"containerLabel"`
}

// Form is the shape a configuration file has.
type Form string

const (
	// FormAdapter is the adapter's own configuration file (its --config).
	FormAdapter Form = "adapter config"
	// FormHelm is the prometheus-adapter Helm chart's values.
	FormHelm Form = "Helm values"
	// FormConfigMap is a ConfigMap manifest whose data holds the adapter's configuration.
	FormConfigMap Form = "ConfigMap"
)

// ConfigMapKey is the data key of the chart's ConfigMap (templates/configmap.yaml), and the
// one the adapter's documentation mounts as its --config.
const ConfigMapKey = "config.yaml"

// ParseAdapterConfig reads one file of prometheus-adapter configuration, named name in
// messages, in any of its three forms, which it detects:
//   - the adapter's configuration file: a mapping of rules, externalRules and resourceRules;
//   - the chart's values: a mapping whose rules is a mapping (default, custom, external,
//     resource, existing); rules.default (true unless set false, as in the chart) adds the
//     chart's default rules before rules.custom, as templates/configmap.yaml does; the
//     values' other keys are not read;
//   - a ConfigMap manifest, whose data key config.yaml (or its only key) holds the file.
//
// Decoding is strict, as the adapter's (yaml.UnmarshalStrict): an unknown key, a value of
// the wrong type or a key given twice is an error. Every error names the file and, for the
// YAML's problems, the line in that file (for a ConfigMap, the line in the manifest, not in
// its embedded text). A stream of several documents is a ConfigMap among other manifests
// (helm template's output): exactly one ConfigMap must hold the configuration.
func ParseAdapterConfig(name string, data []byte) (*Config, Form, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, "", fmt.Errorf("adapter config %s: %w", name, locate(data, err))
	}
	if len(docs) == 0 {
		return nil, "", fmt.Errorf("adapter config %s: empty file", name)
	}
	if len(docs) > 1 {
		return parseConfigMapStream(name, docs)
	}
	doc := docs[0]
	if doc.Kind != yaml.MappingNode {
		return nil, "", fmt.Errorf("adapter config %s: line %d: want a mapping (the adapter's config, the chart's values or a ConfigMap)", name, doc.Line)
	}
	switch {
	case lookup(doc, "kind") != nil || lookup(doc, "apiVersion") != nil:
		c, err := parseConfigMap(name, doc)
		return c, FormConfigMap, err
	case isHelmValues(doc):
		c, err := parseHelmValues(name, data)
		return c, FormHelm, err
	default:
		c, err := decodeConfig(name, string(FormAdapter), data, 0)
		return c, FormAdapter, err
	}
}

// documents decodes every YAML document of data into nodes, skipping empty ones.
func documents(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err // yaml.v3's messages carry "line N"
		}
		if len(n.Content) == 0 || (n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			continue
		}
		out = append(out, n.Content[0])
	}
}

// lookup returns the value of key in mapping m, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// isHelmValues reports whether a mapping is the chart's values: its rules is a mapping (the
// adapter's is a list), or it has none of the adapter's keys but keys only the chart has.
func isHelmValues(doc *yaml.Node) bool {
	if r := lookup(doc, "rules"); r != nil {
		return r.Kind == yaml.MappingNode
	}
	if lookup(doc, "externalRules") != nil || lookup(doc, "resourceRules") != nil {
		return false
	}
	return lookup(doc, "prometheus") != nil || lookup(doc, "image") != nil
}

// lineRe finds the line numbers in yaml.v3's messages ("yaml: line 4: ...", "line 7: field
// x not found in type ...").
var lineRe = regexp.MustCompile(`line (\d+)`)

// shiftedError is a YAML error whose line numbers are moved from an embedded text to its
// manifest.
type shiftedError struct {
	msg string
	err error
}

func (e *shiftedError) Error() string { return e.msg }
func (e *shiftedError) Unwrap() error { return e.err }

// shiftLines adds offset to every line number in err's message.
func shiftLines(err error, offset int) error {
	if offset == 0 {
		return err
	}
	msg := lineRe.ReplaceAllStringFunc(err.Error(), func(s string) string {
		n, _ := strconv.Atoi(s[len("line "):])
		return "line " + strconv.Itoa(n+offset)
	})
	return &shiftedError{msg: msg, err: err}
}

// decodeConfig decodes the adapter's configuration file strictly, as the adapter's
// config.FromYAML does; offset is the line before data's first in the file named name.
func decodeConfig(name, form string, data []byte, offset int) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("adapter config %s (%s): %w", name, form, shiftLines(locate(data, err), offset))
	}
	if err := c.label(name, form).check(); err != nil {
		return nil, fmt.Errorf("adapter config %s (%s): %w", name, form, err)
	}
	return &c, nil
}

// label fills Sources: each rule's file, form and index.
func (c *Config) label(name, form string) *Config {
	c.Sources = Sources{}
	for i := range c.Rules {
		c.Sources.Rules = append(c.Sources.Rules, fmt.Sprintf("%s (%s) rules[%d]", name, form, i))
	}
	for i := range c.ExternalRules {
		c.Sources.ExternalRules = append(c.Sources.ExternalRules, fmt.Sprintf("%s (%s) externalRules[%d]", name, form, i))
	}
	return c
}

// check refuses what the adapter refuses when it builds its namers from the file
// (naming.NamersFromConfig): a metricsQuery or resources.template that does not parse, a
// series filter with both or neither of is and isNot, a regular expression that does not
// compile, and a name.matches with several capture groups and no name.as.
func (c *Config) check() error {
	var errs []error
	for i, r := range c.Rules {
		if err := r.compile(); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
		}
	}
	for i, r := range c.ExternalRules {
		if err := r.compile(); err != nil {
			errs = append(errs, fmt.Errorf("externalRules[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// parseConfigMap reads the configuration from a ConfigMap manifest.
func parseConfigMap(name string, doc *yaml.Node) (*Config, error) {
	if k := lookup(doc, "kind"); k == nil || k.Value != "ConfigMap" {
		kind := "none"
		if k != nil {
			kind = k.Value
		}
		return nil, fmt.Errorf("adapter config %s: line %d: a manifest of kind %s; want a ConfigMap holding the adapter's %s", name, doc.Line, kind, ConfigMapKey)
	}
	v, err := configMapData(doc)
	if err != nil {
		return nil, fmt.Errorf("adapter config %s (ConfigMap): %w", name, err)
	}
	offset := v.Line - 1
	if v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		offset = v.Line // a block scalar's text starts on the line after its indicator
	}
	return decodeConfig(name, string(FormConfigMap), []byte(v.Value), offset)
}

// configMapData returns the data value holding the configuration: config.yaml, or the only
// key.
func configMapData(doc *yaml.Node) (*yaml.Node, error) {
	data := lookup(doc, "data")
	if data == nil || data.Kind != yaml.MappingNode || len(data.Content) == 0 {
		return nil, fmt.Errorf("line %d: the ConfigMap has no data holding %s", doc.Line, ConfigMapKey)
	}
	if v := lookup(data, ConfigMapKey); v != nil {
		return v, nil
	}
	if len(data.Content) == 2 {
		return data.Content[1], nil
	}
	return nil, fmt.Errorf("line %d: the ConfigMap's data has no key %s and several others: which holds the adapter's configuration?", data.Line, ConfigMapKey)
}

// parseConfigMapStream finds the one ConfigMap holding the configuration among several
// manifests.
func parseConfigMapStream(name string, docs []*yaml.Node) (*Config, Form, error) {
	var found []*yaml.Node
	for _, d := range docs {
		k := lookup(d, "kind")
		if k == nil {
			return nil, "", fmt.Errorf("adapter config %s: line %d: a document that is not a manifest in a stream of several; give the adapter's config or the chart's values as a file of one document", name, d.Line)
		}
		if k.Value != "ConfigMap" {
			continue
		}
		if data := lookup(d, "data"); data != nil && (lookup(data, ConfigMapKey) != nil) {
			found = append(found, d)
		}
	}
	switch len(found) {
	case 0:
		return nil, "", fmt.Errorf("adapter config %s: none of its %d documents is a ConfigMap with the key %s", name, len(docs), ConfigMapKey)
	case 1:
		c, err := parseConfigMap(name, found[0])
		return c, FormConfigMap, err
	}
	return nil, "", fmt.Errorf("adapter config %s: %d ConfigMaps with the key %s (lines %d and %d): give the adapter's one", name, len(found), ConfigMapKey, found[0].Line, found[1].Line)
}

// Merge returns the configuration of several files, as one adapter would run them in order:
// their rules, then their external rules, each file's after the previous one's. At most one
// may have resourceRules.
func Merge(cs ...*Config) (*Config, error) {
	out := &Config{}
	for _, c := range cs {
		out.Rules = append(out.Rules, c.Rules...)
		out.ExternalRules = append(out.ExternalRules, c.ExternalRules...)
		out.Sources.Rules = append(out.Sources.Rules, c.Sources.Rules...)
		out.Sources.ExternalRules = append(out.Sources.ExternalRules, c.Sources.ExternalRules...)
		if c.ResourceRules != nil {
			if out.ResourceRules != nil {
				return nil, errors.New("two adapter configs have resourceRules: the adapter reads one")
			}
			out.ResourceRules = c.ResourceRules
		}
	}
	return out, nil
}

// syntaxRe matches yaml.v3's syntax errors: "yaml: line N: message".
var syntaxRe = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// maxLocateLines bounds locate's work: it parses up to this many prefixes.
const maxLocateLines = 5000

// locate points a YAML syntax error at the line of the mistake. yaml.v3 names the line
// where the enclosing block starts (libyaml's context mark), not the line that breaks it
// (an indentation mistake three lines further down): the first prefix of data, from that
// line on, that fails with the same message ends at the mistake's line.
func locate(data []byte, err error) error {
	m := syntaxRe.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	start, _ := strconv.Atoi(m[1])
	lines := bytes.SplitAfter(data, []byte("\n"))
	for n := start; n <= len(lines) && n-start < maxLocateLines; n++ {
		prefix := bytes.Join(lines[:n], nil)
		if _, perr := documents(prefix); perr != nil {
			pm := syntaxRe.FindStringSubmatch(perr.Error())
			if pm != nil && pm[2] == m[2] {
				if n == start {
					return err
				}
				return &shiftedError{msg: fmt.Sprintf("yaml: line %d: %s (in the block that starts at line %d)", n, m[2], start), err: err}
			}
		}
	}
	return err
}
