package policy

import (
	"strconv"
	"strings"
)

// FieldError is one problem with one field of a policy file. Validate and Parse return their
// problems as FieldErrors joined with errors.Join; Parse also sets Line.
type FieldError struct {
	// Path is the field's YAML path, such as "policies[0].metrics[1].target.averageValue".
	Path string
	// Msg says what is wrong and quotes the offending value.
	Msg string
	// Line is the 1-based line of the field in the file, or 0 when unknown.
	Line int
	// related are other paths whose values the problem also depends on: Parse drops a
	// validation problem when any of its paths already failed to decode.
	related []string
}

// Error returns "path: message (line N)".
func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Line > 0 {
		b.WriteString(" (line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(")")
	}
	return b.String()
}

// paths returns every path the problem depends on.
func (e *FieldError) paths() []string { return append([]string{e.Path}, e.related...) }

func fieldError(path, msg string, related ...string) *FieldError {
	return &FieldError{Path: path, Msg: msg, related: related}
}

// joinPath returns the path of field key under parent.
func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// indexPath returns the path of element i under parent.
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath returns the path one step up from p, and false at the top.
func parentPath(p string) (string, bool) {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return "", false
	}
	return p[:i], true
}
