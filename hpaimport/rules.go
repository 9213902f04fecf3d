package hpaimport

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"text/template"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// namer is a compiled rule, as naming.NamersFromConfig builds a metricNamer from a
// config.DiscoveryRule (pkg/naming/metric_namer.go).
type namer struct {
	rule *Rule
	// nameMatchers are the seriesQuery's matchers on the series name (__name__).
	nameMatchers []*labels.Matcher
	// filters are seriesFilters, then name.matches as a positive filter (FilterSeries).
	filters     []reMatcher
	nameMatches *regexp.Regexp
	nameAs      string
	query       *template.Template
	// namespaced is resources.namespaced, default true (external rules only).
	namespaced    bool
	labelTemplate *template.Template
	// overrides maps each normalised resource to its label (resourceConverter.resourceToLabel).
	overrides map[groupResource]string
}

// reMatcher is naming.ReMatcher: a series name filter, positive or negative.
type reMatcher struct {
	re       *regexp.Regexp
	positive bool
}

func (m reMatcher) matches(s string) bool { return m.re.MatchString(s) == m.positive }

// compile checks the rule as the adapter does when it loads it.
func (r *Rule) compile() error {
	_, err := newNamer(r)
	return err
}

// newNamer compiles a rule; its errors are those that stop the adapter from starting, in
// the adapter's words where it has them.
func newNamer(r *Rule) (*namer, error) {
	n := &namer{rule: r, namespaced: true, overrides: make(map[groupResource]string)}
	if r.Resources.Namespaced != nil {
		n.namespaced = *r.Resources.Namespaced
	}
	// NewResourceConverter.
	if t := r.Resources.Template; t != "" {
		lt, err := template.New("resource-label").Delims("<<", ">>").Parse(t)
		if err != nil {
			return nil, fmt.Errorf("resources.template: unable to parse label template %q: %w", t, err)
		}
		if err := checkLabelTemplate(lt); err != nil {
			return nil, fmt.Errorf("resources.template: unable to generate label format from template %q: %w", t, err)
		}
		n.labelTemplate = lt
	}
	for lbl, gr := range r.Resources.Overrides {
		if gr.Resource == "" {
			return nil, fmt.Errorf("resources.overrides.%s.resource: required", lbl)
		}
		n.overrides[normalize(gr)] = lbl
	}
	// NewExternalMetricsQuery: the template is parsed once, at start-up.
	q, err := template.New("metrics-query").Delims("<<", ">>").Parse(r.MetricsQuery)
	if err != nil {
		return nil, fmt.Errorf("metricsQuery: unable to parse metrics query template %q: %w", r.MetricsQuery, err)
	}
	n.query = q
	for i, f := range r.SeriesFilters {
		m, err := newReMatcher(f)
		if err != nil {
			return nil, fmt.Errorf("seriesFilters[%d]: %w", i, err)
		}
		n.filters = append(n.filters, m)
	}
	if r.Name.Matches != "" {
		m, err := newReMatcher(RegexFilter{Is: r.Name.Matches})
		if err != nil {
			return nil, fmt.Errorf("name.matches: %w", err)
		}
		n.filters = append(n.filters, m)
		n.nameMatches = m.re
	} else {
		n.nameMatches = regexp.MustCompile(".*")
	}
	n.nameAs = r.Name.As
	if n.nameAs == "" {
		switch len(n.nameMatches.SubexpNames()) {
		case 1:
			n.nameAs = "$0" // no capture group: the whole match
		case 2:
			n.nameAs = "$1" // one capture group: it
		default:
			return nil, fmt.Errorf("name.as: must specify an 'as' value for name matcher %q associated with series query %q", r.Name.Matches, r.SeriesQuery)
		}
	}
	// The adapter sends seriesQuery to Prometheus as it is; the importer reads its name
	// matchers to tell which series the rule discovers.
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(r.SeriesQuery)
	if err != nil {
		return nil, fmt.Errorf("seriesQuery: %q is not a series selector (Prometheus refuses it): %w", r.SeriesQuery, err)
	}
	for _, m := range ms {
		if m.Name == model.MetricNameLabel {
			n.nameMatchers = append(n.nameMatchers, m)
		}
	}
	return n, nil
}

// newReMatcher is naming.NewReMatcher.
func newReMatcher(f RegexFilter) (reMatcher, error) {
	switch {
	case f.Is != "" && f.IsNot != "":
		return reMatcher{}, fmt.Errorf("cannot have both an `is` (%q) and `isNot` (%q) expression in a single filter", f.Is, f.IsNot)
	case f.Is == "" && f.IsNot == "":
		return reMatcher{}, errors.New("must have either an `is` or `isNot` expression in a filter")
	}
	raw, positive := f.Is, true
	if raw == "" {
		raw, positive = f.IsNot, false
	}
	re, err := regexp.Compile(raw)
	if err != nil {
		return reMatcher{}, fmt.Errorf("unable to compile series filter %q: %w", raw, err)
	}
	return reMatcher{re: re, positive: positive}, nil
}

