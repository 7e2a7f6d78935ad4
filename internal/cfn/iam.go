package cfn

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// policyKind says which elements a policy document's statements need.
type policyKind int

const (
	identityPolicy policyKind = iota // attached to a role, user or group: Resource, no Principal
	trustPolicy                      // a role's AssumeRolePolicyDocument: Principal, no Resource
	resourcePolicy                   // on a resource (a bucket, a key): Principal
	someonesPolicy                   // found by its shape: either kind
)

// policyProperties names the properties that hold a policy document.
var policyProperties = []string{"PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument", "RepositoryPolicyText", "ResourcePolicy"}

// policies checks every IAM policy document in r's properties at path:
// those of the properties named in policyProperties, at any depth, and
// any other mapping holding both Version and Statement.
func (c *checker) policies(r *Resource, path string) {
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch v := v.(type) {
		case map[string]any:
			if name, arg, ok := call(v); ok {
				if a, isList := arg.([]any); name == fnIf && isList && len(a) == 3 {
					walk(a[1], indexPath(joinPath(path, name), 1))
					walk(a[2], indexPath(joinPath(path, name), 2))
				}
				return
			}
			if _, hasStatement := v["Statement"]; hasStatement {
				if _, hasVersion := v["Version"]; hasVersion {
					c.policyDocument(v, path, someonesPolicy)
					return
				}
			}
			for _, k := range sortedKeys(v) {
				p := joinPath(path, k)
				if contains(policyProperties, k) {
					c.policyDocument(v[k], p, c.policyKindOf(r, k))
					continue
				}
				walk(v[k], p)
			}
		case []any:
			for i, e := range v {
				walk(e, indexPath(path, i))
			}
		}
	}
	walk(r.Properties, path)
}

func (c *checker) policyKindOf(r *Resource, property string) policyKind {
	switch {
	case property == "AssumeRolePolicyDocument":
		return trustPolicy
	case strings.HasPrefix(r.Type, "AWS::IAM::"):
		return identityPolicy
	}
	return resourcePolicy
}

// policyDocument checks a policy document: a mapping, a JSON string, or
// an Fn::If of them. Other intrinsic functions are not looked into.
func (c *checker) policyDocument(v any, path string, kind policyKind) {
	if name, arg, ok := call(v); ok {
		if a, isList := arg.([]any); name == fnIf && isList && len(a) == 3 {
			for i := 1; i <= 2; i++ {
				if !isNoValue(a[i]) {
					c.policyDocument(a[i], indexPath(joinPath(path, name), i), kind)
				}
			}
		}
		return
	}
	if s, ok := v.(string); ok {
		var doc any
		if err := json.Unmarshal([]byte(s), &doc); err != nil {
			c.report(path, CodeBadPolicy, "a policy document in a string must be JSON: %v", err)
			return
		}
		v = jsonToTemplate(doc)
	}
	doc, ok := v.(map[string]any)
	if !ok {
		c.report(path, CodeBadPolicy, "a policy document must be a mapping, not %s", kindOf(v))
		return
	}
	for _, k := range sortedKeys(doc) {
		if !contains([]string{"Version", "Id", "Statement"}, k) {
			c.report(joinPath(path, k), CodeBadPolicy, "unknown policy element %q%s", k, suggest(k, []string{"Version", "Id", "Statement"}))
		}
	}
	if ver, ok := doc["Version"]; ok {
		if s, _ := ver.(string); s != "2012-10-17" && s != "2008-10-17" {
			c.report(joinPath(path, "Version"), CodeBadPolicy, "policy Version must be \"2012-10-17\", not %s", describe(ver))
		}
	}
	st, ok := doc["Statement"]
	if !ok {
		c.report(path, CodeBadPolicy, "a policy document needs a Statement")
		return
	}
	c.statements(st, joinPath(path, "Statement"), kind)
}

// jsonToTemplate turns encoding/json's float64s into the ints the
// template parser gives.
func jsonToTemplate(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonToTemplate(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonToTemplate(e)
		}
	case float64:
		if v == float64(int(v)) {
			return int(v)
		}
	}
	return v
}

