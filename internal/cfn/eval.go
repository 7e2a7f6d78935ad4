package cfn

import (
	"encoding/base64"
	"fmt"
	"math/big"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Env is what CloudFormation knows when it creates a stack from a
// template: parameter values, pseudo-parameters, and the physical IDs and
// attributes of the resources created so far. A zero Env is valid.
type Env struct {
	// Parameters holds the values given for the template's parameters,
	// lists as one comma-separated string. A parameter left out takes
	// its Default.
	Parameters map[string]string

	// Region is AWS::Region. If empty, "us-east-1" is used.
	Region string
	// AccountID is AWS::AccountId. If empty, "123456789012" is used.
	AccountID string
	// StackName is AWS::StackName. If empty, "stack" is used.
	StackName string
	// StackID is AWS::StackId. If empty, an ARN made of the region,
	// account and stack name with a zero UUID is used.
	StackID string
	// Partition is AWS::Partition. If empty, it follows Region:
	// "aws-cn" for cn-*, "aws-us-gov" for us-gov-*, else "aws".
	Partition string
	// URLSuffix is AWS::URLSuffix. If empty, "amazonaws.com.cn" is used
	// in aws-cn and "amazonaws.com" elsewhere.
	URLSuffix string
	// NotificationARNs is AWS::NotificationARNs.
	NotificationARNs []string

	// AZs is what Fn::GetAZs returns, whatever region it is asked for.
	AZs []string

	// PhysicalIDs maps the logical ID of each resource created so far
	// to its physical ID, what Ref of the resource returns. It is read
	// at each call, not copied: the caller adds to it as it creates.
	PhysicalIDs map[string]string
	// Attribute returns the value of an attribute of a created resource
	// for Fn::GetAtt (and ${Resource.Attribute} in Fn::Sub). If nil,
	// every Fn::GetAtt fails.
	Attribute func(logicalID, name string) (any, error)
	// ImportValue returns the value another stack exported under name,
	// for Fn::ImportValue. If nil, every Fn::ImportValue fails.
	ImportValue func(name string) (any, error)
}

// A Stack is a template evaluated with an Env: its parameters checked
// and set, its conditions decided, its resources ordered. Properties and
// Outputs resolve intrinsic functions on demand, against the Env's
// physical IDs and attributes at the time of the call. A Stack is safe
// for concurrent use while nothing writes to its Env's PhysicalIDs.
type Stack struct {
	t   *Template
	env Env

	// All immutable after Evaluate.
	params map[string]any // string, or []any of strings for list types
	given  map[string]string
	conds  map[string]bool
	order  []string // resources whose Condition holds, in creation order
	active map[string]bool
}

// Evaluate checks the parameter values in env against the template
// (missing values, unknown names, types, AllowedValues, AllowedPattern,
// lengths and bounds), decides every condition and orders the resources
// to create: those whose Condition holds, in CreationOrder.
func Evaluate(t *Template, env Env) (*Stack, error) {
	if env.Region == "" {
		env.Region = "us-east-1"
	}
	if env.AccountID == "" {
		env.AccountID = "123456789012"
	}
	if env.StackName == "" {
		env.StackName = "stack"
	}
	if env.Partition == "" {
		switch {
		case strings.HasPrefix(env.Region, "cn-"):
			env.Partition = "aws-cn"
		case strings.HasPrefix(env.Region, "us-gov-"):
			env.Partition = "aws-us-gov"
		default:
			env.Partition = "aws"
		}
	}
	if env.URLSuffix == "" {
		env.URLSuffix = "amazonaws.com"
		if env.Partition == "aws-cn" {
			env.URLSuffix = "amazonaws.com.cn"
		}
	}
	if env.StackID == "" {
		env.StackID = fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/00000000-0000-0000-0000-000000000000",
			env.Partition, env.Region, env.AccountID, env.StackName)
	}
	s := &Stack{t: t, env: env, params: map[string]any{}, given: map[string]string{}, conds: map[string]bool{}}
	for _, name := range sortedKeys(env.Parameters) {
		if _, ok := t.Parameters[name]; !ok {
			return nil, fmt.Errorf("parameter %s: the template declares no such parameter", name)
		}
	}
	for _, name := range sortedKeys(t.Parameters) {
		if err := s.setParameter(t.Parameters[name]); err != nil {
			return nil, err
		}
	}
	for _, name := range sortedKeys(t.Conditions) {
		if _, err := s.condition(name, nil); err != nil {
			return nil, err
		}
	}
	all, err := t.CreationOrder()
	if err != nil {
		return nil, err
	}
	s.active = map[string]bool{}
	for _, id := range all {
		r := t.Resources[id]
		if r.Condition != "" {
			v, ok := s.conds[r.Condition]
			if !ok {
				return nil, fmt.Errorf("resource %s: no condition named %s", id, r.Condition)
			}
			if !v {
				continue
			}
		}
		s.order = append(s.order, id)
		s.active[id] = true
	}
	return s, nil
}

