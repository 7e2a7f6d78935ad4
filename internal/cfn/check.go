package cfn

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// A Code says what kind of fault a Problem is.
type Code string

// The kinds of Problem.
const (
	CodeUnknownKey          Code = "UnknownKey"          // a key CloudFormation does not know there
	CodeBadValue            Code = "BadValue"            // a value of the wrong shape, or outside its set
	CodeBadFunction         Code = "BadFunction"         // an intrinsic function unknown, misplaced or with wrong arguments
	CodeUnresolved          Code = "Unresolved"          // a Ref, Fn::GetAtt, Fn::Sub variable or DependsOn naming nothing
	CodeUnknownAttribute    Code = "UnknownAttribute"    // an Fn::GetAtt attribute the resource type lacks
	CodeUnknownCondition    Code = "UnknownCondition"    // a condition name the template lacks
	CodeUnknownMapping      Code = "UnknownMapping"      // an Fn::FindInMap key the template lacks
	CodeCycle               Code = "Cycle"               // resources depending on each other in a circle
	CodeUnknownResourceType Code = "UnknownResourceType" // a resource type CloudFormation lacks
	CodeUnknownProperty     Code = "UnknownProperty"     // a property its type lacks
	CodeMissingProperty     Code = "MissingProperty"     // a required property left out
	CodeBadPolicy           Code = "BadPolicy"           // an IAM policy document or statement misshapen
	CodeUnknownAction       Code = "UnknownAction"       // an IAM action its service lacks
	CodeWildcardAction      Code = "WildcardAction"      // an IAM action with a wildcard not allowed by Spec.WildcardActions
	CodeUnknownConditionKey Code = "UnknownConditionKey" // an IAM condition key its service lacks
	CodeUnknownOperator     Code = "UnknownOperator"     // an IAM condition operator that does not exist
	CodeNotInSpec           Code = "NotInSpec"           // a real resource type or IAM service the vendored spec leaves out
)

// A Problem is a fault Check found.
type Problem struct {
	File    string
	Line    int
	Path    string // where in the template: "Resources.Task.Properties.Cpu"
	Code    Code
	Message string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Path, p.Message)
}

// Check checks a template offline and returns its problems, sorted by
// line; none for a good template:
//
//   - every Ref, Fn::GetAtt, Fn::Sub variable (other than the Sub's own),
//     DependsOn, Condition, Fn::If condition and literal Fn::FindInMap key
//     names something that exists; intrinsic functions are known, in their
//     place, with the right number of arguments; no resources depend on
//     each other in a circle;
//   - every resource type exists, and with spec, every property exists in
//     its type (nested ones through lists and maps), has the shape of its
//     type, required ones are present, every Fn::GetAtt attribute exists;
//   - in every IAM policy document, statements are well formed, every
//     action exists (a wildcard only if spec.WildcardActions allows it),
//     every condition operator and condition key exists.
//
// A nil spec checks only what needs no spec: references and structure.
func Check(t *Template, spec *Spec) []Problem {
	c := &checker{t: t, spec: spec, seen: map[string]bool{}}
	for _, p := range t.problems {
		c.add(p)
	}
	c.parameters()
	c.conditions()
	for _, id := range t.order {
		c.resource(id)
	}
	for _, name := range sortedKeys(t.Outputs) {
		c.output(name)
	}
	c.cycles()
	sort.SliceStable(c.problems, func(i, j int) bool {
		a, b := c.problems[i], c.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Path < b.Path
	})
	return c.problems
}

type checker struct {
	t        *Template
	spec     *Spec // may be nil
	problems []Problem
	seen     map[string]bool // path, code and message of each problem
}

func (c *checker) add(p Problem) {
	key := p.Path + "\x00" + string(p.Code) + "\x00" + p.Message
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	c.problems = append(c.problems, p)
}

func (c *checker) report(path string, code Code, format string, args ...any) {
	c.add(Problem{File: c.t.Name, Line: c.t.Line(path), Path: path, Code: code, Message: fmt.Sprintf(format, args...)})
}

func (c *checker) parameters() {
	for _, name := range sortedKeys(c.t.Parameters) {
		p := c.t.Parameters[name]
		path := "Parameters." + name
		if p.AllowedPattern != "" {
			if _, err := regexp.Compile(`^(?:` + p.AllowedPattern + `)$`); err != nil {
				c.report(joinPath(path, "AllowedPattern"), CodeBadValue, "AllowedPattern does not compile: %v", err)
			}
		}
		if p.Default != nil && !strings.HasPrefix(p.Type, "AWS::SSM::Parameter::Value<") {
			// The default must pass the parameter's own constraints.
			s := &Stack{t: c.t, env: Env{Parameters: map[string]string{}}, params: map[string]any{}, given: map[string]string{}}
			if err := s.setParameter(p); err != nil {
				c.report(joinPath(path, "Default"), CodeBadValue, "the default fails its constraints: %v", err)
			}
		}
	}
}

