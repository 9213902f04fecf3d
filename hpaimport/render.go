package hpaimport

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/prescale/prescale/policy"
)

// Render writes policies as a policy file: a comment naming each policy's HPA, and above
// each metric one naming where its query came from (the adapter's rule, or the cAdvisor
// translation and where it can differ from metrics-server). It checks the file with
// policy.Parse, as prescale validate does, and returns Parse's problems if it fails.
func Render(ps []Policy) ([]byte, error) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, p := range ps {
		seq.Content = append(seq.Content, policyNode(p))
	}
	root := mapping("policies", seq)
	root.HeadComment = "Imported by prescale import from HorizontalPodAutoscalers and prometheus-adapter rules.\n" +
		"Each policy runs in dry-run (dryRun: true) beside its HPA, which keeps scaling: compare them with\n" +
		"prescale status, then remove dryRun and the HPA to let prescale scale."
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("write policy file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("write policy file: %w", err)
	}
	if _, err := policy.Parse(bytes.NewReader(b.Bytes())); err != nil {
		return nil, fmt.Errorf("the imported policy file does not validate:\n%w", err)
	}
	return b.Bytes(), nil
}

func policyNode(p Policy) *yaml.Node {
	t := p.Target
	target := mapping("apiVersion", str(t.APIVersion), "kind", str(t.Kind), "namespace", str(t.Namespace), "name", str(t.Name))
	target.Style = yaml.FlowStyle
	kv := []any{"name", str(p.Name), "target", target}
	if p.MinReplicas != nil {
		kv = append(kv, "minReplicas", num(int64(*p.MinReplicas)))
	}
	kv = append(kv, "maxReplicas", num(int64(p.MaxReplicas)))
	if p.DryRun != nil {
		kv = append(kv, "dryRun", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(*p.DryRun)})
	}
	metrics := &yaml.Node{Kind: yaml.SequenceNode}
	for i, m := range p.Metrics {
		mt := mapping("type", str(string(m.Target.Type)))
		if q, ok := m.Target.Quantity(); ok {
			mt.Content = append(mt.Content, str(lowerFirst(string(m.Target.Type))), quantity(q))
		}
		mt.Style = yaml.FlowStyle
		mn := mapping("name", str(m.Name), "query", query(m.Query), "target", mt)
		if i < len(p.Notes) {
			mn.HeadComment = strings.Join(p.Notes[i], "\n")
		}
		metrics.Content = append(metrics.Content, mn)
	}
	kv = append(kv, "metrics", metrics)
	if b := p.Behavior; b != nil {
		bn := mapping()
		if b.ScaleUp != nil {
			bn.Content = append(bn.Content, str("scaleUp"), rulesNode(b.ScaleUp))
		}
		if b.ScaleDown != nil {
			bn.Content = append(bn.Content, str("scaleDown"), rulesNode(b.ScaleDown))
		}
		kv = append(kv, "behavior", bn)
	}
	n := mapping(kv...)
	n.HeadComment = "HPA " + p.HPA
	return n
}

func rulesNode(r *policy.Rules) *yaml.Node {
	n := mapping()
	if r.StabilizationWindowSeconds != nil {
		n.Content = append(n.Content, str("stabilizationWindowSeconds"), num(int64(*r.StabilizationWindowSeconds)))
	}
	if r.SelectPolicy != nil {
		n.Content = append(n.Content, str("selectPolicy"), str(string(*r.SelectPolicy)))
	}
	if r.Tolerance != nil {
		n.Content = append(n.Content, str("tolerance"), quantity(*r.Tolerance))
	}
	if len(r.Policies) > 0 {
		ps := &yaml.Node{Kind: yaml.SequenceNode}
		for _, p := range r.Policies {
			pn := mapping("type", str(string(p.Type)), "value", num(int64(p.Value)), "periodSeconds", num(int64(p.PeriodSeconds)))
			pn.Style = yaml.FlowStyle
			ps.Content = append(ps.Content, pn)
		}
		n.Content = append(n.Content, str("policies"), ps)
	}
	return n
}

// mapping builds a mapping node of key (string), value (*yaml.Node) pairs.
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, str(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func num(i int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(i, 10)}
}

// quantity writes a quantity as the HPA wrote it, unquoted: "5", "500m", "1Gi".
func quantity(q policy.Quantity) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: q.String()}
}

// query writes a query single-quoted (PromQL's double quotes stay as they are), or as a
// literal block when a template kept its line breaks.
func query(q string) *yaml.Node {
	n := str(q)
	n.Style = yaml.SingleQuotedStyle
	if strings.Contains(q, "\n") {
		n.Style = yaml.LiteralStyle
	}
	return n
}
