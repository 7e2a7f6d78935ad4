package cfn

import (
	"fmt"
	"strings"
)

// Intrinsic functions, by the key of their long form.
const (
	fnRef         = "Ref"
	fnGetAtt      = "Fn::GetAtt"
	fnSub         = "Fn::Sub"
	fnJoin        = "Fn::Join"
	fnSelect      = "Fn::Select"
	fnSplit       = "Fn::Split"
	fnGetAZs      = "Fn::GetAZs"
	fnIf          = "Fn::If"
	fnEquals      = "Fn::Equals"
	fnNot         = "Fn::Not"
	fnAnd         = "Fn::And"
	fnOr          = "Fn::Or"
	fnFindInMap   = "Fn::FindInMap"
	fnBase64      = "Fn::Base64"
	fnCidr        = "Fn::Cidr"
	fnImportValue = "Fn::ImportValue"
	fnCondition   = "Condition" // only inside Conditions
)

// conditionFunctions may appear only in the Conditions section.
var conditionFunctions = []string{fnEquals, fnNot, fnAnd, fnOr}

// valueFunctions may appear in resource properties and outputs.
var valueFunctions = []string{fnRef, fnGetAtt, fnSub, fnJoin, fnSelect, fnSplit, fnGetAZs,
	fnIf, fnFindInMap, fnBase64, fnCidr, fnImportValue}

// pseudoParameters are the names Ref resolves without a declaration.
var pseudoParameters = []string{
	"AWS::AccountId", "AWS::NotificationARNs", "AWS::NoValue", "AWS::Partition",
	"AWS::Region", "AWS::StackId", "AWS::StackName", "AWS::URLSuffix",
}

// call reports whether v is an intrinsic function call, a mapping with
// the single key Ref or Fn::…, and returns its name and argument.
func call(v any) (name string, arg any, ok bool) {
	m, isMap := v.(map[string]any)
	if !isMap || len(m) != 1 {
		return "", nil, false
	}
	for k, a := range m {
		if k == fnRef || strings.HasPrefix(k, "Fn::") {
			return k, a, true
		}
	}
	return "", nil, false
}

// conditionCall is call for the Conditions section, where the
// {"Condition": name} form also counts.
func conditionCall(v any) (name string, arg any, ok bool) {
	if m, isMap := v.(map[string]any); isMap && len(m) == 1 {
		if a, ok := m[fnCondition]; ok {
			return fnCondition, a, true
		}
	}
	return call(v)
}

// subPart is a piece of an Fn::Sub string: literal text, or the name of
// a variable.
type subPart struct {
	text     string
	variable bool
}

// parseSub splits an Fn::Sub string into text and ${variables}. ${!X}
// is the literal text ${X}; an unclosed ${ is text.
func parseSub(s string) []subPart {
	var parts []subPart
	var text strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			break
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			break
		}
		text.WriteString(s[:i])
		inner := s[i+2 : i+end]
		s = s[i+end+1:]
		if lit, ok := strings.CutPrefix(inner, "!"); ok {
			text.WriteString("${" + lit + "}")
			continue
		}
		if text.Len() > 0 {
			parts = append(parts, subPart{text: text.String()})
			text.Reset()
		}
		parts = append(parts, subPart{text: strings.TrimSpace(inner), variable: true})
	}
	text.WriteString(s)
	if text.Len() > 0 {
		parts = append(parts, subPart{text: text.String()})
	}
	return parts
}

// subArgs splits the argument of Fn::Sub into its string and its map of
// local variables (nil for the string form).
func subArgs(arg any) (string, map[string]any, error) {
	switch a := arg.(type) {
	case string:
		return a, nil, nil
	case []any:
		if len(a) != 2 {
			return "", nil, fmt.Errorf("Fn::Sub takes a string or [string, {variables}], not a list of %d", len(a))
		}
		s, ok := a[0].(string)
		if !ok {
			return "", nil, fmt.Errorf("Fn::Sub's first argument must be a string, not %s", kindOf(a[0]))
		}
		vars, ok := a[1].(map[string]any)
		if !ok {
			return "", nil, fmt.Errorf("Fn::Sub's second argument must be a mapping of variables, not %s", kindOf(a[1]))
		}
		return s, vars, nil
	}
	return "", nil, fmt.Errorf("Fn::Sub takes a string or [string, {variables}], not %s", kindOf(arg))
}

// getAttArgs returns the resource and attribute of Fn::GetAtt. The
// attribute is a string, or an intrinsic (a Ref to a parameter).
func getAttArgs(arg any) (string, any, error) {
	switch a := arg.(type) {
	case string:
		res, attr, ok := strings.Cut(a, ".")
		if ok && res != "" && attr != "" {
			return res, attr, nil
		}
	case []any:
		if len(a) == 2 {
			if res, ok := a[0].(string); ok && res != "" {
				return res, a[1], nil
			}
		}
	}
	return "", nil, fmt.Errorf("Fn::GetAtt takes [resource, attribute] or \"resource.attribute\"")
}

// refTargets calls fn for each name v refers to: the argument of every
// Ref, the resource of every Fn::GetAtt and the variables of every
// Fn::Sub (a variable Res.Attr counts as Res) other than the Sub's own.
// It looks into every value, both branches of Fn::If included.
func refTargets(v any, fn func(name string)) {
	switch v := v.(type) {
	case map[string]any:
		if name, arg, ok := call(v); ok {
			switch name {
			case fnRef:
				if s, ok := arg.(string); ok {
					fn(s)
				}
				return
			case fnGetAtt:
				if res, attr, err := getAttArgs(arg); err == nil {
					fn(res)
					refTargets(attr, fn)
				}
				return
			case fnSub:
				s, vars, err := subArgs(arg)
				if err != nil {
					return
				}
				for _, p := range parseSub(s) {
					if !p.variable {
						continue
					}
					if _, local := vars[p.text]; local {
						continue
					}
					res, _, _ := strings.Cut(p.text, ".")
					fn(res)
				}
				for _, k := range sortedKeys(vars) {
					refTargets(vars[k], fn)
				}
				return
			}
		}
		for _, k := range sortedKeys(v) {
			refTargets(v[k], fn)
		}
	case []any:
		for _, e := range v {
			refTargets(e, fn)
		}
	}
}
