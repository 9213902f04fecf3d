package policy

import (
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocsListEveryField checks that docs/policy.md, the reference of the policy file, has a
// table row for every key a policy file may hold: a row whose first cell names the key, alone
// ("`hold`") or under its block ("`gate.window`"); a block passes with its keys' rows
// ("`gate.window`" for gate).
func TestDocsListEveryField(t *testing.T) {
	doc, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string // the first cell of every table row
	for line := range strings.SplitSeq(string(doc), "\n") {
		if cells := strings.Split(line, "|"); len(cells) > 2 && strings.HasPrefix(line, "|") {
			rows = append(rows, strings.TrimSpace(cells[1]))
		}
	}
	var missing []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] || scalarTypes[t] || t == quantityType {
			return
		}
		seen[t] = true
		for i := range t.NumField() {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			key := regexp.QuoteMeta(tag)
			row := regexp.MustCompile("^`([a-zA-Z.]+\\.)?" + key + "(`|\\.)") // a block: its keys' rows
			if !slices.ContainsFunc(rows, row.MatchString) {
				missing = append(missing, prefix+tag)
			}
			walk(t.Field(i).Type, prefix+tag+".")
		}
	}
	walk(reflect.TypeFor[File](), "")
	if len(missing) > 0 {
		t.Errorf("docs/policy.md has no table row for %s", strings.Join(missing, ", "))
	}
}
