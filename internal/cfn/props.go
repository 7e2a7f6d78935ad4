package cfn

import (
	"fmt"
	"strconv"
	"strings"
)

// isCustom reports whether typ is a custom resource, whose properties
// are its own.
func isCustom(typ string) bool {
	return strings.HasPrefix(typ, "Custom::") || typ == "AWS::CloudFormation::CustomResource"
}

// resourceType checks the type of r and the properties at path against
// the spec.
func (c *checker) resourceType(r *Resource, path string) {
	typePath := "Resources." + r.LogicalID + ".Type"
	if isCustom(r.Type) {
		if _, ok := r.Properties["ServiceToken"]; !ok {
			c.report(path, CodeMissingProperty, "a custom resource requires property ServiceToken")
		}
		return
	}
	if parts := strings.Split(r.Type, "::"); len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		c.report(typePath, CodeUnknownResourceType, "%q is not a resource type: want Vendor::Service::Resource", r.Type)
		return
	}
	if c.spec == nil {
		return
	}
	rs := c.spec.data.resources[r.Type]
	if rs == nil {
		if c.spec.data.others[r.Type] {
			c.report(typePath, CodeNotInSpec, "resource type %s is not in the vendored spec: add it to specConfig in specgen_test.go and run the update", r.Type)
		} else {
			c.report(typePath, CodeUnknownResourceType, "no resource type %s in CloudFormation%s", r.Type, suggest(r.Type, c.spec.data.allTypes))
		}
		return
	}
	var props any = r.Properties
	if r.Properties == nil {
		props = map[string]any{}
	}
	pc := &propChecker{c: c, rs: rs}
	for _, p := range pc.structure(rs.props, props, path, r.Type) {
		c.add(p)
	}
}

// propChecker checks property values against the types of one resource
// type. It returns problems rather than reporting them, so that a union
// type can keep those of its closest alternative.
type propChecker struct {
	c  *checker
	rs *resourceSpec
}

func (pc *propChecker) problem(path string, code Code, format string, args ...any) Problem {
	return Problem{File: pc.c.t.Name, Line: pc.c.t.Line(path), Path: path, Code: code, Message: fmt.Sprintf(format, args...)}
}

// check checks v, found at path, against t.
func (pc *propChecker) check(t *typeExpr, v any, path, owner string) []Problem {
	if t.kind == "json" {
		return nil
	}
	if name, arg, ok := call(v); ok {
		return pc.function(t, name, arg, joinPath(path, name), owner)
	}
	switch t.kind {
	case "union":
		var best []Problem
		for i, a := range t.alts {
			ps := pc.check(a, v, path, owner)
			if len(ps) == 0 {
				return nil
			}
			if i == 0 || len(ps) < len(best) {
				best = ps
			}
		}
		return best
	case "list":
		l, ok := v.([]any)
		if !ok {
			return []Problem{pc.problem(path, CodeBadValue, "want a list (%s), not %s", t, kindOf(v))}
		}
		var ps []Problem
		for i, e := range l {
			ps = append(ps, pc.check(t.elem, e, indexPath(path, i), owner)...)
		}
		return ps
	case "map":
		m, ok := v.(map[string]any)
		if !ok {
			return []Problem{pc.problem(path, CodeBadValue, "want a mapping (%s), not %s", t, kindOf(v))}
		}
		var ps []Problem
		for _, k := range sortedKeys(m) {
			ps = append(ps, pc.check(t.elem, m[k], joinPath(path, k), owner)...)
		}
		return ps
	case "struct":
		return pc.structure(t.def, v, path, pc.rs.name+"."+t.name)
	case "tag":
		return pc.structure(tagStruct, v, path, "a tag")
	}
	return pc.scalar(t.kind, v, path)
}

// tagStruct is the type of a tag: {Key, Value}.
var tagStruct = &structSpec{
	name:     "Tag",
	props:    map[string]*typeExpr{"Key": {kind: "string"}, "Value": {kind: "string"}},
	required: []string{"Key", "Value"},
}