// setParameter checks and records the value of p.
func (s *Stack) setParameter(p *Parameter) error {
	val, ok := s.env.Parameters[p.Name]
	if !ok {
		if p.Default == nil {
			return fmt.Errorf("parameter %s: a value is required (it has no default)", p.Name)
		}
		val = *p.Default
	}
	errorf := func(format string, args ...any) error {
		return fmt.Errorf("parameter %s: "+format, append([]any{p.Name}, args...)...)
	}
	if strings.HasPrefix(p.Type, "AWS::SSM::Parameter::Value<") {
		return errorf("type %s (resolved from SSM) is not supported here", p.Type)
	}
	list := p.Type == "CommaDelimitedList" || strings.HasPrefix(p.Type, "List<")
	items := []string{val}
	if list {
		items = strings.Split(val, ",")
	}
	number := p.Type == "Number" || p.Type == "List<Number>"
	var pattern *regexp.Regexp
	if p.AllowedPattern != "" {
		var err error
		pattern, err = regexp.Compile(`^(?:` + p.AllowedPattern + `)$`)
		if err != nil {
			return errorf("AllowedPattern: %v", err)
		}
	}
	for _, item := range items {
		if len(p.AllowedValues) > 0 && !slices.Contains(p.AllowedValues, item) {
			return errorf("%q is not one of the allowed values %s", item, strings.Join(p.AllowedValues, ", "))
		}
		if pattern != nil && !pattern.MatchString(item) {
			return errorf("%q does not match the pattern %s", item, p.AllowedPattern)
		}
		if number {
			n, err := strconv.ParseFloat(item, 64)
			if err != nil {
				return errorf("%q is not a number", item)
			}
			if p.MinValue != nil && n < *p.MinValue || p.MaxValue != nil && n > *p.MaxValue {
				return errorf("%s is out of bounds [%s, %s]", item, bound(p.MinValue), bound(p.MaxValue))
			}
		}
	}
	if p.MinLength != nil && len(val) < *p.MinLength {
		return errorf("%q is shorter than %d characters", val, *p.MinLength)
	}
	if p.MaxLength != nil && len(val) > *p.MaxLength {
		return errorf("%q is longer than %d characters", val, *p.MaxLength)
	}
	s.given[p.Name] = val
	if list {
		l := make([]any, len(items))
		for i, it := range items {
			l[i] = it
		}
		s.params[p.Name] = l
	} else {
		s.params[p.Name] = val
	}
	return nil
}

