package hpaimport

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/prescale/prescale/policy"
)

// Options tune Import and Convert.
type Options struct {
	// Series are the series names that Prometheus has (its __name__ values), which the
	// adapter discovers by listing it. A rule considers those that its seriesQuery's name
	// matchers select; its other label matchers are not checked. Nil means unknown: a
	// rule's series must then follow from the rule alone (see Convert).
	Series []string
	// Namespace is the namespace of an HPA whose manifest has none (kubectl's default
	// namespace); empty makes such an HPA an error.
	Namespace string
}

// Policy is one imported HPA: the policy, the HPA it came from, and for each of its
// metrics the provenance that the file's comment gives.
type Policy struct {
	policy.Policy
	// HPA is the HPA's namespace/name.
	HPA string
	// Notes[i] says where Metrics[i] came from: the rule, or the cAdvisor translation.
	Notes [][]string
}

// Convert turns HPAs into policies, one per HPA, in order. Each carries the HPA's
// scaleTargetRef (with the HPA's namespace), minReplicas, maxReplicas, behavior verbatim,
// dryRun: true (prescale runs beside the HPA, which keeps scaling), and one metric per HPA
// metric, in order:
//   - Pods: the query of the custom rule that serves the metric for pods, with the
//     namespace and, where the adapter lists the pods' names, a regular expression for the
//     target's pods (prescale selects the pods itself): "NAME-[a-z0-9]+-[a-z0-9]{5}" for a
//     Deployment, "NAME-[a-z0-9]{5}" for a ReplicaSet, "NAME-[0-9]+" for a StatefulSet. Its
//     series are per pod (grouped by the rule's pod label; relabelled to pod by
//     label_replace when that label has another name). Target AverageValue.
//   - Object: the custom rule's query for the described object's resource, which names the
//     object as the adapter does (its resource's label = "NAME"). One series; target Value
//     or AverageValue.
//   - External: the external rule's query, with the namespace unless resources.namespaced
//     is false, summed (the HPA sums an external metric's series). Target Value or
//     AverageValue.
//   - Resource and ContainerResource: cAdvisor and kube-state-metrics queries (see
//     resourceMetric); a Utilization target becomes the usage as a percentage of the
//     requests per pod, with an AverageValue target of that percentage.
//
// A metric's selector becomes label matchers exactly as the adapter converts it.
//
// Which rule serves a metric: a custom (external) rule serves the HPA metric M when a
// series S that it discovers is named M by its name.matches and name.as, and (custom) its
// resources give a label for the metric's resource and for namespaces. S comes from
// Options.Series when given (the series that its seriesQuery's name matchers select and its
// seriesFilters keep), else from the seriesQuery when it names its series (foo{...},
// {__name__="foo"}, {__name__=~"^foo$"}), else by inverting name.as ("$0" of ".*", or "$1"
// of "^PREFIX(.*)SUFFIX$", with literal text around the reference); a rule where none
// applies cannot be judged. It is an error,
// naming the HPA, the metric and every rule tried, when no rule serves the metric, when
// several rules or series might (the adapter would silently keep the last), when a rule
// cannot be judged, and when the adapter could not render the query (a template that
// refers to a field it does not have, a selector it cannot express).
func Convert(hpas []autoscalingv2.HorizontalPodAutoscaler, cfg *Config, o Options) ([]Policy, error) {
	im, err := newImporter(cfg, o)
	if err != nil {
		return nil, err
	}
	out := make([]Policy, 0, len(hpas))
	var errs []error
	names := map[string]string{}
	for i := range hpas {
		p, err := im.convert(&hpas[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Name = policyName(hpas[i].Name)
		if other, ok := names[p.Name]; ok {
			p.Name = policyName(strings.Replace(p.HPA, "/", "-", 1))
			if _, ok := names[p.Name]; ok {
				errs = append(errs, fmt.Errorf("HPA %s: its policy name %q is also HPA %s's", p.HPA, p.Name, other))
				continue
			}
		}
		names[p.Name] = p.HPA
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// Import is Convert, written as a policy file (Render) that policy.Parse accepts: it returns
// the file's bytes, or the problems Parse found in it.
func Import(hpas []autoscalingv2.HorizontalPodAutoscaler, cfg *Config, o Options) ([]byte, error) {
	ps, err := Convert(hpas, cfg, o)
	if err != nil {
		return nil, err
	}
	return Render(ps)
}

// importer holds the compiled rules.
type importer struct {
	o             Options
	cfg           *Config
	rules, extern []*namer
	series        []string // sorted; nil when unknown
}

func newImporter(cfg *Config, o Options) (*importer, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	im := &importer{o: o, cfg: cfg}
	if o.Series != nil {
		im.series = slices.Sorted(slices.Values(o.Series))
		im.series = slices.Compact(im.series)
	}
	for i := range cfg.Rules {
		n, err := newNamer(&cfg.Rules[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source(cfg.Sources.Rules, i, "rules"), err)
		}
		im.rules = append(im.rules, n)
	}
	for i := range cfg.ExternalRules {
		n, err := newNamer(&cfg.ExternalRules[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source(cfg.Sources.ExternalRules, i, "externalRules"), err)
		}
		im.extern = append(im.extern, n)
	}
	return im, nil
}

// source names rule i of a list.
func source(sources []string, i int, list string) string {
	if i < len(sources) {
		return sources[i]
	}
	return fmt.Sprintf("%s[%d]", list, i)
}

// convert imports one HPA, its name left for Convert to choose.
func (im *importer) convert(h *autoscalingv2.HorizontalPodAutoscaler) (Policy, error) {
	ns := h.Namespace
	if ns == "" {
		ns = im.o.Namespace
	}
	p := Policy{HPA: ns + "/" + h.Name}
	if ns == "" {
		return p, fmt.Errorf("HPA %s: no metadata.namespace (give the namespace its manifest is applied to)", h.Name)
	}
	ref := h.Spec.ScaleTargetRef
	p.Target = policy.TargetRef{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: ns, Name: ref.Name}
	if h.Spec.MinReplicas != nil {
		p.MinReplicas = new(*h.Spec.MinReplicas)
	}
	p.MaxReplicas = h.Spec.MaxReplicas
	p.DryRun = new(true)
	p.Behavior = behavior(h.Spec.Behavior)
	defaulted := len(h.Spec.Metrics) == 0
	if defaulted {
		// The HPA's default: 80 % CPU utilization (autoscaling/v2 defaulting).
		h = h.DeepCopy()
		h.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{Name: "cpu",
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: new(int32(80))}}}}
	}
	var errs []error
	used := map[string]bool{}
	for i, ms := range h.Spec.Metrics {
		m, notes, err := im.metric(h, ns, ms)
		if err != nil {
			errs = append(errs, fmt.Errorf("HPA %s metrics[%d]: %w", p.HPA, i, err))
			continue
		}
		if defaulted {
			notes = append([]string{"the HPA lists no metrics: its default, 80 % CPU utilization"}, notes...)
		}
		m.Name = uniqueName(m.Name, used)
		p.Metrics = append(p.Metrics, m)
		p.Notes = append(p.Notes, notes)
	}
	return p, errors.Join(errs...)
}

// metric imports one HPA metric: the policy metric (its name a suggestion) and its notes.
func (im *importer) metric(h *autoscalingv2.HorizontalPodAutoscaler, ns string, ms autoscalingv2.MetricSpec) (policy.Metric, []string, error) {
	ref := h.Spec.ScaleTargetRef
	switch ms.Type {
	case autoscalingv2.PodsMetricSourceType:
		if ms.Pods == nil {
			return policy.Metric{}, nil, fmt.Errorf("type Pods without pods")
		}
		what := "Pods metric " + ms.Pods.Metric.Name
		t, err := target(ms.Pods.Target, autoscalingv2.AverageValueMetricType)
		if err != nil {
			return policy.Metric{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		re, err := podRegex(ref.Kind, ref.Name)
		if err != nil {
			return policy.Metric{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		q, notes, err := im.custom(what, ms.Pods.Metric, ns, podsResource, re, true)
		if err != nil {
			return policy.Metric{}, nil, err
		}
		return policy.Metric{Name: metricName(ms.Pods.Metric.Name), Query: q, Target: t}, notes, nil
	case autoscalingv2.ObjectMetricSourceType:
		if ms.Object == nil {
			return policy.Metric{}, nil, fmt.Errorf("type Object without object")
		}
		obj := ms.Object.DescribedObject
		what := fmt.Sprintf("Object metric %s of %s %s", ms.Object.Metric.Name, obj.Kind, obj.Name)
		t, err := target(ms.Object.Target, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType)
		if err != nil {
			return policy.Metric{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		q, notes, err := im.custom(what, ms.Object.Metric, ns, resourceOfKind(obj.APIVersion, obj.Kind), obj.Name, false)
		if err != nil {
			return policy.Metric{}, nil, err
		}
		return policy.Metric{Name: metricName(ms.Object.Metric.Name), Query: q, Target: t}, notes, nil
	case autoscalingv2.ExternalMetricSourceType:
		if ms.External == nil {
			return policy.Metric{}, nil, fmt.Errorf("type External without external")
		}
		what := "External metric " + ms.External.Metric.Name
		t, err := target(ms.External.Target, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType)
		if err != nil {
			return policy.Metric{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		q, notes, err := im.external(what, ms.External.Metric, ns)
		if err != nil {
			return policy.Metric{}, nil, err
		}
		return policy.Metric{Name: metricName(ms.External.Metric.Name), Query: q, Target: t}, notes, nil
	case autoscalingv2.ResourceMetricSourceType:
		if ms.Resource == nil {
			return policy.Metric{}, nil, fmt.Errorf("type Resource without resource")
		}
		return im.withResourceRules(resourceMetric(string(ms.Resource.Name), "", ms.Resource.Target, ns, ref))
	case autoscalingv2.ContainerResourceMetricSourceType:
		if ms.ContainerResource == nil {
			return policy.Metric{}, nil, fmt.Errorf("type ContainerResource without containerResource")
		}
		return im.withResourceRules(resourceMetric(string(ms.ContainerResource.Name), ms.ContainerResource.Container, ms.ContainerResource.Target, ns, ref))
	}
	return policy.Metric{}, nil, fmt.Errorf("type %q: not a metric source type of autoscaling/v2", ms.Type)
}

// withResourceRules adds to a Resource metric's notes that the configuration has
// resourceRules, which the importer does not use: whether the adapter serves the resource
// metrics API in place of metrics-server is the cluster's APIService's to say.
func (im *importer) withResourceRules(m policy.Metric, notes []string, err error) (policy.Metric, []string, error) {
	if err == nil && im.cfg.ResourceRules != nil {
		notes = append(notes, "the adapter's configuration has resourceRules: if the adapter serves metrics.k8s.io in place of metrics-server, the HPA reads their containerQuery instead")
	}
	return m, notes, err
}

// target converts a Value or AverageValue target, of one of the types allowed.
func target(t autoscalingv2.MetricTarget, allowed ...autoscalingv2.MetricTargetType) (policy.MetricTarget, error) {
	if !slices.Contains(allowed, t.Type) {
		return policy.MetricTarget{}, fmt.Errorf("target.type %q: the HPA allows only %v here", t.Type, allowed)
	}
	var q *string
	switch t.Type {
	case autoscalingv2.ValueMetricType:
		if t.Value != nil {
			q = new(t.Value.String())
		}
	case autoscalingv2.AverageValueMetricType:
		if t.AverageValue != nil {
			q = new(t.AverageValue.String())
		}
	}
	if q == nil {
		return policy.MetricTarget{}, fmt.Errorf("target.type %s without its target.%s", t.Type, lowerFirst(string(t.Type)))
	}
	pq, err := policy.ParseQuantity(*q)
	if err != nil {
		return policy.MetricTarget{}, fmt.Errorf("target: %w", err)
	}
	out := policy.MetricTarget{Type: policy.TargetType(t.Type)}
	if t.Type == autoscalingv2.ValueMetricType {
		out.Value = &pq
	} else {
		out.AverageValue = &pq
	}
	return out, nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// podRegex is a regular expression for the names of the pods of a workload, which prescale
// selects itself (the adapter gets their names from the HPA).
func podRegex(kind, name string) (string, error) {
	n := regexp.QuoteMeta(name)
	switch kind {
	case "Deployment":
		return n + "-[a-z0-9]+-[a-z0-9]{5}", nil // <deployment>-<pod-template-hash>-<5>
	case "ReplicaSet":
		return n + "-[a-z0-9]{5}", nil
	case "StatefulSet":
		return n + "-[0-9]+", nil
	}
	return "", fmt.Errorf("scaleTargetRef kind %s: the importer knows how Deployments, ReplicaSets and StatefulSets name their pods, not a %s's", kind, kind)
}

// custom renders the query of a Pods or Object metric from the custom rules.
func (im *importer) custom(what string, id autoscalingv2.MetricIdentifier, ns string, res groupResource, value string, regex bool) (string, []string, error) {
	n, idx, series, err := im.find(what, id.Name, im.rules, im.cfg.Sources.Rules, "rules", res)
	if err != nil {
		return "", nil, err
	}
	parts, err := selectorParts(id.Selector)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", what, err)
	}
	src := source(im.cfg.Sources.Rules, idx, "rules")
	q, groupBy, err := n.render(series, parts, ns, res, value, regex)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %s (seriesQuery %s): the adapter would fail to render it: %w", what, src, n.rule.SeriesQuery, err)
	}
	if dropsLabel(q, groupBy) {
		return "", nil, fmt.Errorf("%s: %s (seriesQuery %s): its query %q aggregates away the label %s, by which the adapter matches its values to the %s: it would serve no value",
			what, src, n.rule.SeriesQuery, q, groupBy, res)
	}
	notes := []string{fmt.Sprintf("prometheus-adapter %s (seriesQuery: %s), series %s", src, n.rule.SeriesQuery, series)}
	if res == podsResource {
		notes = append(notes, fmt.Sprintf("pods: %s=~%q stands for the names of the target's pods, which the adapter gets from the HPA", groupBy, value))
		if groupBy != "pod" {
			q = fmt.Sprintf(`label_replace(%s, "pod", "$1", %q, "(.*)")`, q, groupBy)
			notes = append(notes, fmt.Sprintf("label_replace: the rule names pods by the label %s; prescale reads them by pod", groupBy))
		}
	}
	return q, notes, nil
}

// external renders the query of an External metric from the external rules.
func (im *importer) external(what string, id autoscalingv2.MetricIdentifier, ns string) (string, []string, error) {
	n, idx, series, err := im.find(what, id.Name, im.extern, im.cfg.Sources.ExternalRules, "externalRules", groupResource{})
	if err != nil {
		return "", nil, err
	}
	parts, err := selectorParts(id.Selector)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %w", what, err)
	}
	src := source(im.cfg.Sources.ExternalRules, idx, "externalRules")
	q, _, err := n.render(series, parts, ns, groupResource{}, "", false)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %s (seriesQuery %s): the adapter would fail to render it: %w", what, src, n.rule.SeriesQuery, err)
	}
	return "sum(" + q + ")", []string{
		fmt.Sprintf("prometheus-adapter %s (seriesQuery: %s), series %s", src, n.rule.SeriesQuery, series),
		"sum(): the HPA sums an external metric's series",
	}, nil
}

// candidate is one series that a rule serves the metric from.
type candidate struct {
	rule   int
	series string
}

// find returns the one rule (and series) that serves metric for res (zero: external).
func (im *importer) find(what, metric string, namers []*namer, sources []string, list string, res groupResource) (*namer, int, string, error) {
	var found []candidate
	var tried, unjudged []string
	for i, n := range namers {
		src := fmt.Sprintf("%s (seriesQuery: %s)", source(sources, i, list), n.rule.SeriesQuery)
		if res != (groupResource{}) {
			if _, err := n.labelFor(res); err != nil {
				tried = append(tried, src+": "+err.Error())
				continue
			}
			if _, err := n.labelFor(namespacesResource); err != nil {
				tried = append(tried, src+": "+err.Error())
				continue
			}
		}
		series, judged, why := im.seriesOf(n, metric)
		switch {
		case !judged:
			unjudged = append(unjudged, src)
			tried = append(tried, src+": cannot tell without Prometheus's series: "+why)
		case len(series) == 0:
			tried = append(tried, src+": "+why)
		default:
			for _, s := range series {
				found = append(found, candidate{i, s})
			}
			verb := ": serves it from series "
			if im.series == nil {
				verb = ": would serve it from series " // if Prometheus has it
			}
			tried = append(tried, src+verb+strings.Join(series, ", "))
		}
	}
	if len(found) == 1 && len(unjudged) == 0 {
		c := found[0]
		return namers[c.rule], c.rule, c.series, nil
	}
	rules := "\n  " + strings.Join(tried, "\n  ")
	if len(tried) == 0 {
		rules = " none (the configuration has no " + list + ")"
	}
	hint := ""
	if im.series == nil {
		hint = "; the series Prometheus has tell which (Options.Series; prescale import --prometheus lists them as the adapter does)"
	}
	switch {
	case len(found) == 0 && len(unjudged) == 0:
		return nil, 0, "", fmt.Errorf("%s: no prometheus-adapter rule serves it%s; rules tried:%s", what, hint, rules)
	case len(unjudged) > 0:
		return nil, 0, "", fmt.Errorf("%s: cannot tell which prometheus-adapter rule serves it%s; rules tried:%s", what, hint, rules)
	}
	return nil, 0, "", fmt.Errorf("%s: ambiguous: %d series of the prometheus-adapter rules could serve it (the adapter keeps the last it lists)%s; rules tried:%s", what, len(found), hint, rules)
}

// seriesOf returns the series from which rule n serves metric: those it discovers (from
// Options.Series, its seriesQuery or the inverse of name.as) and names metric, or why there
// is none. judged is false when the series cannot be told without listing Prometheus.
func (im *importer) seriesOf(n *namer, metric string) (series []string, judged bool, why string) {
	var cands []string
	lit, isLit := n.literalSeries()
	switch {
	case im.series != nil && isLit:
		for _, s := range lit {
			if _, ok := slices.BinarySearch(im.series, s); ok {
				cands = append(cands, s)
			}
		}
		if len(cands) == 0 {
			return nil, true, fmt.Sprintf("Prometheus has no series %s", strings.Join(lit, " or "))
		}
	case im.series != nil:
		cands = im.series
	case isLit:
		cands = lit
	case !strings.Contains(n.nameAs, "$"):
		if n.nameAs != metric {
			return nil, true, fmt.Sprintf("it names every series %s", n.nameAs)
		}
		return nil, false, "its seriesQuery does not name its series, and it names any series it discovers " + metric
	default:
		inv, ok := n.inverse(metric)
		if !ok {
			return nil, false, fmt.Sprintf("its seriesQuery does not name its series, and its name (matches %q, as %q) cannot be inverted", n.nameMatches, n.nameAs)
		}
		if inv == "" {
			return nil, true, fmt.Sprintf("its name.as %q cannot give %s", n.nameAs, metric)
		}
		cands = []string{inv}
	}
	for _, s := range cands {
		if !n.selects(s) {
			continue
		}
		if name, ok := n.metricName(s); ok && name == metric {
			series = append(series, s)
		}
	}
	if len(series) == 0 {
		why = fmt.Sprintf("names no series %s (series considered: %s)", metric, summarize(cands))
	}
	return series, true, why
}

// summarize lists at most a few names.
func summarize(names []string) string {
	const most = 5
	switch {
	case len(names) == 0:
		return "none"
	case len(names) > most:
		return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
	}
	return strings.Join(names, ", ")
}

// behavior copies the HPA's behavior.
func behavior(b *autoscalingv2.HorizontalPodAutoscalerBehavior) *policy.Behavior {
	if b == nil {
		return nil
	}
	return &policy.Behavior{ScaleUp: rules(b.ScaleUp), ScaleDown: rules(b.ScaleDown)}
}

func rules(r *autoscalingv2.HPAScalingRules) *policy.Rules {
	if r == nil {
		return nil
	}
	out := &policy.Rules{}
	if r.StabilizationWindowSeconds != nil {
		out.StabilizationWindowSeconds = new(*r.StabilizationWindowSeconds)
	}
	if r.SelectPolicy != nil {
		out.SelectPolicy = new(policy.SelectPolicy(*r.SelectPolicy))
	}
	for _, p := range r.Policies {
		out.Policies = append(out.Policies, policy.RatePolicy{Type: policy.RatePolicyType(p.Type), Value: p.Value, PeriodSeconds: p.PeriodSeconds})
	}
	if r.Tolerance != nil {
		q := policy.MustQuantity(r.Tolerance.String())
		out.Tolerance = &q
	}
	return out
}

// nonLabel is what a policy or metric name may not hold.
var nonLabel = regexp.MustCompile(`[^a-z0-9]+`)

// policyName makes an HPA name a policy name: a lowercase RFC 1123 label.
func policyName(s string) string { return label(s, "hpa-") }

// metricName makes an HPA metric name a metric name.
func metricName(s string) string { return label(s, "m-") }

func label(s, prefix string) string {
	s = strings.Trim(nonLabel.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		s = prefix + s
	}
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	return s
}

// uniqueName returns name, or name-2, name-3, ... when used has it.
func uniqueName(name string, used map[string]bool) string {
	out := name
	for i := 2; used[out]; i++ {
		suffix := fmt.Sprintf("-%d", i)
		out = strings.TrimRight(name[:min(len(name), 63-len(suffix))], "-") + suffix
	}
	used[out] = true
	return out
}