func (c *checker) statements(v any, path string, kind policyKind) {
	switch v := v.(type) {
	case []any:
		for i, e := range v {
			c.statements(e, indexPath(path, i), kind)
		}
		return
	case map[string]any:
		if name, arg, ok := call(v); ok {
			if a, isList := arg.([]any); name == fnIf && isList && len(a) == 3 {
				for i := 1; i <= 2; i++ {
					if !isNoValue(a[i]) {
						c.statements(a[i], indexPath(joinPath(path, name), i), kind)
					}
				}
			}
			return
		}
		c.statement(v, path, kind)
		return
	}
	c.report(path, CodeBadPolicy, "a statement must be a mapping, not %s", kindOf(v))
}

var statementKeys = []string{"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction",
	"Resource", "NotResource", "Condition"}

func (c *checker) statement(st map[string]any, path string, kind policyKind) {
	for _, k := range sortedKeys(st) {
		if !contains(statementKeys, k) {
			c.report(joinPath(path, k), CodeBadPolicy, "unknown statement element %q%s", k, suggest(k, statementKeys))
		}
	}
	if e, ok := st["Effect"]; !ok {
		c.report(path, CodeBadPolicy, "a statement needs an Effect, Allow or Deny")
	} else if e != "Allow" && e != "Deny" {
		if _, _, isCall := call(e); !isCall {
			c.report(joinPath(path, "Effect"), CodeBadPolicy, "Effect must be Allow or Deny, not %s", describe(e))
		}
	}
	has := func(k string) bool { _, ok := st[k]; return ok }
	exactlyOne := func(a, b string) {
		switch {
		case has(a) && has(b):
			c.report(path, CodeBadPolicy, "a statement has %s or %s, not both", a, b)
		case !has(a) && !has(b):
			c.report(path, CodeBadPolicy, "a statement needs %s or %s", a, b)
		}
	}
	exactlyOne("Action", "NotAction")
	switch kind {
	case identityPolicy:
		exactlyOne("Resource", "NotResource")
		for _, k := range []string{"Principal", "NotPrincipal"} {
			if has(k) {
				c.report(joinPath(path, k), CodeBadPolicy, "a policy attached to an identity has no %s", k)
			}
		}
	case trustPolicy:
		exactlyOne("Principal", "NotPrincipal")
		for _, k := range []string{"Resource", "NotResource"} {
			if has(k) {
				c.report(joinPath(path, k), CodeBadPolicy, "a role's trust policy has no %s", k)
			}
		}
	case resourcePolicy:
		exactlyOne("Principal", "NotPrincipal")
	}
	for _, k := range []string{"Action", "NotAction"} {
		if v, ok := st[k]; ok {
			forEachString(v, joinPath(path, k), func(a, p string) { c.action(a, p) })
		}
	}
	if cond, ok := st["Condition"]; ok {
		c.conditionBlock(cond, joinPath(path, "Condition"))
	}
}

// forEachString calls fn for each literal string of an element that takes
// a string or a list of them, in both branches of an Fn::If; other
// intrinsic functions are skipped.
func forEachString(v any, path string, fn func(s, path string)) {
	switch v := v.(type) {
	case string:
		fn(v, path)
	case []any:
		for i, e := range v {
			forEachString(e, indexPath(path, i), fn)
		}
	case map[string]any:
		if name, arg, ok := call(v); ok && name == fnIf {
			if a, ok := arg.([]any); ok && len(a) == 3 {
				forEachString(a[1], indexPath(joinPath(path, name), 1), fn)
				forEachString(a[2], indexPath(joinPath(path, name), 2), fn)
			}
		}
	}
}

// action checks one action of a statement.
func (c *checker) action(a, path string) {
	if a == "*" {
		if !c.wildcardAllowed(a) {
			c.report(path, CodeWildcardAction, "the action * grants every action of every service")
		}
		return
	}
	prefix, name, ok := strings.Cut(a, ":")
	if !ok || prefix == "" || name == "" {
		c.report(path, CodeUnknownAction, "action %q: want service:Action", a)
		return
	}
	svc := c.spec.data.services[strings.ToLower(prefix)]
	if svc == nil {
		if c.spec.data.otherSvcs[strings.ToLower(prefix)] {
			c.report(path, CodeNotInSpec, "action %s: the IAM data of service %s is not vendored: add it to specConfig in specgen_test.go and run the update", a, prefix)
		} else {
			c.report(path, CodeUnknownAction, "action %s: no IAM service %s%s", a, prefix, suggest(prefix, c.serviceNames()))
		}
		return
	}
	if strings.ContainsAny(name, "*?") {
		matched := svc.matchActions(name)
		switch {
		case len(matched) == 0:
			c.report(path, CodeUnknownAction, "action %s matches no action of %s", a, prefix)
		case !c.wildcardAllowed(a):
			c.report(path, CodeWildcardAction, "action %s grants %d actions (%s): name the ones needed", a, len(matched), abbreviate(matched, 5))
		}
		return
	}
	if _, ok := svc.actions[strings.ToLower(name)]; !ok {
		c.report(path, CodeUnknownAction, "action %s: %s has no action %s%s", a, prefix, name, suggest(name, svc.sorted))
	}
}

