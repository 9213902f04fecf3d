package policy

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The limits of a policy file. They bound the work of judging any file: Parse takes under a
// second and under 100 MB for any file within MaxFileBytes (BenchmarkParseWorstCase).
const (
	// MaxFileBytes is the largest policy file Parse reads: 1 MiB, about 3800 policies of the
	// size of bench-soak's.
	MaxFileBytes = 1 << 20
	// MaxPolicies is the most policies a file may list.
	MaxPolicies = 5000
	// MaxMetrics is the most metrics a policy may list.
	MaxMetrics = 64
	// MaxAliasValues is the most values and keys that aliases may repeat in all: an alias
	// counts every value and key of the node it stands for, each time it is used, so that
	// anchors of aliases (the "billion laughs") cannot multiply a small file's work.
	MaxAliasValues = 100_000
)

// Parse reads a policy file strictly and validates it. The file is one YAML document, a
// mapping whose "policies" key lists the policies; settings names the other top-level keys,
// which the caller reads (global settings) and Parse skips. Any other key at any depth, a
// value of the wrong kind or type, an integer out of int32 range and a key given twice are
// errors.
//
// Parse reports every problem at once: the error joins (errors.Join) one *FieldError per
// problem, each naming the YAML path, the offending value and the line, in file order. A
// field that failed to decode is not validated further. A YAML syntax error is returned
// alone. On error Parse returns the zero File.
//
// Parse reads at most MaxFileBytes: a longer file is an error. A list of more than
// MaxPolicies policies or of more than MaxMetrics metrics is a problem of that list, whose
// elements are then not decoded. Aliases that repeat more than MaxAliasValues values and
// keys in all stop the walk: the error, returned alone, names the line of the alias that
// crossed the limit.
func Parse(r io.Reader, settings ...string) (File, error) {
	return ParseStep(r, MinForecastStep, settings...)
}

// ParseStep is Parse for a controller that samples the forecasts' load every step (prescale
// run's interval): it validates with File.ValidateStep, so that a forecast that could not be
// built at that step (a season shorter than MinSeason(step)) is a problem of the file, with
// its line, rather than a forecast that is silently never built.
func ParseStep(r io.Reader, step time.Duration, settings ...string) (File, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return File{}, fmt.Errorf("read policy file: %w", err)
	}
	if len(data) > MaxFileBytes {
		return File{}, fmt.Errorf("policy file is larger than the limit of %d bytes (1 MiB)", MaxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return File{}, errors.New("policy file is empty: want a mapping with a policies list")
		}
		return File{}, fmt.Errorf("parse policy file: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return File{}, fmt.Errorf("parse policy file: %w", err)
		}
		return File{}, fmt.Errorf("policy file holds more than one YAML document: the second starts at line %d", extra.Line)
	}
	root := resolve(&doc)
	if isNull(root) {
		return File{}, errors.New("policy file is empty: want a mapping with a policies list")
	}
	if root.Kind != yaml.MappingNode {
		return File{}, fmt.Errorf("policy file: want a mapping with a policies list, got %s (line %d)", describe(root), root.Line)
	}

	d := decoder{lines: make(map[string]int), skip: make(map[string]bool),
		bad: make(map[string]bool), badUnder: make(map[string]bool)}
	for _, s := range settings {
		d.skip[s] = true
	}
	var f File
	d.decode(root, reflect.ValueOf(&f).Elem(), "")
	if d.overBudget != nil {
		return File{}, fmt.Errorf("policy file: the alias at line %d repeats more than %d values in all (an alias counts every value and key it repeats)",
			d.overBudget.Line, MaxAliasValues)
	}

	problems := d.errs
	for _, e := range unjoin(f.ValidateStep(step)) {
		var fe *FieldError
		if !errors.As(e, &fe) {
			return File{}, fmt.Errorf("validate policy file: %w", e) // not reached: Validate returns FieldErrors
		}
		if d.failed(fe) {
			continue
		}
		fe.Line = d.line(fe.Path)
		problems = append(problems, fe)
	}
	if len(problems) == 0 {
		return f, nil
	}
	slices.SortStableFunc(problems, func(a, b *FieldError) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Path, b.Path))
	})
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = p
	}
	return File{}, errors.Join(errs...)
}

// unjoin returns the errors that err joins, or err alone.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// decoder walks a YAML node tree alongside a Go value, filling the value and collecting a
// FieldError for every key or value that does not fit, rather than stopping at the first.
type decoder struct {
	errs []*FieldError
	// lines maps each YAML path seen to its line: a field's key line, an element's line.
	lines map[string]int
	// bad holds the paths that failed to decode; badUnder the ancestors of those paths.
	bad, badUnder map[string]bool
	// skip holds the top-level keys that the caller owns.
	skip map[string]bool
	// alias is the outermost alias whose node the walk is in, nil outside any alias.
	alias *yaml.Node
	// aliased counts the values and keys visited through aliases.
	aliased int
	// overBudget is the alias during which aliased exceeded MaxAliasValues; the walk stops.
	overBudget *yaml.Node
}

// maxLen caps the lists that multiply the work of validating and deciding.
var maxLen = map[reflect.Type]struct {
	n    int
	what string
}{
	reflect.TypeFor[[]Policy](): {MaxPolicies, "policies"},
	reflect.TypeFor[[]Metric](): {MaxMetrics, "metrics"},
}