func bound(f *float64) string {
	if f == nil {
		return "…"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// Template returns the template s was evaluated from.
func (s *Stack) Template() *Template { return s.t }

// Env returns the Env of s with its defaults filled in.
func (s *Stack) Env() Env { return s.env }

// Parameters returns the value of every parameter, given or default, as
// CloudFormation reports them (lists comma-separated).
func (s *Stack) Parameters() map[string]string {
	out := make(map[string]string, len(s.given))
	for k, v := range s.given {
		out[k] = v
	}
	return out
}

// Condition reports whether the named condition holds (false when there
// is no such condition).
func (s *Stack) Condition(name string) bool { return s.conds[name] }

// Resources returns the logical IDs of the resources to create, those
// whose Condition holds, in creation order.
func (s *Stack) Resources() []string { return slices.Clone(s.order) }

// DeletionOrder returns Resources reversed: the order to delete them in.
func (s *Stack) DeletionOrder() []string {
	out := slices.Clone(s.order)
	slices.Reverse(out)
	return out
}

// Properties returns the properties of the resource id with every
// intrinsic function resolved and every AWS::NoValue dropped: plain
// maps, lists, strings, numbers and booleans. It fails for a resource
// whose Condition is false, and when a value it needs is missing: the
// physical ID or an attribute of a resource not created yet, for one.
func (s *Stack) Properties(id string) (map[string]any, error) {
	r, ok := s.t.Resources[id]
	if !ok {
		return nil, fmt.Errorf("no resource %s in the template", id)
	}
	if !s.active[id] {
		return nil, fmt.Errorf("resource %s is not part of the stack: its condition %s is false", id, r.Condition)
	}
	if r.Properties == nil {
		return nil, nil
	}
	v, err := s.resolve(r.Properties, "Resources."+id+".Properties")
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// An OutputValue is a resolved output of a stack.
type OutputValue struct {
	Name        string
	Value       string
	Description string
	ExportName  string // "" when not exported
}

// Outputs returns the outputs whose Condition holds, sorted by name,
// with their values and export names resolved.
func (s *Stack) Outputs() ([]OutputValue, error) {
	var out []OutputValue
	for _, name := range sortedKeys(s.t.Outputs) {
		o := s.t.Outputs[name]
		if o.Condition != "" && !s.conds[o.Condition] {
			continue
		}
		path := "Outputs." + name
		ov := OutputValue{Name: name, Description: o.Description}
		var err error
		if ov.Value, err = s.resolveString(o.Value, path+".Value"); err != nil {
			return nil, err
		}
		if o.ExportName != nil {
			if ov.ExportName, err = s.resolveString(o.ExportName, path+".Export.Name"); err != nil {
				return nil, err
			}
		}
		out = append(out, ov)
	}
	return out, nil
}

// noValue is what Ref AWS::NoValue resolves to, dropped by its container.
type noValueType struct{}

var noValue = noValueType{}

// evalError is an error at a path of the template.
func evalErrorf(path, format string, args ...any) error {
	return fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...))
}

func (s *Stack) resolveString(v any, path string) (string, error) {
	r, err := s.resolve(v, path)
	if err != nil {
		return "", err
	}
	str, err := scalarString(r)
	if err != nil {
		return "", evalErrorf(path, "%v", err)
	}
	return str, nil
}

// resolve resolves every intrinsic function in v, found at path.
func (s *Stack) resolve(v any, path string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if name, arg, ok := call(v); ok {
			return s.function(name, arg, joinPath(path, name))
		}
		out := make(map[string]any, len(v))
		for _, k := range sortedKeys(v) {
			r, err := s.resolve(v[k], joinPath(path, k))
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out[k] = r
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(v))
		for i, e := range v {
			r, err := s.resolve(e, indexPath(path, i))
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return v, nil
}

// resolveList resolves v and requires a list.
func (s *Stack) resolveList(v any, path string) ([]any, error) {
	r, err := s.resolve(v, path)
	if err != nil {
		return nil, err
	}
	l, ok := r.([]any)
	if !ok {
		return nil, evalErrorf(path, "want a list, not %s", kindOf(r))
	}
	return l, nil
}

// args checks that arg is a list of n values.
func args(arg any, n int, fn, path string) ([]any, error) {
	l, ok := arg.([]any)
	if !ok || len(l) != n {
		return nil, evalErrorf(path, "%s takes a list of %d arguments", fn, n)
	}
	return l, nil
}

// function evaluates one intrinsic function call.
func (s *Stack) function(name string, arg any, path string) (any, error) {
	switch name {
	case fnRef:
		ref, ok := arg.(string)
		if !ok {
			return nil, evalErrorf(path, "Ref takes a name, not %s", kindOf(arg))
		}
		return s.ref(ref, path, false)
	case fnGetAtt:
		res, attrArg, err := getAttArgs(arg)
		if err != nil {
			return nil, evalErrorf(path, "%v", err)
		}
		attr, err := s.resolveString(attrArg, path)
		if err != nil {
			return nil, err
		}
		return s.getAtt(res, attr, path)
	case fnSub:
		return s.sub(arg, path)
	case fnJoin:
		a, err := args(arg, 2, name, path)
		if err != nil {
			return nil, err
		}
		delim, ok := a[0].(string)
		if !ok {
			return nil, evalErrorf(path, "Fn::Join's delimiter must be a string")
		}
		list, err := s.resolveList(a[1], indexPath(path, 1))
		if err != nil {
			return nil, err
		}
		parts := make([]string, len(list))
		for i, e := range list {
			if parts[i], err = scalarString(e); err != nil {
				return nil, evalErrorf(indexPath(path, 1), "Fn::Join: item %d: %v", i, err)
			}
		}
		return strings.Join(parts, delim), nil
	case fnSelect:
		a, err := args(arg, 2, name, path)
		if err != nil {
			return nil, err
		}
		idx, err := s.resolveString(a[0], indexPath(path, 0))
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(idx)
		if err != nil {
			return nil, evalErrorf(path, "Fn::Select's index must be an integer, not %q", idx)
		}
		list, err := s.resolveList(a[1], indexPath(path, 1))
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= len(list) {
			return nil, evalErrorf(path, "Fn::Select: index %d is out of range for a list of %d", i, len(list))
		}
		return list[i], nil
	case fnSplit:
		a, err := args(arg, 2, name, path)
		if err != nil {
			return nil, err
		}
		delim, ok := a[0].(string)
		if !ok || delim == "" {
			return nil, evalErrorf(path, "Fn::Split's delimiter must be a non-empty string")
		}
		str, err := s.resolveString(a[1], indexPath(path, 1))
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(str, delim) {
			out = append(out, p)
		}
		return out, nil
	case fnGetAZs:
		if _, err := s.resolveString(arg, path); err != nil {
			return nil, err
		}
		out := make([]any, len(s.env.AZs))
		for i, az := range s.env.AZs {
			out[i] = az
		}
		return out, nil
	case fnIf:
		a, err := args(arg, 3, name, path)
		if err != nil {
			return nil, err
		}
		cond, ok := a[0].(string)
		if !ok {
			return nil, evalErrorf(path, "Fn::If's first argument must be a condition's name")
		}
		v, ok := s.conds[cond]
		if !ok {
			return nil, evalErrorf(path, "Fn::If: no condition named %s", cond)
		}
		if v {
			return s.resolve(a[1], indexPath(path, 1))
		}
		return s.resolve(a[2], indexPath(path, 2))
	case fnFindInMap:
		return s.findInMap(arg, path)
	case fnBase64:
		str, err := s.resolveString(arg, path)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(str)), nil
	case fnCidr:
		return s.cidr(arg, path)
	case fnImportValue:
		str, err := s.resolveString(arg, path)
		if err != nil {
			return nil, err
		}
		if s.env.ImportValue == nil {
			return nil, evalErrorf(path, "Fn::ImportValue %s: no exports are known", str)
		}
		v, err := s.env.ImportValue(str)
		if err != nil {
			return nil, evalErrorf(path, "Fn::ImportValue %s: %v", str, err)
		}
		return v, nil
	case fnEquals, fnNot, fnAnd, fnOr:
		return nil, evalErrorf(path, "%s may only be used in the Conditions section", name)
	}
	return nil, evalErrorf(path, "unknown intrinsic function %s", name)
}

// ref resolves Ref name. In conditions (inCondition), resources are not
// visible.
func (s *Stack) ref(name, path string, inCondition bool) (any, error) {
	if v, ok := s.params[name]; ok {
		return v, nil
	}
	switch name {
	case "AWS::AccountId":
		return s.env.AccountID, nil
	case "AWS::NotificationARNs":
		out := make([]any, len(s.env.NotificationARNs))
		for i, a := range s.env.NotificationARNs {
			out[i] = a
		}
		return out, nil
	case "AWS::NoValue":
		return noValue, nil
	case "AWS::Partition":
		return s.env.Partition, nil
	case "AWS::Region":
		return s.env.Region, nil
	case "AWS::StackId":
		return s.env.StackID, nil
	case "AWS::StackName":
		return s.env.StackName, nil
	case "AWS::URLSuffix":
		return s.env.URLSuffix, nil
	}
	if _, ok := s.t.Resources[name]; ok && !inCondition {
		if !s.active[name] {
			return nil, evalErrorf(path, "Ref %s: the resource is not part of the stack (its condition is false)", name)
		}
		id, ok := s.env.PhysicalIDs[name]
		if !ok {
			return nil, evalErrorf(path, "Ref %s: the resource has no physical ID yet", name)
		}
		return id, nil
	}
	if _, ok := s.t.Parameters[name]; ok {
		// Only while parameters are being set, which never refer to
		// each other.
		return nil, evalErrorf(path, "Ref %s: the parameter has no value yet", name)
	}
	if inCondition {
		return nil, evalErrorf(path, "Ref %s: conditions may refer to parameters and pseudo-parameters only", name)
	}
	return nil, evalErrorf(path, "Ref %s: no parameter or resource of that name", name)
}

func (s *Stack) getAtt(res, attr, path string) (any, error) {
	if _, ok := s.t.Resources[res]; !ok {
		return nil, evalErrorf(path, "Fn::GetAtt %s.%s: no resource %s", res, attr, res)
	}
	if !s.active[res] {
		return nil, evalErrorf(path, "Fn::GetAtt %s.%s: the resource is not part of the stack (its condition is false)", res, attr)
	}
	if s.env.Attribute == nil {
		return nil, evalErrorf(path, "Fn::GetAtt %s.%s: no attributes are known", res, attr)
	}
	v, err := s.env.Attribute(res, attr)
	if err != nil {
		return nil, evalErrorf(path, "Fn::GetAtt %s.%s: %v", res, attr, err)
	}
	return v, nil
}

func (s *Stack) sub(arg any, path string) (any, error) {
	str, vars, err := subArgs(arg)
	if err != nil {
		return nil, evalErrorf(path, "%v", err)
	}
	local := make(map[string]any, len(vars))
	for _, k := range sortedKeys(vars) {
		v, err := s.resolve(vars[k], joinPath(indexPath(path, 1), k))
		if err != nil {
			return nil, err
		}
		local[k] = v
	}
	var b strings.Builder
	for _, p := range parseSub(str) {
		if !p.variable {
			b.WriteString(p.text)
			continue
		}
		v, ok := local[p.text]
		if !ok {
			res, attr, dotted := strings.Cut(p.text, ".")
			if _, isRes := s.t.Resources[res]; dotted && isRes {
				v, err = s.getAtt(res, attr, path)
			} else {
				v, err = s.ref(p.text, path, false)
			}
			if err != nil {
				return nil, err
			}
		}
		text, err := scalarString(v)
		if err != nil {
			return nil, evalErrorf(path, "Fn::Sub ${%s}: %v", p.text, err)
		}
		b.WriteString(text)
	}
	return b.String(), nil
}

func (s *Stack) findInMap(arg any, path string) (any, error) {
	a, err := args(arg, 3, fnFindInMap, path)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 3)
	for i := range keys {
		if keys[i], err = s.resolveString(a[i], indexPath(path, i)); err != nil {
			return nil, err
		}
	}
	m, ok := s.t.Mappings[keys[0]]
	if !ok {
		return nil, evalErrorf(path, "Fn::FindInMap: no mapping %s", keys[0])
	}
	top, ok := m[keys[1]]
	if !ok {
		return nil, evalErrorf(path, "Fn::FindInMap: mapping %s has no key %s", keys[0], keys[1])
	}
	v, ok := top[keys[2]]
	if !ok {
		return nil, evalErrorf(path, "Fn::FindInMap: mapping %s.%s has no key %s", keys[0], keys[1], keys[2])
	}
	return s.resolve(v, path)
}