func abbreviate(list []string, n int) string {
	if len(list) <= n {
		return strings.Join(list, ", ")
	}
	return strings.Join(list[:n], ", ") + ", …"
}

func (c *checker) wildcardAllowed(a string) bool {
	for _, w := range c.spec.WildcardActions {
		if strings.EqualFold(w, a) {
			return true
		}
	}
	return false
}

func (c *checker) serviceNames() []string {
	var names []string
	for p := range c.spec.data.services {
		names = append(names, p)
	}
	for p := range c.spec.data.otherSvcs {
		names = append(names, p)
	}
	sort.Strings(names)
	return names
}

// conditionOperators are the IAM condition operators, without their
// ForAllValues:/ForAnyValue: prefixes and IfExists suffix.
var conditionOperators = []string{
	"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike",
	"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals",
	"DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
	"Bool", "BinaryEquals", "IpAddress", "NotIpAddress",
	"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Null",
}

// validOperator reports whether op is a condition operator. IAM matches
// operator names without regard to case.
func validOperator(op string) bool {
	for _, p := range []string{"ForAllValues:", "ForAnyValue:"} {
		if len(op) > len(p) && strings.EqualFold(op[:len(p)], p) {
			op = op[len(p):]
			break
		}
	}
	base := op
	if len(op) > len("IfExists") && strings.EqualFold(op[len(op)-len("IfExists"):], "IfExists") {
		base = op[:len(op)-len("IfExists")]
		if strings.EqualFold(base, "Null") {
			return false
		}
	}
	for _, o := range conditionOperators {
		if strings.EqualFold(o, base) {
			return true
		}
	}
	return false
}

func (c *checker) conditionBlock(v any, path string) {
	if _, _, ok := call(v); ok {
		return
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.report(path, CodeBadPolicy, "Condition must be a mapping of operators, not %s", kindOf(v))
		return
	}
	for _, op := range sortedKeys(m) {
		p := joinPath(path, op)
		if !validOperator(op) {
			c.report(p, CodeUnknownOperator, "unknown condition operator %s%s", op, suggest(op, conditionOperators))
		}
		keys, ok := m[op].(map[string]any)
		if !ok {
			if _, _, isCall := call(m[op]); !isCall {
				c.report(p, CodeBadPolicy, "condition operator %s takes a mapping of keys, not %s", op, kindOf(m[op]))
			}
			continue
		}
		for _, k := range sortedKeys(keys) {
			c.conditionKey(k, joinPath(p, k))
		}
	}
}

func (c *checker) conditionKey(key, path string) {
	prefix, _, ok := strings.Cut(key, ":")
	if !ok {
		c.report(path, CodeUnknownConditionKey, "condition key %q: want service:Key", key)
		return
	}
	if c.spec.conditionKeyExists(key) {
		return
	}
	lp := strings.ToLower(prefix)
	if lp != "aws" && c.spec.data.services[lp] == nil {
		if c.spec.data.otherSvcs[lp] {
			c.report(path, CodeNotInSpec, "condition key %s: the IAM data of service %s is not vendored: add it to specConfig in specgen_test.go and run the update", key, prefix)
		} else {
			c.report(path, CodeUnknownConditionKey, "condition key %s: no IAM service %s%s", key, prefix, suggest(prefix, c.serviceNames()))
		}
		return
	}
	var names []string
	for _, p := range c.spec.data.global {
		names = append(names, p.name)
	}
	if svc := c.spec.data.services[lp]; svc != nil {
		for _, p := range svc.keys {
			names = append(names, p.name)
		}
	}
	what := "a global condition key"
	if lp != "aws" {
		what = "a condition key of " + prefix
	}
	c.report(path, CodeUnknownConditionKey, "%s is not %s%s", key, what, suggest(key, names))
}

