// Package codecgen writes domain's event codec from the event structs, so each
// event field is said once: in its struct. For every type of package domain
// with an EventType method it generates the appender (the bytes json.Marshal
// writes, without reflection), the reader of that canonical form, and the
// dispatch between them (domain/codec_gen.go). `go generate ./domain` runs it;
// domain's tests fail when the committed output is stale.
package codecgen

import (
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Output is the file Generate's result is written to, in the domain folder.
const Output = "codec_gen.go"

// kind is a field type the codec knows how to write and read.
type kind int

const (
	kString kind = iota
	kInt64
	kBool
	kTime
	kInt64s
	kStrings
)

// field is one JSON member of an event, in the order json.Marshal writes it.
type field struct {
	goName    string // the selector: a promoted field's own name
	jsonName  string
	kind      kind
	omitEmpty bool
}

// event is one event type: its Go name, the constant its EventType returns,
// and its fields.
type event struct {
	name      string
	typeConst string
	fields    []field
}

// Generate reads the Go files of package domain in dir and returns the
// formatted source of Output.
func Generate(dir string) ([]byte, error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	structs := map[string]*ast.StructType{}
	typeConsts := map[string]string{}
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") || filepath.Base(p) == Output {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return nil, err
		}
		collect(f, structs, typeConsts)
	}
	var events []event
	for name, tc := range typeConsts {
		st, ok := structs[name]
		if !ok {
			return nil, fmt.Errorf("codecgen: %s has EventType but is not a struct", name)
		}
		fs, err := fields(st, structs)
		if err != nil {
			return nil, fmt.Errorf("codecgen: %s: %w", name, err)
		}
		if len(fs) == 0 || fs[0].omitEmpty {
			return nil, fmt.Errorf("codecgen: %s: the first field must be present always (not omitempty)", name)
		}
		events = append(events, event{name: name, typeConst: tc, fields: fs})
	}
	slices.SortFunc(events, func(a, b event) int { return strings.Compare(a.name, b.name) })
	src := render(events)
	out, err := format.Source(src)
	if err != nil {
		return nil, fmt.Errorf("codecgen: format: %w\n%s", err, src)
	}
	return out, nil
}

// Write generates Output in dir.
func Write(dir string) error {
	src, err := Generate(dir)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, Output), src, 0o644)
}

// collect notes every struct type of f and every EventType method that
// returns a constant.
func collect(f *ast.File, structs map[string]*ast.StructType, typeConsts map[string]string) {
	for _, d := range f.Decls {
		switch d := d.(type) {
		case *ast.GenDecl:
			for _, s := range d.Specs {
				if ts, ok := s.(*ast.TypeSpec); ok {
					if st, ok := ts.Type.(*ast.StructType); ok {
						structs[ts.Name.Name] = st
					}
				}
			}
		case *ast.FuncDecl:
			if d.Name.Name != "EventType" || d.Recv == nil || len(d.Recv.List) != 1 || d.Body == nil || len(d.Body.List) != 1 {
				continue
			}
			recv, ok := d.Recv.List[0].Type.(*ast.Ident)
			if !ok {
				continue
			}
			if ret, ok := d.Body.List[0].(*ast.ReturnStmt); ok && len(ret.Results) == 1 {
				if id, ok := ret.Results[0].(*ast.Ident); ok {
					typeConsts[recv.Name] = id.Name
				}
			}
		}
	}
}

// fields flattens st's JSON members as encoding/json sees them: exported
// fields with their tag's name, embedded structs of the package inlined, at
// any depth. A name that two members share is refused: encoding/json would
// keep the shallower one or drop both, which the generated codec does not
// mimic.
func fields(st *ast.StructType, structs map[string]*ast.StructType) ([]field, error) {
	out, err := members(st, structs)
	if err != nil {
		return nil, err
	}
	seen := map[string]string{}
	for _, f := range out {
		if other, ok := seen[f.jsonName]; ok {
			return nil, fmt.Errorf("fields %s and %s both have the JSON name %q", other, f.goName, f.jsonName)
		}
		seen[f.jsonName] = f.goName
	}
	return out, nil
}

