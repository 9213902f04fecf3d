package replay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
)

// shape is what strictKeys knows of a Go type: a struct's JSON field names, a map's or a
// slice's elements; nil for any other value (a scalar, or a type that decodes itself).
type shape struct {
	fields map[string]*shape // a struct's, by JSON name
	elem   *shape            // a map's or a slice's
	isMap  bool
}

var (
	shapesMu sync.Mutex
	shapes   = map[reflect.Type]*shape{}
)

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// shapeOf returns the shape of t, built once.
func shapeOf(t reflect.Type) *shape {
	shapesMu.Lock()
	defer shapesMu.Unlock()
	return buildShape(t)
}

func buildShape(t reflect.Type) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := shapes[t]; ok {
		return s
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		shapes[t] = nil // it decodes itself: only keys twice are checked below it
		return nil
	}
	s := &shape{}
	shapes[t] = s // before the fields: a type may hold itself
	switch t.Kind() {
	case reflect.Struct:
		s.fields = map[string]*shape{}
		addFields(s.fields, t)
	case reflect.Map:
		s.isMap, s.elem = true, buildShape(t.Elem())
	case reflect.Slice, reflect.Array:
		s.elem = buildShape(t.Elem())
	default:
		shapes[t] = nil
		return nil
	}
	return s
}

// addFields adds the JSON names of struct type t's fields, as encoding/json sees them (a
// tag's name, else the field's; an embedded struct's fields promoted), with their shapes.
func addFields(out map[string]*shape, t reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if f.Anonymous && name == "" && ft.Kind() == reflect.Struct {
			promoted := map[string]*shape{}
			addFields(promoted, ft)
			for n, s := range promoted {
				if _, ok := out[n]; !ok {
					out[n] = s
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = buildShape(f.Type)
	}
}

// strictKeys returns an error for an object in raw, a JSON value that decodes into a value
// of type t, that holds a key twice, or a key that names a struct field in another case:
// encoding/json keeps the last of a key given twice, and matches field names without regard
// to case ("SpecReplicas" sets specReplicas), so that either would replay something else
// than the line says. The error names the key and where it is (pods[2].name). raw must be
// valid JSON (strictKeys reads it without checking its syntax).
func strictKeys(raw []byte, t reflect.Type) error {
	s := keyScanner{b: raw}
	return s.value(shapeOf(t))
}

// keyScanner reads valid JSON, keeping the path to the value it is in.
type keyScanner struct {
	b    []byte
	i    int
	path []step
}

// step is one step of a path: an object's key, or an array's index (key nil).
type step struct {
	key   []byte
	index int
}

func (s *keyScanner) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// where names the value at the path.
func (s *keyScanner) where() string {
	var b strings.Builder
	for _, p := range s.path {
		switch {
		case p.key == nil:
			fmt.Fprintf(&b, "[%d]", p.index)
		case b.Len() > 0:
			b.WriteByte('.')
			fallthrough
		default:
			b.Write(p.key)
		}
	}
	return b.String()
}

// str reads a string at s.i (its opening quote) and returns its raw contents, and whether
// they hold an escape.
func (s *keyScanner) str() ([]byte, bool) {
	start, escaped := s.i+1, false
	for s.i++; s.i < len(s.b) && s.b[s.i] != '"'; s.i++ {
		if s.b[s.i] == '\\' {
			escaped = true
			s.i++
		}
	}
	s.i++ // the closing quote
	return s.b[start : s.i-1], escaped
}

// value reads one value of shape sh (nil: any).
func (s *keyScanner) value(sh *shape) error {
	s.ws()
	if s.i >= len(s.b) {
		return nil
	}
	switch s.b[s.i] {
	case '{':
		return s.object(sh)
	case '[':
		s.i++
		var elem *shape
		if sh != nil {
			elem = sh.elem
		}
		for n := 0; ; n++ {
			s.ws()
			if s.b[s.i] == ']' {
				s.i++
				return nil
			}
			if s.b[s.i] == ',' {
				s.i++
			}
			s.path = append(s.path, step{index: n})
			if err := s.value(elem); err != nil {
				return err
			}
			s.path = s.path[:len(s.path)-1]
		}
	case '"':
		s.str()
	default: // a number, true, false or null
		for ; s.i < len(s.b); s.i++ {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return nil
			}
		}
	}
	return nil
}

// smallObject is how many keys an object holds before they are kept in a map.
const smallObject = 16

func (s *keyScanner) object(sh *shape) error {
	s.i++ // '{'
	var few [smallObject][]byte
	keys := few[:0]
	var many map[string]bool
	for {
		s.ws()
		switch s.b[s.i] {
		case '}':
			s.i++
			return nil
		case ',':
			s.i++
			s.ws()
		}
		key, escaped := s.str()
		if escaped {
			var k string
			if err := json.Unmarshal(s.b[s.i-len(key)-2:s.i], &k); err != nil {
				return err
			}
			key = []byte(k)
		}
		s.path = append(s.path, step{key: key})
		twice := false
		switch {
		case many != nil:
			twice = many[string(key)]
			many[string(key)] = true
		case len(keys) < smallObject:
			for _, k := range keys {
				twice = twice || bytes.Equal(k, key)
			}
			keys = append(keys, key)
		default:
			many = make(map[string]bool, 2*smallObject)
			for _, k := range keys {
				many[string(k)] = true
			}
			twice = many[string(key)]
			many[string(key)] = true
		}
		if twice {
			return fmt.Errorf("%s: key %q given twice", s.where(), key)
		}
		var vs *shape
		if sh != nil {
			if sh.fields != nil {
				var ok bool
				if vs, ok = sh.fields[string(key)]; !ok {
					for name := range sh.fields {
						if strings.EqualFold(name, string(key)) {
							return fmt.Errorf("%s: key %q: keys are case-sensitive, want %q", s.where(), key, name)
						}
					}
				}
			} else if sh.isMap {
				vs = sh.elem
			}
		}
		s.ws()
		s.i++ // ':'
		if err := s.value(vs); err != nil {
			return err
		}
		s.path = s.path[:len(s.path)-1]
	}
}