// checkLabelTemplate is newLabelGroupResExtractor's check (pkg/naming/lbl_res.go): the
// template, given regular expressions for the group and the resource, must make a regular
// expression that captures the resource.
func checkLabelTemplate(t *template.Template) error {
	var b bytes.Buffer
	if err := t.Execute(&b, groupResource{Group: "(?P<group>.+?)", Resource: "(?P<resource>.+?)"}); err != nil {
		return fmt.Errorf("unable to convert label template to matcher: %w", err)
	}
	if b.Len() == 0 {
		return errors.New("unable to convert label template to matcher: empty template")
	}
	re, err := regexp.Compile("^" + b.String() + "$")
	if err != nil {
		return fmt.Errorf("unable to convert label template to matcher: %w", err)
	}
	if !slices.Contains(re.SubexpNames(), "resource") {
		return errors.New("must include at least `{{.Resource}}` in the label template")
	}
	return nil
}

// selects reports whether the rule discovers a series of this name: the seriesQuery's name
// matchers select it and it passes the filters (FilterSeries).
func (n *namer) selects(series string) bool {
	for _, m := range n.nameMatchers {
		if !m.Matches(series) {
			return false
		}
	}
	for _, f := range n.filters {
		if !f.matches(series) {
			return false
		}
	}
	return true
}

// metricName is MetricNameForSeries: the name the API serves the series as.
func (n *namer) metricName(series string) (string, bool) {
	m := n.nameMatches.FindStringSubmatchIndex(series)
	if m == nil {
		return "", false
	}
	return string(n.nameMatches.ExpandString(nil, n.nameAs, series, m)), true
}

// literalSeries returns the series names that the seriesQuery names: an equality on
// __name__ (foo{...} or {__name__="foo"}), or a regular expression that is a list of
// literal names ({__name__=~"^foo$"}, {__name__=~"foo|bar"}). False when it names none
// (a pattern such as "^container_.*", or no name matcher).
func (n *namer) literalSeries() ([]string, bool) {
	for _, m := range n.nameMatchers {
		switch m.Type {
		case labels.MatchEqual:
			return []string{m.Value}, true
		case labels.MatchRegexp:
			if set := literalSet(m.Value); set != nil {
				return set, true
			}
		}
	}
	return nil, false
}

// literalSet returns the strings a fully anchored regular expression (as Prometheus anchors
// its matchers) matches when it is a literal or an alternation of literals, optionally
// between ^ and $, sorted; nil otherwise.
func literalSet(expr string) []string {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil
	}
	// Drop ^ and $ at the ends (redundant: Prometheus anchors) and one capturing group.
	if re.Op == syntax.OpConcat {
		subs := re.Sub
		for len(subs) > 0 && (subs[0].Op == syntax.OpBeginText || subs[0].Op == syntax.OpBeginLine) {
			subs = subs[1:]
		}
		for len(subs) > 0 && (subs[len(subs)-1].Op == syntax.OpEndText || subs[len(subs)-1].Op == syntax.OpEndLine) {
			subs = subs[:len(subs)-1]
		}
		switch len(subs) {
		case 0:
			return nil
		case 1:
			re = subs[0]
		default:
			re = &syntax.Regexp{Op: syntax.OpConcat, Sub: subs}
		}
	}
	if re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	var lits func(r *syntax.Regexp) []string
	lits = func(r *syntax.Regexp) []string {
		switch r.Op {
		case syntax.OpLiteral:
			if r.Flags&syntax.FoldCase != 0 {
				return nil
			}
			return []string{string(r.Rune)}
		case syntax.OpAlternate:
			var out []string
			for _, s := range r.Sub {
				l := lits(s)
				if l == nil {
					return nil
				}
				out = append(out, l...)
			}
			return out
		case syntax.OpConcat: // the parser factors "foo|fob" into "fo(?:o|b)"
			out := []string{""}
			for _, s := range r.Sub {
				l := lits(s)
				if l == nil {
					return nil
				}
				var next []string
				for _, a := range out {
					for _, b := range l {
						next = append(next, a+b)
					}
				}
				out = next
			}
			return out
		case syntax.OpCharClass: // "fo[ob]"
			var out []string
			for i := 0; i+1 < len(r.Rune); i += 2 {
				if r.Rune[i+1]-r.Rune[i] > 16 {
					return nil
				}
				for c := r.Rune[i]; c <= r.Rune[i+1]; c++ {
					out = append(out, string(c))
				}
			}
			return out
		}
		return nil
	}
	out := lits(re)
	slices.Sort(out)
	return out
}