// cidr implements Fn::Cidr [ipBlock, count, cidrBits]: the first count
// subnets of ipBlock with cidrBits host bits each.
func (s *Stack) cidr(arg any, path string) (any, error) {
	a, err := args(arg, 3, fnCidr, path)
	if err != nil {
		return nil, err
	}
	block, err := s.resolveString(a[0], indexPath(path, 0))
	if err != nil {
		return nil, err
	}
	countS, err := s.resolveString(a[1], indexPath(path, 1))
	if err != nil {
		return nil, err
	}
	bitsS, err := s.resolveString(a[2], indexPath(path, 2))
	if err != nil {
		return nil, err
	}
	return cidrSubnets(block, countS, bitsS, path)
}

func cidrSubnets(block, countS, bitsS, path string) ([]any, error) {
	prefix, err := netip.ParsePrefix(block)
	if err != nil {
		return nil, evalErrorf(path, "Fn::Cidr: %v", err)
	}
	prefix = prefix.Masked()
	count, err1 := strconv.Atoi(countS)
	hostBits, err2 := strconv.Atoi(bitsS)
	if err1 != nil || err2 != nil {
		return nil, evalErrorf(path, "Fn::Cidr: count and cidrBits must be integers")
	}
	total := prefix.Addr().BitLen()
	newLen := total - hostBits
	if count < 1 || count > 256 || hostBits < 0 || newLen < prefix.Bits() || newLen-prefix.Bits() < 63 && count > 1<<(newLen-prefix.Bits()) {
		return nil, evalErrorf(path, "Fn::Cidr: %s has no room for %d subnets of /%d", block, count, newLen)
	}
	base := new(big.Int).SetBytes(prefix.Addr().AsSlice())
	step := new(big.Int).Lsh(big.NewInt(1), uint(hostBits))
	out := make([]any, count)
	for i := range count {
		n := new(big.Int).Add(base, new(big.Int).Mul(step, big.NewInt(int64(i))))
		b := make([]byte, total/8)
		n.FillBytes(b)
		addr, _ := netip.AddrFromSlice(b)
		out[i] = netip.PrefixFrom(addr, newLen).String()
	}
	return out, nil
}