// conditionKeyExists reports whether key is a global condition key or a
// condition key of a vendored service. Case does not matter.
func (s *Spec) conditionKeyExists(key string) bool {
	for _, p := range s.data.global {
		if p.match(key) {
			return true
		}
	}
	// A service may list keys of another prefix (ssm lists
	// ec2:SourceInstanceARN), so look in every service, its own first.
	prefix, _, _ := strings.Cut(strings.ToLower(key), ":")
	if svc := s.data.services[prefix]; svc != nil {
		for _, p := range svc.keys {
			if p.match(key) {
				return true
			}
		}
	}
	for _, svc := range s.data.services {
		for _, p := range svc.keys {
			if p.match(key) {
				return true
			}
		}
	}
	return false
}

// RoleActions returns, for each AWS::IAM::Role of t by logical ID, the
// actions its identity policies allow, as AWS writes them
// ("ecs:RunTask"), sorted and unique. It counts the role's Policies, the
// AWS::IAM::Policy and AWS::IAM::ManagedPolicy resources whose Roles name
// it with a Ref, and the template's managed policies its
// ManagedPolicyArns name with a Ref; Allow statements, whatever their
// Resource and Condition, with both branches of an Fn::If. A wildcard
// expands to the actions of spec it matches. Deny statements are not
// subtracted.
//
// The set would not be exact, and RoleActions fails, when a role has a
// managed policy from outside the template (an AWS managed policy), an
// Allow statement has NotAction, or an action is not a literal string
// (or Fn::If of them) of a service in spec.
func RoleActions(t *Template, spec *Spec) (map[string][]string, error) {
	out := map[string][]string{}
	sets := map[string]map[string]bool{}
	for _, id := range t.order {
		if t.Resources[id].Type == "AWS::IAM::Role" {
			sets[id] = map[string]bool{}
		}
	}
	add := func(role string, doc any, path string) error {
		set, ok := sets[role]
		if !ok {
			return nil // a role outside the template
		}
		return allowedActions(doc, path, spec, set)
	}
	for _, id := range t.order {
		r := t.Resources[id]
		path := "Resources." + id + ".Properties"
		var err error
		switch r.Type {
		case "AWS::IAM::Role":
			err = eachItem(r.Properties["Policies"], joinPath(path, "Policies"), func(p any, path string) error {
				pm, ok := p.(map[string]any)
				if !ok {
					return pathErrorf(path, "a policy made by an intrinsic function: its actions are not known")
				}
				return add(id, pm["PolicyDocument"], joinPath(path, "PolicyDocument"))
			})
			if err != nil {
				break
			}
			err = eachItem(r.Properties["ManagedPolicyArns"], joinPath(path, "ManagedPolicyArns"), func(a any, path string) error {
				ref, ok := refName(a)
				if !ok || t.Resources[ref] == nil || t.Resources[ref].Type != "AWS::IAM::ManagedPolicy" {
					return pathErrorf(path, "the managed policy %s comes from outside the template: its actions are not known", describeValue(a))
				}
				return add(id, t.Resources[ref].Properties["PolicyDocument"], "Resources."+ref+".Properties.PolicyDocument")
			})
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			err = eachItem(r.Properties["Roles"], joinPath(path, "Roles"), func(ro any, _ string) error {
				if ref, ok := refName(ro); ok {
					return add(ref, r.Properties["PolicyDocument"], joinPath(path, "PolicyDocument"))
				}
				return nil // a role outside the template, by name
			})
		}
		if err != nil {
			return nil, t.located(err)
		}
	}
	for role, set := range sets {
		out[role] = sortedKeys(set)
	}
	return out, nil
}

// pathError is an error at a path of a template, given its file and
// line by Template.located.
type pathError struct {
	path, msg string
}

func (e *pathError) Error() string { return e.path + ": " + e.msg }

func pathErrorf(path, format string, args ...any) error {
	return &pathError{path: path, msg: fmt.Sprintf(format, args...)}
}

// located prefixes a pathError with the file and line of its path.
func (t *Template) located(err error) error {
	var pe *pathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s:%d: %w", t.Name, t.Line(pe.path), err)
	}
	return fmt.Errorf("%s: %w", t.Name, err)
}

// eachItem calls fn for each item of the list v, in both branches of any
// Fn::If around the list or an item, leaving out AWS::NoValue.
func eachItem(v any, path string, fn func(item any, path string) error) error {
	if v == nil {
		return nil
	}
	return alternatives(v, path, func(v any, path string) error {
		list, ok := v.([]any)
		if !ok {
			return pathErrorf(path, "want a list, not %s", kindOf(v))
		}
		for i, item := range list {
			if err := alternatives(item, indexPath(path, i), fn); err != nil {
				return err
			}
		}
		return nil
	})
}