// inverse returns the series name that name.matches and name.as turn into metric, when they
// are simple enough to invert: name.as is one reference to the whole match ($0) or to the
// one capture group ($1), between literal text ("${1}_per_second"), and name.matches is ".*"
// for $0, or "PREFIX(.*)SUFFIX" (or (.+)) with literal prefix and suffix for $1, anchored
// where the inverse would otherwise not be unique. judged is false when they are not that
// simple; an empty series with judged true means the rule names no series metric (its
// name.as text is not around metric). The caller checks the result forward (selects,
// metricName).
func (n *namer) inverse(metric string) (series string, judged bool) {
	before, ref, after, ok := splitAs(n.nameAs)
	if !ok {
		return "", false
	}
	if !strings.HasPrefix(metric, before) || !strings.HasSuffix(metric[len(before):], after) {
		return "", true
	}
	inner := metric[len(before) : len(metric)-len(after)]
	core := n.nameMatches.String()
	anchoredStart := strings.HasPrefix(core, "^")
	if anchoredStart {
		core = core[1:]
	}
	anchoredEnd := strings.HasSuffix(core, "$") && !strings.HasSuffix(core, `\$`)
	if anchoredEnd {
		core = core[:len(core)-1]
	}
	switch ref {
	case "0":
		if core == ".*" || core == ".+" {
			return inner, true
		}
	case "1":
		i := strings.Index(core, "(.*)")
		if i < 0 {
			i = strings.Index(core, "(.+)")
		}
		if i < 0 {
			return "", false
		}
		prefix, suffix := core[:i], core[i+len("(.*)"):]
		p, ok1 := literal(prefix)
		s, ok2 := literal(suffix)
		if !ok1 || !ok2 || (p != "" && !anchoredStart) || (s != "" && !anchoredEnd) {
			return "", false
		}
		return p + inner + s, true
	}
	return "", false
}

// splitAs splits a name.as with exactly one reference into the text before it, the
// reference (a group's number or name) and the text after, reading the reference as
// regexp.Expand does: ${name}, or $ and the longest run of letters, digits and underscores
// ("$1_total" refers to a group named "1_total"). ok is false without exactly one
// reference, or for "$$".
func splitAs(as string) (before, ref, after string, ok bool) {
	i := strings.IndexByte(as, '$')
	if i < 0 || strings.IndexByte(as[i+1:], '$') >= 0 {
		return "", "", "", false
	}
	rest := as[i+1:]
	if strings.HasPrefix(rest, "{") {
		j := strings.IndexByte(rest, '}')
		if j < 0 {
			return "", "", "", false
		}
		return as[:i], rest[1:j], rest[j+1:], true
	}
	j := 0
	for j < len(rest) && (rest[j] == '_' || rest[j] >= '0' && rest[j] <= '9' || rest[j] >= 'a' && rest[j] <= 'z' || rest[j] >= 'A' && rest[j] <= 'Z') {
		j++
	}
	return as[:i], rest[:j], rest[j:], j > 0
}

// literal returns the text a regular expression matches when it is a literal (or empty).
func literal(expr string) (string, bool) {
	if expr == "" {
		return "", true
	}
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil || re.Op != syntax.OpLiteral || re.Flags&syntax.FoldCase != 0 {
		return "", false
	}
	return string(re.Rune), true
}

// groupResource is a normalised Kubernetes group-resource: the resource plural, lower case.
// Its field names are schema.GroupResource's, which resources.template sees.
type groupResource struct {
	Group, Resource string
}

func (g groupResource) String() string {
	if g.Group == "" {
		return g.Resource
	}
	return g.Resource + "." + g.Group
}

// knownResources are the resources the importer normalises without the API server's
// RESTMapper (which the adapter uses): singular and plural to the group-resource.
var knownResources = map[string]groupResource{}