// place says where a value is, for the functions allowed there.
type place int

const (
	inValue     place = iota // resource properties, outputs
	inCondition              // the Conditions section
)

func (c *checker) conditions() {
	for _, name := range sortedKeys(c.t.Conditions) {
		c.conditionExpr(c.t.Conditions[name], "Conditions."+name)
	}
	// Circles among conditions.
	for _, name := range sortedKeys(c.t.Conditions) {
		if c.conditionCircle(name, name, map[string]bool{}) {
			c.report("Conditions."+name, CodeCycle, "condition %s depends on itself", name)
		}
	}
}

// conditionCircle reports whether from reaches target through Condition
// references.
func (c *checker) conditionCircle(target, from string, seen map[string]bool) bool {
	found := false
	var walk func(v any)
	walk = func(v any) {
		if found {
			return
		}
		if name, arg, ok := conditionCall(v); ok && name == fnCondition {
			if s, ok := arg.(string); ok {
				if s == target {
					found = true
					return
				}
				if !seen[s] {
					seen[s] = true
					if _, ok := c.t.Conditions[s]; ok {
						found = c.conditionCircle(target, s, seen)
					}
				}
			}
			return
		}
		switch v := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(v) {
				walk(v[k])
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(c.t.Conditions[from])
	return found
}

// conditionExpr checks a condition expression.
func (c *checker) conditionExpr(expr any, path string) {
	name, arg, ok := conditionCall(expr)
	if !ok {
		c.report(path, CodeBadFunction, "a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition, not %s", kindOf(expr))
		return
	}
	path = joinPath(path, name)
	switch name {
	case fnCondition:
		s, ok := arg.(string)
		if !ok {
			c.report(path, CodeBadFunction, "Condition takes a condition's name, not %s", kindOf(arg))
			return
		}
		c.conditionName(s, path)
	case fnEquals:
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			c.report(path, CodeBadFunction, "Fn::Equals takes a list of 2 values")
			return
		}
		for i, v := range a {
			c.value(v, indexPath(path, i), inCondition)
		}
	case fnNot:
		a, ok := arg.([]any)
		if !ok || len(a) != 1 {
			c.report(path, CodeBadFunction, "Fn::Not takes a list of 1 condition")
			return
		}
		c.conditionExpr(a[0], indexPath(path, 0))
	case fnAnd, fnOr:
		a, ok := arg.([]any)
		if !ok || len(a) < 2 || len(a) > 10 {
			c.report(path, CodeBadFunction, "%s takes a list of 2 to 10 conditions", name)
			return
		}
		for i, e := range a {
			c.conditionExpr(e, indexPath(path, i))
		}
	default:
		c.report(path, CodeBadFunction, "%s cannot decide a condition", name)
	}
}

func (c *checker) conditionName(name, path string) {
	if _, ok := c.t.Conditions[name]; !ok {
		c.report(path, CodeUnknownCondition, "no condition named %s%s", name, suggest(name, sortedKeys(c.t.Conditions)))
	}
}

func (c *checker) resource(id string) {
	r := c.t.Resources[id]
	path := "Resources." + id
	if r.Condition != "" {
		c.conditionName(r.Condition, joinPath(path, "Condition"))
	}
	for i, d := range r.DependsOn {
		p := joinPath(path, "DependsOn")
		if len(r.DependsOn) > 1 {
			p = indexPath(p, i)
		}
		switch _, ok := c.t.Resources[d]; {
		case d == id:
			c.report(p, CodeCycle, "%s depends on itself", id)
		case !ok:
			c.report(p, CodeUnresolved, "DependsOn %s: no resource of that name%s", d, suggest(d, c.t.order))
		}
	}
	props := joinPath(path, "Properties")
	c.value(r.Properties, props, inValue)
	c.resourceType(r, props)
	if c.spec != nil {
		c.policies(r, props)
	}
}

func (c *checker) output(name string) {
	o := c.t.Outputs[name]
	path := "Outputs." + name
	if o.Condition != "" {
		c.conditionName(o.Condition, joinPath(path, "Condition"))
	}
	c.value(o.Value, joinPath(path, "Value"), inValue)
	if o.ExportName != nil {
		c.value(o.ExportName, joinPath(path, "Export.Name"), inValue)
	}
}

func (c *checker) cycles() {
	deps := make(map[string][]string, len(c.t.order))
	for _, id := range c.t.order {
		deps[id] = c.t.Dependencies(id)
	}
	for _, circle := range c.t.cycles(deps) {
		if len(circle) == 2 && contains(c.t.Resources[circle[0]].DependsOn, circle[0]) {
			continue // reported at its DependsOn
		}
		c.report("Resources."+circle[0], CodeCycle, "circular dependency: %s", strings.Join(circle, " → "))
	}
}

// value checks the intrinsic functions in v, found at path.
func (c *checker) value(v any, path string, ctx place) {
	switch v := v.(type) {
	case map[string]any:
		if name, arg, ok := call(v); ok {
			c.function(name, arg, joinPath(path, name), ctx)
			return
		}
		for _, k := range sortedKeys(v) {
			if (k == fnRef || strings.HasPrefix(k, "Fn::")) && len(v) > 1 {
				c.report(joinPath(path, k), CodeBadFunction, "%s must be the only key of its mapping", k)
			}
			c.value(v[k], joinPath(path, k), ctx)
		}
	case []any:
		for i, e := range v {
			c.value(e, indexPath(path, i), ctx)
		}
	}
}

// argList checks that arg is a list of n values (n < 0: any length).
func (c *checker) argList(name string, arg any, n int, path string) ([]any, bool) {
	a, ok := arg.([]any)
	if !ok || n >= 0 && len(a) != n {
		c.report(path, CodeBadFunction, "%s takes a list of %d arguments", name, n)
		return nil, false
	}
	return a, true
}

func (c *checker) function(name string, arg any, path string, ctx place) {
	if contains(conditionFunctions, name) {
		c.report(path, CodeBadFunction, "%s may only be used in the Conditions section", name)
		return
	}
	if !contains(valueFunctions, name) {
		c.report(path, CodeBadFunction, "unknown intrinsic function %s%s", name, suggest(name, valueFunctions))
		return
	}
	if ctx == inCondition {
		switch name {
		case fnGetAtt, fnIf, fnImportValue:
			c.report(path, CodeBadFunction, "%s cannot be used in a condition", name)
			return
		}
	}
	switch name {
	case fnRef:
		s, ok := arg.(string)
		if !ok {
			c.report(path, CodeBadFunction, "Ref takes a name, not %s", kindOf(arg))
			return
		}
		c.ref(s, path, ctx)
	case fnGetAtt:
		res, attr, err := getAttArgs(arg)
		if err != nil {
			c.report(path, CodeBadFunction, "%v", err)
			return
		}
		if s, ok := attr.(string); ok {
			c.getAtt(res, s, path)
		} else {
			c.getAtt(res, "", path)
			c.value(attr, indexPath(path, 1), ctx)
		}
	case fnSub:
		c.sub(arg, path, ctx)
	case fnIf:
		a, ok := c.argList(name, arg, 3, path)
		if !ok {
			return
		}
		cond, ok := a[0].(string)
		if !ok {
			c.report(indexPath(path, 0), CodeBadFunction, "Fn::If's first argument must be a condition's name")
		} else {
			c.conditionName(cond, indexPath(path, 0))
		}
		c.value(a[1], indexPath(path, 1), ctx)
		c.value(a[2], indexPath(path, 2), ctx)
	case fnFindInMap:
		a, ok := c.argList(name, arg, 3, path)
		if !ok {
			return
		}
		c.findInMap(a, path, ctx)
	case fnJoin:
		if a, ok := c.argList(name, arg, 2, path); ok {
			if _, ok := a[0].(string); !ok {
				c.report(indexPath(path, 0), CodeBadFunction, "Fn::Join's delimiter must be a string")
			}
			c.value(a[1], indexPath(path, 1), ctx)
		}
	case fnSelect, fnSplit:
		if a, ok := c.argList(name, arg, 2, path); ok {
			c.value(a, path, ctx)
		}
	case fnCidr:
		if a, ok := c.argList(name, arg, 3, path); ok {
			c.value(a, path, ctx)
		}
	default: // Fn::GetAZs, Fn::Base64, Fn::ImportValue take one value
		if _, isList := arg.([]any); isList {
			c.report(path, CodeBadFunction, "%s takes one value, not a list", name)
			return
		}
		c.value(arg, path, ctx)
	}
}

// ref checks Ref name.
func (c *checker) ref(name, path string, ctx place) {
	if _, ok := c.t.Parameters[name]; ok {
		return
	}
	if contains(pseudoParameters, name) {
		return
	}
	if _, ok := c.t.Resources[name]; ok {
		if ctx == inCondition {
			c.report(path, CodeBadFunction, "Ref %s: a condition may refer to parameters only, not to the resource", name)
		}
		return
	}
	c.report(path, CodeUnresolved, "Ref %s: no parameter or resource of that name%s", name, suggest(name, c.names(ctx)))
}

// names lists what a Ref may name in ctx, for suggestions.
func (c *checker) names(ctx place) []string {
	names := append(sortedKeys(c.t.Parameters), pseudoParameters...)
	if ctx == inValue {
		names = append(names, c.t.order...)
	}
	return names
}

// getAtt checks Fn::GetAtt res.attr; attr "" when not literal.
func (c *checker) getAtt(res, attr, path string) {
	r, ok := c.t.Resources[res]
	if !ok {
		what := "no resource of that name"
		if _, isParam := c.t.Parameters[res]; isParam {
			what = "it is a parameter; Fn::GetAtt takes a resource"
		}
		c.report(path, CodeUnresolved, "Fn::GetAtt %s.%s: %s%s", res, attr, what, suggest(res, c.t.order))
		return
	}
	if attr == "" || c.spec == nil {
		return
	}
	rs := c.spec.data.resources[r.Type]
	if rs == nil {
		return // the type's problem is reported at the resource
	}
	if !contains(rs.attrs, attr) {
		c.report(path, CodeUnknownAttribute, "Fn::GetAtt %s.%s: %s has no attribute %s%s", res, attr, r.Type, attr, suggestOrList(attr, rs.attrs))
	}
}

// suggestOrList suggests a close name, or lists all when there are few.
func suggestOrList(name string, names []string) string {
	if s := suggest(name, names); s != "" {
		return s
	}
	if len(names) == 0 {
		return " (it has none)"
	}
	if len(names) <= 6 {
		return " (it has " + strings.Join(names, ", ") + ")"
	}
	return ""
}

func (c *checker) sub(arg any, path string, ctx place) {
	s, vars, err := subArgs(arg)
	if err != nil {
		c.report(path, CodeBadFunction, "%v", err)
		return
	}
	for _, p := range parseSub(s) {
		if !p.variable {
			continue
		}
		if _, ok := vars[p.text]; ok {
			continue
		}
		if res, attr, ok := strings.Cut(p.text, "."); ok {
			c.getAtt(res, attr, path)
			continue
		}
		if p.text == "" {
			c.report(path, CodeBadFunction, "Fn::Sub: empty variable ${}")
			continue
		}
		if _, isParam := c.t.Parameters[p.text]; isParam {
			continue
		}
		if contains(pseudoParameters, p.text) {
			continue
		}
		if _, isRes := c.t.Resources[p.text]; isRes {
			if ctx == inCondition {
				c.report(path, CodeBadFunction, "Fn::Sub ${%s}: a condition may refer to parameters only", p.text)
			}
			continue
		}
		local := sortedKeys(vars)
		c.report(path, CodeUnresolved, "Fn::Sub ${%s}: no variable, parameter, resource or pseudo-parameter of that name%s",
			p.text, suggest(p.text, append(local, c.names(ctx)...)))
	}
	for _, k := range sortedKeys(vars) {
		c.value(vars[k], joinPath(indexPath(path, 1), k), ctx)
	}
}

func (c *checker) findInMap(a []any, path string, ctx place) {
	for i, v := range a {
		c.value(v, indexPath(path, i), ctx)
	}
	name, ok := a[0].(string)
	if !ok {
		return
	}
	m, ok := c.t.Mappings[name]
	if !ok {
		c.report(indexPath(path, 0), CodeUnknownMapping, "Fn::FindInMap: no mapping %s%s", name, suggest(name, sortedKeys(c.t.Mappings)))
		return
	}
	top, ok := a[1].(string)
	if !ok {
		return
	}
	second, ok := m[top]
	if !ok {
		c.report(indexPath(path, 1), CodeUnknownMapping, "Fn::FindInMap: mapping %s has no key %s%s", name, top, suggest(top, sortedKeys(m)))
		return
	}
	key, ok := a[2].(string)
	if !ok {
		return
	}
	if _, ok := second[key]; !ok {
		c.report(indexPath(path, 2), CodeUnknownMapping, "Fn::FindInMap: mapping %s.%s has no key %s%s", name, top, key, suggest(key, sortedKeys(second)))
	}
}