// alternatives calls fn for each value v may take: v, or each branch of
// an Fn::If, recursively, leaving out AWS::NoValue.
func alternatives(v any, path string, fn func(v any, path string) error) error {
	if isNoValue(v) {
		return nil
	}
	if name, arg, ok := call(v); ok && name == fnIf {
		if a, isList := arg.([]any); isList && len(a) == 3 {
			for i := 1; i <= 2; i++ {
				if err := alternatives(a[i], indexPath(joinPath(path, name), i), fn); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return fn(v, path)
}

func refName(v any) (string, bool) {
	name, arg, ok := call(v)
	if !ok || name != fnRef {
		return "", false
	}
	s, ok := arg.(string)
	return s, ok
}

func describeValue(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// allowedActions adds the actions doc's Allow statements grant to set.
func allowedActions(doc any, path string, spec *Spec, set map[string]bool) error {
	if name, arg, ok := call(doc); ok {
		if a, isList := arg.([]any); name == fnIf && isList && len(a) == 3 {
			for i := 1; i <= 2; i++ {
				if err := allowedActions(a[i], indexPath(joinPath(path, name), i), spec, set); err != nil {
					return err
				}
			}
			return nil
		}
		if isNoValue(doc) {
			return nil
		}
		return pathErrorf(path, "a policy document made by %s: its actions are not known", name)
	}
	if s, ok := doc.(string); ok {
		var d any
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			return pathErrorf(path, "%v", err)
		}
		doc = d
	}
	m, _ := doc.(map[string]any)
	var errs []error
	var statements func(v any, path string)
	statements = func(v any, path string) {
		switch v := v.(type) {
		case []any:
			for i, e := range v {
				statements(e, indexPath(path, i))
			}
		case map[string]any:
			if name, arg, ok := call(v); ok {
				if a, isList := arg.([]any); name == fnIf && isList && len(a) == 3 {
					statements(a[1], indexPath(joinPath(path, name), 1))
					statements(a[2], indexPath(joinPath(path, name), 2))
				} else if !isNoValue(v) {
					errs = append(errs, pathErrorf(path, "a statement made by %s: its actions are not known", name))
				}
				return
			}
			if v["Effect"] != "Allow" {
				return
			}
			if _, ok := v["NotAction"]; ok {
				errs = append(errs, pathErrorf(path, "an Allow statement with NotAction grants actions that cannot be listed"))
				return
			}
			expandActions(v["Action"], joinPath(path, "Action"), spec, set, &errs)
		}
	}
	statements(m["Statement"], joinPath(path, "Statement"))
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

func expandActions(v any, path string, spec *Spec, set map[string]bool, errs *[]error) {
	switch v := v.(type) {
	case string:
		prefix, name, _ := strings.Cut(v, ":")
		if v == "*" {
			*errs = append(*errs, pathErrorf(path, "the action * grants actions that cannot be listed"))
			return
		}
		svc := spec.data.services[strings.ToLower(prefix)]
		if svc == nil {
			*errs = append(*errs, pathErrorf(path, "action %s: the IAM data of %s is not vendored", v, prefix))
			return
		}
		if strings.ContainsAny(name, "*?") {
			for _, a := range svc.matchActions(name) {
				set[svc.prefix+":"+a] = true
			}
			return
		}
		a, ok := svc.actions[strings.ToLower(name)]
		if !ok {
			*errs = append(*errs, pathErrorf(path, "no action %s", v))
			return
		}
		set[svc.prefix+":"+a] = true
	case []any:
		for i, e := range v {
			expandActions(e, indexPath(path, i), spec, set, errs)
		}
	case map[string]any:
		name, arg, ok := call(v)
		if a, isList := arg.([]any); ok && name == fnIf && isList && len(a) == 3 {
			expandActions(a[1], indexPath(joinPath(path, name), 1), spec, set, errs)
			expandActions(a[2], indexPath(joinPath(path, name), 2), spec, set, errs)
			return
		}
		if isNoValue(v) {
			return
		}
		*errs = append(*errs, pathErrorf(path, "an action made by %s is not known", name))
	default:
		*errs = append(*errs, pathErrorf(path, "an action must be a string, not %s", kindOf(v)))
	}
}