func init() {
	for _, r := range []struct{ group, singular, plural, kind string }{
		{"", "pod", "pods", "Pod"},
		{"", "namespace", "namespaces", "Namespace"},
		{"", "node", "nodes", "Node"},
		{"", "service", "services", "Service"},
		{"", "persistentvolume", "persistentvolumes", "PersistentVolume"},
		{"", "persistentvolumeclaim", "persistentvolumeclaims", "PersistentVolumeClaim"},
		{"apps", "deployment", "deployments", "Deployment"},
		{"apps", "statefulset", "statefulsets", "StatefulSet"},
		{"apps", "replicaset", "replicasets", "ReplicaSet"},
		{"apps", "daemonset", "daemonsets", "DaemonSet"},
		{"batch", "job", "jobs", "Job"},
		{"networking.k8s.io", "ingress", "ingresses", "Ingress"},
	} {
		gr := groupResource{Group: r.group, Resource: r.plural}
		knownResources[r.singular] = gr
		knownResources[r.plural] = gr
		knownKinds[r.kind] = gr
		singulars[gr] = r.singular
	}
}

var (
	knownKinds = map[string]groupResource{}
	singulars  = map[groupResource]string{}
)

var (
	podsResource       = groupResource{Resource: "pods"}
	namespacesResource = groupResource{Resource: "namespaces"}
)

// normalize is the RESTMapper's normalisation of an override's group-resource, for the
// resources it knows; another resource is taken as written, lower case.
func normalize(gr GroupResource) groupResource {
	r := strings.ToLower(gr.Resource)
	if k, ok := knownResources[r]; ok && (gr.Group == "" || gr.Group == k.Group) {
		return k
	}
	return groupResource{Group: gr.Group, Resource: r}
}

// resourceOfKind is the resource of an object kind (an HPA Object metric's described
// object); apiVersion gives the group of a kind the importer does not know.
func resourceOfKind(apiVersion, kind string) groupResource {
	if gr, ok := knownKinds[kind]; ok {
		return gr
	}
	group := ""
	if i := strings.Index(apiVersion, "/"); i >= 0 {
		group = apiVersion[:i]
	}
	r := strings.ToLower(kind)
	switch {
	case strings.HasSuffix(r, "s"):
		r += "es"
	case strings.HasSuffix(r, "y"):
		r = r[:len(r)-1] + "ies"
	default:
		r += "s"
	}
	return groupResource{Group: group, Resource: r}
}

// groupSanitizer is naming.GroupNameSanitizer.
var groupSanitizer = strings.NewReplacer(".", "_", "-", "_")

// labelFor is LabelForResource: the override's label, else the template's, given the
// resource singular and its group with dots and dashes as underscores.
func (n *namer) labelFor(gr groupResource) (string, error) {
	if l, ok := n.overrides[gr]; ok {
		return l, nil
	}
	if n.labelTemplate == nil {
		return "", fmt.Errorf("no label for resource %s: resources.overrides does not name it and there is no resources.template", gr)
	}
	singular, ok := singulars[gr]
	if !ok {
		singular = strings.TrimSuffix(gr.Resource, "s")
	}
	var b bytes.Buffer
	if err := n.labelTemplate.Execute(&b, groupResource{Group: groupSanitizer.Replace(gr.Group), Resource: singular}); err != nil {
		return "", fmt.Errorf("resources.template for resource %s: %w", gr, err)
	}
	if b.Len() == 0 {
		return "", fmt.Errorf("resources.template for resource %s: empty label produced by label template", gr)
	}
	return b.String(), nil
}

// queryArgs are naming.queryTemplateArgs, the metricsQuery template's data: these fields
// and no others, as the adapter's.
type queryArgs struct {
	Series            string
	LabelMatchers     string
	LabelValuesByName map[string]string
	GroupBy           string
	GroupBySlice      []string
}

// queryPart is naming.queryPart.
type queryPart struct {
	label    string
	values   []string
	operator selection.Operator
}

// selectorParts is createQueryPartsFromSelector: the metric selector's requirements, in the
// order labels.Selector keeps them (by key), each with its values sorted.
func selectorParts(sel *metav1.LabelSelector) ([]queryPart, error) {
	if sel == nil {
		return nil, nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("metric selector: %w", err)
	}
	reqs, _ := s.Requirements()
	parts := make([]queryPart, 0, len(reqs))
	for _, r := range reqs {
		parts = append(parts, requirementPart(r))
	}
	return parts, nil
}

func requirementPart(r klabels.Requirement) queryPart {
	return queryPart{label: r.Key(), values: r.Values().List(), operator: r.Operator()}
}