var (
	quantityType = reflect.TypeFor[Quantity]()
	int32Type    = reflect.TypeFor[int32]()
	float64Type  = reflect.TypeFor[float64]()
	// scalarTypes are the types that decode themselves from a scalar: durations and
	// "auto"-or-value fields.
	scalarTypes = map[reflect.Type]bool{
		reflect.TypeFor[Duration]():     true,
		reflect.TypeFor[AutoDuration](): true,
		reflect.TypeFor[AutoFloat]():    true,
		reflect.TypeFor[Fraction]():     true,
	}
)

// fail records that the value at path failed to decode: it keeps its zero value, which
// validation must not then report.
func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.report(n, path, format, args...)
	d.bad[path] = true
	for p, ok := parentPath(path); ok; p, ok = parentPath(p) {
		d.badUnder[p] = true
	}
}

// report records a problem that leaves the decoded value intact (an unknown or repeated key).
func (d *decoder) report(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...), Line: n.Line})
}

// failed reports whether a validation problem concerns a path that failed to decode, where
// it would only repeat that failure with the zero value.
// It looks up each path and its ancestors, so that many problems cost no more than many
// lookups.
func (d *decoder) failed(fe *FieldError) bool {
	for _, p := range fe.paths() {
		if d.badUnder[p] {
			return true // a path under p failed
		}
		for a, ok := p, true; ok; a, ok = parentPath(a) {
			if d.bad[a] {
				return true // p or an ancestor failed
			}
		}
	}
	return false
}

// visit counts one value or key that the walk visits, and reports whether the walk may go
// on: false once aliases have repeated more than MaxAliasValues values and keys.
func (d *decoder) visit() bool {
	if d.overBudget != nil {
		return false
	}
	if d.alias != nil {
		d.aliased++
		if d.aliased > MaxAliasValues {
			d.overBudget = d.alias
			return false
		}
	}
	return true
}

// line returns the line of path, or of its nearest ancestor that the file has, or 0.
func (d *decoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		var ok bool
		if path, ok = parentPath(path); !ok {
			return 0
		}
	}
}

// decode fills v from n. path is n's YAML path.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n != nil && n.Kind == yaml.AliasNode && d.alias == nil {
		d.alias = n
		defer func() { d.alias = nil }()
	}
	if !d.visit() {
		return
	}
	n = resolve(n)
	if v.Kind() == reflect.Pointer {
		if isNull(n) {
			return // unset
		}
		p := reflect.New(v.Type().Elem())
		v.Set(p)
		v = p.Elem()
	}
	switch {
	case v.Type() == quantityType:
		q := v.Addr().Interface().(*Quantity)
		if err := q.UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%s", err)
		}
	case scalarTypes[v.Type()]:
		if isNull(n) {
			return
		}
		u := v.Addr().Interface().(interface{ UnmarshalYAML(*yaml.Node) error })
		if err := u.UnmarshalYAML(n); err != nil {
			d.fail(n, path, "%s", err)
		}
	case v.Type() == float64Type:
		if isNull(n) {
			return
		}
		f, err := decodeFloat(n)
		if err != nil {
			d.fail(n, path, "%s", err)
			return
		}
		v.SetFloat(f)
	case v.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path)
	case v.Kind() == reflect.String:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case v.Kind() == reflect.Bool:
		if isNull(n) {
			return
		}
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case v.Type() == int32Type:
		if isNull(n) {
			return
		}
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil {
			d.fail(n, path, "want an integer, got %s", describe(n))
			return
		}
		if i < math.MinInt32 || i > math.MaxInt32 {
			d.fail(n, path, "want an integer within %d..%d, got %s", math.MinInt32, math.MaxInt32, n.Value)
			return
		}
		v.SetInt(i)
	default:
		panic(fmt.Sprintf("policy: no YAML decoding for %s at %s", v.Type(), path))
	}
}

// decodeStruct fills struct v from mapping n, matching keys to the fields' yaml tags.
func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields := make(map[string]int)
	for i := range v.NumField() {
		if tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" {
			fields[tag] = i
		}
	}
	first := make(map[string]int) // key -> line of its first occurrence
	for i := 0; i+1 < len(n.Content); i += 2 {
		if !d.visit() {
			return
		}
		k, val := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.report(k, cmp.Or(path, "policy file"), "want string keys, got %s", describe(k))
			continue
		}
		kp := joinPath(path, k.Value)
		if l, ok := first[k.Value]; ok {
			d.report(k, kp, "duplicate key, first at line %d", l)
			continue
		}
		first[k.Value] = k.Line
		if path == "" && d.skip[k.Value] {
			continue
		}
		d.lines[kp] = k.Line
		fi, ok := fields[k.Value]
		if !ok {
			d.report(k, kp, "unknown field")
			continue
		}
		d.decode(val, v.Field(fi), kp)
	}
}

// decodeSlice fills slice v from list n. An empty list gives an empty, non-nil slice, so
// that Validate can tell it from an absent one.
func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "want a list, got %s", describe(n))
		return
	}
	if m, ok := maxLen[v.Type()]; ok && len(n.Content) > m.n {
		d.fail(n, path, "at most %d %s, got %d", m.n, m.what, len(n.Content))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		ep := indexPath(path, i)
		d.lines[ep] = e.Line
		d.decode(e, s.Index(i), ep)
	}
	v.Set(s)
}

// resolve returns the node an alias or a document stands for.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil {
		switch {
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		case n.Kind == yaml.DocumentNode && len(n.Content) == 1:
			n = n.Content[0]
		default:
			return n
		}
	}
	return n
}

// isNull reports whether n is YAML null: "~", "null" or nothing.
func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.DocumentNode && len(n.Content) == 0) ||
		(n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's value for a message: a scalar quoted, else its kind.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q", n.Value)
	}
	return "a " + nodeKindName(n.Kind)
}