// members lists st's members in the order json.Marshal writes them.
func members(st *ast.StructType, structs map[string]*ast.StructType) ([]field, error) {
	var out []field
	for _, f := range st.Fields.List {
		tag := ""
		if f.Tag != nil {
			t, err := strconv.Unquote(f.Tag.Value)
			if err != nil {
				return nil, err
			}
			tag = reflect.StructTag(t).Get("json")
		}
		if len(f.Names) == 0 { // embedded
			fs, err := embedded(f.Type, tag, structs)
			if err != nil {
				return nil, err
			}
			out = append(out, fs...)
			continue
		}
		for _, n := range f.Names {
			if !n.IsExported() || tag == "-" {
				continue
			}
			m, err := member(n.Name, f.Type, tag)
			if err != nil {
				return nil, fmt.Errorf("field %s: %w", n.Name, err)
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// embedded returns the members of an embedded struct, which encoding/json
// writes in place of it. Promoted, they keep their own names as selectors.
func embedded(t ast.Expr, tag string, structs map[string]*ast.StructType) ([]field, error) {
	id, ok := t.(*ast.Ident)
	if !ok || tag != "" {
		return nil, fmt.Errorf("embedded %s: only untagged structs of package domain", exprString(t))
	}
	inner, ok := structs[id.Name]
	if !ok {
		return nil, fmt.Errorf("embedded %s is not a struct of package domain", id.Name)
	}
	return members(inner, structs)
}

// member is the named field goName of type t with JSON tag tag.
func member(goName string, t ast.Expr, tag string) (field, error) {
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = goName
	}
	k, err := kindOf(t)
	if err != nil {
		return field{}, err
	}
	omit := false
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "":
		case "omitempty":
			omit = true
		default:
			return field{}, fmt.Errorf("json option %q is not supported by the generated codec", o)
		}
	}
	if omit && k == kTime {
		return field{}, errors.New("omitempty on a time.Time omits nothing in encoding/json; drop it")
	}
	return field{goName: goName, jsonName: name, kind: k, omitEmpty: omit}, nil
}

func kindOf(t ast.Expr) (kind, error) {
	switch s := exprString(t); s {
	case "string":
		return kString, nil
	case "int64":
		return kInt64, nil
	case "bool":
		return kBool, nil
	case "time.Time":
		return kTime, nil
	case "[]int64":
		return kInt64s, nil
	case "[]string":
		return kStrings, nil
	default:
		return 0, fmt.Errorf("type %s is not supported by the generated codec (string, int64, bool, time.Time, []int64, []string)", s)
	}
}

func exprString(e ast.Expr) string {
	var b bytes.Buffer
	if err := format.Node(&b, token.NewFileSet(), e); err != nil {
		return fmt.Sprintf("%T", e)
	}
	return b.String()
}

// render writes the source of Output.
func render(events []event) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// Code generated by internal/codecgen from the event structs; DO NOT EDIT.\n")
	p("// Change an event's struct, then: go generate ./domain\n\n")
	p("package domain\n\nimport \"strconv\"\n\n")
	p("// appendPayload appends the payload of e as json.Marshal writes it; false\n")
	p("// for a type the generator did not see or a value json.Marshal would refuse.\n")
	p("func appendPayload(b []byte, e Event) ([]byte, bool) {\n\tswitch v := e.(type) {\n")
	for _, ev := range events {
		p("\tcase %s:\n\t\treturn v.appendJSON(b)\n", ev.name)
	}
	p("\t}\n\treturn b, false\n}\n\n")

	p("// readPayload reads a payload of type t in the canonical form appendPayload\n")
	p("// writes; false for anything else.\n")
	p("func readPayload(t string, r *canonReader) (Event, bool) {\n\tswitch t {\n")
	for _, ev := range events {
		p("\tcase %s:\n\t\te := read%s(r)\n\t\treturn e, r.done()\n", ev.typeConst, ev.name)
	}
	p("\t}\n\treturn nil, false\n}\n\n")

	p("// deref turns the pointer the decoder filled back into the value type, so\n")
	p("// callers switch on plain event types.\n")
	p("func deref(e Event) Event {\n\tswitch v := e.(type) {\n")
	for _, ev := range events {
		p("\tcase *%s:\n\t\treturn *v\n", ev.name)
	}
	p("\t}\n\treturn e\n}\n")

	for _, ev := range events {
		renderAppender(&b, ev)
		renderReader(&b, ev)
	}
	return b.Bytes()
}

func renderAppender(b *bytes.Buffer, ev event) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\nfunc (e %s) appendJSON(b []byte) ([]byte, bool) {\n\tok := true\n", ev.name)
	for i, f := range ev.fields {
		key := "," + strconv.Quote(f.jsonName) + ":"
		if i == 0 {
			key = "{" + key[1:]
		}
		indent := "\t"
		if f.omitEmpty {
			p("\tif %s {\n", nonEmpty(f))
			indent = "\t\t"
		}
		p("%sb = append(b, %s...)\n", indent, "`"+key+"`")
		switch f.kind {
		case kString:
			p("%sb = appendString(b, e.%s)\n", indent, f.goName)
		case kInt64:
			p("%sb = strconv.AppendInt(b, e.%s, 10)\n", indent, f.goName)
		case kBool:
			p("%sb = strconv.AppendBool(b, e.%s)\n", indent, f.goName)
		case kTime:
			p("%sb, ok = appendTimeOK(b, e.%s, ok)\n", indent, f.goName)
		case kInt64s:
			p("%sb = appendInt64s(b, e.%s)\n", indent, f.goName)
		case kStrings:
			p("%sb = appendStrings(b, e.%s)\n", indent, f.goName)
		}
		if f.omitEmpty {
			p("\t}\n")
		}
	}
	p("\treturn append(b, '}'), ok\n}\n")
}

func nonEmpty(f field) string {
	switch f.kind {
	case kString:
		return "e." + f.goName + ` != ""`
	case kInt64:
		return "e." + f.goName + " != 0"
	case kBool:
		return "e." + f.goName
	case kInt64s, kStrings:
		return "len(e." + f.goName + ") > 0"
	}
	panic("codecgen: no emptiness for this kind")
}

func renderReader(b *bytes.Buffer, ev event) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	p("\nfunc read%s(r *canonReader) (e %s) {\n", ev.name, ev.name)
	for i, f := range ev.fields {
		key := "," + strconv.Quote(f.jsonName) + ":"
		if i == 0 {
			key = "{" + key[1:]
		}
		indent := "\t"
		if f.omitEmpty {
			p("\tif r.peek(%s) {\n", "`"+key+"`")
			indent = "\t\t"
		}
		p("%sr.lit(%s)\n", indent, "`"+key+"`")
		reader := map[kind]string{kString: "str", kInt64: "int", kBool: "bool", kTime: "time", kInt64s: "int64s", kStrings: "strs"}[f.kind]
		p("%se.%s = r.%s()\n", indent, f.goName, reader)
		if f.omitEmpty {
			p("\t}\n")
		}
	}
	p("\tr.lit(`}`)\n\treturn e\n}\n")
}