// structure checks a mapping of properties against s; owner names s in
// messages.
func (pc *propChecker) structure(s *structSpec, v any, path, owner string) []Problem {
	m, ok := v.(map[string]any)
	if !ok {
		return []Problem{pc.problem(path, CodeBadValue, "want a mapping of the properties of %s, not %s", owner, kindOf(v))}
	}
	var ps []Problem
	names := sortedKeys(s.props)
	for _, k := range sortedKeys(m) {
		t, ok := s.props[k]
		if !ok {
			ps = append(ps, pc.problem(joinPath(path, k), CodeUnknownProperty, "%s has no property %s%s", owner, k, suggest(k, names)))
			continue
		}
		ps = append(ps, pc.check(t, m[k], joinPath(path, k), owner)...)
	}
	for _, req := range s.required {
		if _, ok := m[req]; !ok {
			ps = append(ps, pc.problem(path, CodeMissingProperty, "%s requires property %s", owner, req))
		}
	}
	return ps
}

// function checks what an intrinsic function gives against t, where it
// can tell: Fn::If's branches are checked as values, and a function that
// always gives a string or always a list must be where one fits.
func (pc *propChecker) function(t *typeExpr, name string, arg any, path, owner string) []Problem {
	if name == fnIf {
		a, ok := arg.([]any)
		if !ok || len(a) != 3 {
			return nil // reported by checker.function
		}
		var ps []Problem
		for i := 1; i <= 2; i++ {
			if isNoValue(a[i]) {
				continue
			}
			ps = append(ps, pc.check(t, a[i], indexPath(path, i), owner)...)
		}
		return ps
	}
	gives := pc.c.gives(name, arg)
	if gives == "" || gives == "novalue" || t.accepts(gives) {
		return nil
	}
	return []Problem{pc.problem(path, CodeBadValue, "%s gives %s; want %s", name, article(gives), t)}
}

func article(kind string) string {
	if kind == "list" {
		return "a list"
	}
	return "a " + kind
}

func isNoValue(v any) bool {
	name, arg, ok := call(v)
	return ok && name == fnRef && arg == "AWS::NoValue"
}

// gives says what an intrinsic function always gives: "string", "list",
// "novalue", or "" when it depends on its arguments.
func (c *checker) gives(name string, arg any) string {
	switch name {
	case fnSub, fnJoin, fnBase64, fnImportValue:
		return "string"
	case fnSplit, fnGetAZs, fnCidr:
		return "list"
	case fnRef:
		s, _ := arg.(string)
		if p, ok := c.t.Parameters[s]; ok {
			if p.Type == "CommaDelimitedList" || strings.HasPrefix(p.Type, "List<") {
				return "list"
			}
			return "string"
		}
		switch s {
		case "AWS::NotificationARNs":
			return "list"
		case "AWS::NoValue":
			return "novalue"
		}
		return "string" // a pseudo-parameter or a resource's physical ID
	}
	return ""
}

// accepts reports whether a value of kind ("string" or "list") can be t.
func (t *typeExpr) accepts(kind string) bool {
	switch t.kind {
	case "union":
		for _, a := range t.alts {
			if a.accepts(kind) {
				return true
			}
		}
		return false
	case "json":
		return true
	case "list":
		return kind == "list"
	case "map", "struct", "tag":
		return false
	}
	return kind == "string" // a primitive
}

func (pc *propChecker) scalar(kind string, v any, path string) []Problem {
	bad := func() []Problem {
		return []Problem{pc.problem(path, CodeBadValue, "want %s, not %s", article(kind), describe(v))}
	}
	switch v.(type) {
	case map[string]any, []any, nil:
		return bad()
	}
	s, _ := scalarString(v)
	switch kind {
	case "integer":
		if f, ok := v.(float64); ok && f != float64(int64(f)) {
			return bad()
		}
		if _, ok := v.(bool); ok {
			return bad()
		}
		if _, isStr := v.(string); isStr {
			if _, err := strconv.ParseInt(s, 10, 64); err != nil {
				return bad()
			}
		}
	case "number":
		if _, ok := v.(bool); ok {
			return bad()
		}
		if _, err := strconv.ParseFloat(s, 64); err != nil {
			return bad()
		}
	case "boolean":
		if _, err := toBool(v); err != nil {
			return bad()
		}
	}
	return nil
}

// describe names a value for messages: its kind, and a scalar's text.
func describe(v any) string {
	switch v.(type) {
	case map[string]any, []any, nil:
		return kindOf(v)
	}
	s, _ := scalarString(v)
	return fmt.Sprintf("%s %q", kindOf(v), s)
}