// render is metricsQuery.Build (custom metrics: resource set) and BuildExternal (external:
// resource zero): the label matchers of the metric selector's parts, then the namespace's,
// then (custom) the resource label's, joined by ","; GroupBy the resource label (custom) or
// empty (external). resourceValue is what the adapter would join with "|" from the names
// it lists; regex says to match it with =~ (several pods) rather than = (one object).
func (n *namer) render(series string, parts []queryPart, namespace string, resource groupResource, resourceValue string, regex bool) (query, groupBy string, err error) {
	external := resource == groupResource{}
	if namespace != "" && (!external || n.namespaced) {
		nsLabel, err := n.labelFor(namespacesResource)
		if err != nil {
			return "", "", err
		}
		parts = append(parts, queryPart{label: nsLabel, values: []string{namespace}, operator: selection.Equals})
	}
	exprs, byName, err := processParts(parts)
	if err != nil {
		return "", "", err
	}
	args := queryArgs{Series: series, LabelValuesByName: byName, GroupBySlice: []string{}}
	if !external {
		label, err := n.labelFor(resource)
		if err != nil {
			return "", "", err
		}
		match := labelEq
		if regex {
			match = labelMatches
		}
		exprs = append(exprs, match(label, resourceValue))
		byName[label] = resourceValue
		args.GroupBy, args.GroupBySlice, groupBy = label, []string{label}, label
	}
	args.LabelMatchers = strings.Join(exprs, ",")
	var b bytes.Buffer
	if err := n.query.Execute(&b, args); err != nil {
		return "", "", fmt.Errorf("metricsQuery: %w", err)
	}
	if b.Len() == 0 {
		return "", "", errors.New("metricsQuery: empty query produced by metrics query template")
	}
	return b.String(), groupBy, nil
}

// The label matchers of pkg/client/helpers.go: the value quoted with Go's %q, as PromQL
// reads it.
func labelEq(l, v string) string         { return fmt.Sprintf("%s=%q", l, v) }
func labelNeq(l, v string) string        { return fmt.Sprintf("%s!=%q", l, v) }
func labelMatches(l, v string) string    { return fmt.Sprintf("%s=~%q", l, v) }
func labelNotMatches(l, v string) string { return fmt.Sprintf("%s!~%q", l, v) }

// processParts is metricsQuery.processQueryParts with its selectMatcher and
// selectTargetValue: a part it cannot express exactly is an error, never a looser query.
func processParts(parts []queryPart) ([]string, map[string]string, error) {
	var exprs []string
	byName := map[string]string{}
	for _, p := range parts {
		if p.label == "" {
			return nil, nil, errors.New("label not specified")
		}
		if p.operator == selection.GreaterThan || p.operator == selection.LessThan {
			return nil, nil, fmt.Errorf("metric selector on %s: operator %s not supported by the adapter", p.label, p.operator)
		}
		match, value, err := matcherFor(p)
		if err != nil {
			return nil, nil, fmt.Errorf("metric selector on %s: %w", p.label, err)
		}
		exprs = append(exprs, match(p.label, value))
		byName[p.label] = strings.Join(p.values, "|")
	}
	return exprs, byName, nil
}

func matcherFor(p queryPart) (func(string, string) string, string, error) {
	eq := p.operator == selection.Equals || p.operator == selection.DoubleEquals
	switch len(p.values) {
	case 0:
		switch p.operator {
		case selection.Exists:
			return labelNeq, "", nil
		case selection.DoesNotExist:
			return labelEq, "", nil
		}
		return nil, "", errors.New("malformed query: no values")
	case 1:
		switch {
		case eq:
			return labelEq, p.values[0], nil
		case p.operator == selection.NotEquals:
			return labelNeq, p.values[0], nil
		case p.operator == selection.In:
			return labelMatches, p.values[0], nil
		case p.operator == selection.NotIn:
			return labelNotMatches, p.values[0], nil
		}
		return nil, "", errors.New("unsupported values for the operator")
	}
	v := strings.Join(p.values, "|")
	switch {
	case eq || p.operator == selection.In:
		return labelMatches, v, nil
	case p.operator == selection.NotEquals || p.operator == selection.NotIn:
		return labelNotMatches, v, nil
	}
	return nil, "", errors.New("unsupported values for the operator")
}

// dropsLabel reports whether a rendered query's outermost aggregation removes label: the
// adapter matches a custom metric's values to pods (or the object) by that label, so a
// query without it serves no value. A query the parser cannot read is left to Prometheus.
func dropsLabel(query, label string) bool {
	expr, err := parser.NewParser(parser.Options{EnableExperimentalFunctions: true}).ParseExpr(query)
	if err != nil {
		return false
	}
	for {
		p, ok := expr.(*parser.ParenExpr)
		if !ok {
			break
		}
		expr = p.Expr
	}
	a, ok := expr.(*parser.AggregateExpr)
	if !ok {
		return false
	}
	switch a.Op {
	case parser.TOPK, parser.BOTTOMK, parser.LIMITK, parser.LIMIT_RATIO:
		return false // they keep the labels of the series they select
	}
	return slices.Contains(a.Grouping, label) == a.Without
}