// condition decides the named condition; visiting detects circles.
func (s *Stack) condition(name string, visiting map[string]bool) (bool, error) {
	if v, ok := s.conds[name]; ok {
		return v, nil
	}
	expr, ok := s.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition named %s", name)
	}
	if visiting == nil {
		visiting = map[string]bool{}
	}
	if visiting[name] {
		return false, fmt.Errorf("condition %s refers to itself", name)
	}
	visiting[name] = true
	v, err := s.conditionExpr(expr, "Conditions."+name, visiting)
	delete(visiting, name)
	if err != nil {
		return false, err
	}
	s.conds[name] = v
	return v, nil
}

func (s *Stack) conditionExpr(expr any, path string, visiting map[string]bool) (bool, error) {
	name, arg, ok := conditionCall(expr)
	if !ok {
		return false, evalErrorf(path, "a condition must be Fn::Equals, Fn::And, Fn::Or, Fn::Not or Condition, not %s", kindOf(expr))
	}
	path = joinPath(path, name)
	switch name {
	case fnCondition:
		c, ok := arg.(string)
		if !ok {
			return false, evalErrorf(path, "Condition takes a condition's name")
		}
		if _, ok := s.t.Conditions[c]; !ok {
			return false, evalErrorf(path, "no condition named %s", c)
		}
		return s.condition(c, visiting)
	case fnEquals:
		a, err := args(arg, 2, name, path)
		if err != nil {
			return false, err
		}
		var vals [2]any
		for i := range a {
			v, err := s.conditionValue(a[i], indexPath(path, i))
			if err != nil {
				return false, err
			}
			vals[i] = v
		}
		return reflect.DeepEqual(vals[0], vals[1]), nil
	case fnNot:
		a, err := args(arg, 1, name, path)
		if err != nil {
			return false, err
		}
		v, err := s.conditionExpr(a[0], indexPath(path, 0), visiting)
		return !v, err
	case fnAnd, fnOr:
		list, ok := arg.([]any)
		if !ok || len(list) < 2 || len(list) > 10 {
			return false, evalErrorf(path, "%s takes a list of 2 to 10 conditions", name)
		}
		result := name == fnAnd
		for i, e := range list {
			v, err := s.conditionExpr(e, indexPath(path, i), visiting)
			if err != nil {
				return false, err
			}
			if name == fnAnd {
				result = result && v
			} else {
				result = result || v
			}
		}
		return result, nil
	}
	return false, evalErrorf(path, "%s cannot decide a condition", name)
}

// conditionValue resolves an argument of Fn::Equals to a comparable
// value: scalars as strings, lists of them.
func (s *Stack) conditionValue(v any, path string) (any, error) {
	switch v := v.(type) {
	case map[string]any:
		if name, arg, ok := call(v); ok {
			path = joinPath(path, name)
			if name == fnRef {
				ref, ok := arg.(string)
				if !ok {
					return nil, evalErrorf(path, "Ref takes a name")
				}
				r, err := s.ref(ref, path, true)
				if err != nil {
					return nil, err
				}
				return s.conditionValue(r, path)
			}
			r, err := s.function(name, arg, path)
			if err != nil {
				return nil, err
			}
			return s.conditionValue(r, path)
		}
		return nil, evalErrorf(path, "Fn::Equals compares values, not a mapping")
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			r, err := s.conditionValue(e, indexPath(path, i))
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	str, err := scalarString(v)
	if err != nil {
		return nil, evalErrorf(path, "%v", err)
	}
	return str, nil
}
