package cfn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A Template is a parsed CloudFormation template. Values inside it
// (parameter defaults, conditions, mapping entries, resource properties,
// output values) are plain Go values: map[string]any, []any, string, int,
// float64, bool and nil, with every short-form tag rewritten to its long
// form ({"Ref": name}, {"Fn::GetAtt": [resource, attribute]}, …).
//
// A Template is immutable after Parse and safe for concurrent use.
type Template struct {
	// Name is the file name given to Parse, used in messages.
	Name string

	FormatVersion string // AWSTemplateFormatVersion
	Description   string
	// Transform holds the Transform section: a string, a list of strings,
	// or nil when absent.
	Transform any

	Parameters map[string]*Parameter
	// Conditions maps each condition's name to its expression.
	Conditions map[string]any
	// Mappings maps a mapping's name to its top-level keys, each to its
	// second-level keys and their values.
	Mappings  map[string]map[string]map[string]any
	Resources map[string]*Resource
	Outputs   map[string]*Output

	order []string       // resource logical IDs in document order
	lines map[string]int // line of each path (see Line)
	// problems found while parsing that do not stop it (unknown keys,
	// misplaced values); Check reports them.
	problems []Problem
}

// A Parameter is one entry of the Parameters section.
type Parameter struct {
	Name string
	Type string
	// Default is nil when the parameter has no default.
	Default        *string
	AllowedValues  []string
	AllowedPattern string
	MinLength      *int
	MaxLength      *int
	MinValue       *float64
	MaxValue       *float64
	NoEcho         bool
	Description    string
	Line           int
}

// A Resource is one entry of the Resources section.
type Resource struct {
	LogicalID string
	Type      string
	// Properties is nil when the resource has none.
	Properties          map[string]any
	DependsOn           []string
	Condition           string
	DeletionPolicy      string
	UpdateReplacePolicy string
	UpdatePolicy        any // as written, nil when absent
	CreationPolicy      any // as written, nil when absent
	Metadata            any // as written, nil when absent
	Line                int
}

// An Output is one entry of the Outputs section.
type Output struct {
	Name        string
	Value       any
	Description string
	// ExportName is the value of Export.Name, nil when not exported.
	ExportName any
	Condition  string
	Line       int
}

// ParseError is the error Parse returns: the template is not YAML or JSON,
// or not shaped as a CloudFormation template.
type ParseError struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Line returns the line of the YAML node at path, or of its closest
// ancestor that has one, and 0 if none has. Paths name keys from the
// template's root, joined by dots, with list indices in brackets:
// "Resources.Task.Properties.ContainerDefinitions[0].Image". A short-form
// tag counts as the key of its long form: the !Ref of that Image is at
// "Resources.Task.Properties.ContainerDefinitions[0].Image.Ref".
func (t *Template) Line(path string) int {
	for path != "" {
		if l, ok := t.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		// Don't split "Fn::GetAtt" or "AWS::Region" at their colons;
		// only dots and brackets separate segments.
		path = path[:i]
	}
	return 0
}

// ResourceIDs returns the logical IDs of the resources in the order the
// template declares them.
func (t *Template) ResourceIDs() []string {
	return append([]string(nil), t.order...)
}

// shortTags maps each short-form tag to the key of its long form.
var shortTags = map[string]string{
	"!Ref":         "Ref",
	"!Condition":   "Condition",
	"!GetAtt":      "Fn::GetAtt",
	"!Sub":         "Fn::Sub",
	"!Join":        "Fn::Join",
	"!Select":      "Fn::Select",
	"!Split":       "Fn::Split",
	"!GetAZs":      "Fn::GetAZs",
	"!If":          "Fn::If",
	"!Equals":      "Fn::Equals",
	"!Not":         "Fn::Not",
	"!And":         "Fn::And",
	"!Or":          "Fn::Or",
	"!FindInMap":   "Fn::FindInMap",
	"!Base64":      "Fn::Base64",
	"!Cidr":        "Fn::Cidr",
	"!ImportValue": "Fn::ImportValue",
}

// Parse parses a CloudFormation template in YAML or JSON. name is used in
// messages (the file name). Errors are *ParseError with the line.
func Parse(name string, data []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlError(err)
		return nil, &ParseError{File: name, Line: line, Msg: msg}
	}
	d := &decoder{file: name, lines: make(map[string]int)}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &ParseError{File: name, Msg: "empty template"}
	}
	root, err := d.value(doc.Content[0], "")
	if err != nil {
		return nil, err
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, d.errorf(doc.Content[0], "a template is a mapping of sections, not %s", kindOf(root))
	}
	t := &Template{
		Name:       name,
		Parameters: map[string]*Parameter{},
		Conditions: map[string]any{},
		Mappings:   map[string]map[string]map[string]any{},
		Resources:  map[string]*Resource{},
		Outputs:    map[string]*Output{},
		lines:      d.lines,
	}
	p := &templateParser{t: t, d: d}
	if err := p.sections(top, doc.Content[0]); err != nil {
		return nil, err
	}
	return t, nil
}

// yamlError splits a yaml.v3 error ("yaml: line 3: …") into its line
// and message.
func yamlError(err error) (int, string) {
	msg := err.Error()
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	rest, ok := strings.CutPrefix(msg, "line ")
	if !ok {
		return 0, msg
	}
	n, text, ok := strings.Cut(rest, ": ")
	l, err := strconv.Atoi(n)
	if !ok || err != nil {
		return 0, msg
	}
	return l, text
}

// decoder turns yaml.v3 nodes into plain values, recording lines.
type decoder struct {
	file  string
	lines map[string]int
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) error {
	return &ParseError{File: d.file, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// value decodes n, found at path.
func (d *decoder) value(n *yaml.Node, path string) (any, error) {
	if n.Kind == yaml.AliasNode {
		return nil, d.errorf(n, "YAML aliases are not supported by CloudFormation")
	}
	if n.Anchor != "" {
		return nil, d.errorf(n, "YAML anchors are not supported by CloudFormation (&%s)", n.Anchor)
	}
	tag := n.ShortTag()
	if strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		return d.shortForm(n, tag, path)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return d.value(n.Content[0], path)
	case yaml.MappingNode:
		return d.mapping(n, path)
	case yaml.SequenceNode:
		list := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			p := indexPath(path, i)
			d.lines[p] = c.Line
			v, err := d.value(c, p)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		return list, nil
	case yaml.ScalarNode:
		return d.scalar(n, tag)
	}
	return nil, d.errorf(n, "unexpected YAML node")
}

func (d *decoder) mapping(n *yaml.Node, path string) (map[string]any, error) {
	m := make(map[string]any, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			return nil, d.errorf(k, "a mapping key must be a plain string")
		}
		if k.ShortTag() == "!!merge" {
			return nil, d.errorf(k, "YAML merge keys (<<) are not supported by CloudFormation")
		}
		if _, dup := m[k.Value]; dup {
			return nil, d.errorf(k, "duplicate key %q", k.Value)
		}
		p := joinPath(path, k.Value)
		d.lines[p] = k.Line
		val, err := d.value(v, p)
		if err != nil {
			return nil, err
		}
		m[k.Value] = val
	}
	return m, nil
}

func (d *decoder) scalar(n *yaml.Node, tag string) (any, error) {
	switch tag {
	case "!!str", "!!timestamp":
		// CloudFormation has no timestamps: an unquoted 2012-10-17 is
		// the string IAM expects.
		return n.Value, nil
	case "!!null":
		return nil, nil
	case "!!int", "!!float", "!!bool":
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, d.errorf(n, "%v", err)
		}
		return v, nil
	}
	return nil, d.errorf(n, "the YAML tag %s is not supported by CloudFormation", tag)
}

// shortForm rewrites a short-form tag to its long form, recording the
// line of the function at path.Fn.
func (d *decoder) shortForm(n *yaml.Node, tag, path string) (any, error) {
	fn, ok := shortTags[tag]
	if !ok {
		return nil, d.errorf(n, "unknown tag %s: not a CloudFormation intrinsic function", tag)
	}
	p := joinPath(path, fn)
	d.lines[p] = n.Line
	var arg any
	switch n.Kind {
	case yaml.ScalarNode:
		// The argument of a tagged scalar is its text: !Ref 123 names
		// "123", !GetAZs '' is the empty string.
		arg = n.Value
		if fn == "Fn::GetAtt" {
			res, attr, ok := strings.Cut(n.Value, ".")
			if !ok || res == "" || attr == "" {
				return nil, d.errorf(n, "!GetAtt %q: want Resource.Attribute", n.Value)
			}
			arg = []any{res, attr}
		}
	default:
		c := *n
		c.Tag = ""
		var err error
		if arg, err = d.value(&c, p); err != nil {
			return nil, err
		}
	}
	return map[string]any{fn: arg}, nil
}

// kindOf names the YAML kind of v for messages.
func kindOf(v any) string {
	switch v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case noValueType:
		return "AWS::NoValue"
	default:
		return "a number"
	}
}

// templateParser fills a Template from the decoded sections.
type templateParser struct {
	t *Template
	d *decoder
}

// problem records a fault that does not stop parsing; Check reports it.
func (p *templateParser) problem(path string, code Code, format string, args ...any) {
	p.t.problems = append(p.t.problems, Problem{
		File: p.t.Name, Line: p.t.Line(path), Path: path, Code: code,
		Message: fmt.Sprintf(format, args...),
	})
}

// fail returns a ParseError at path's line.
func (p *templateParser) fail(path string, format string, args ...any) error {
	return &ParseError{File: p.t.Name, Line: p.t.Line(path), Msg: path + ": " + fmt.Sprintf(format, args...)}
}

var sectionNames = []string{
	"AWSTemplateFormatVersion", "Description", "Metadata", "Parameters", "Rules",
	"Mappings", "Conditions", "Transform", "Resources", "Outputs",
}

func (p *templateParser) sections(top map[string]any, root *yaml.Node) error {
	for _, k := range sortedKeys(top) {
		if !contains(sectionNames, k) {
			p.problem(k, CodeUnknownKey, "unknown template section %q%s", k, suggest(k, sectionNames))
		}
	}
	if v, ok := top["AWSTemplateFormatVersion"]; ok {
		s, ok := v.(string)
		if !ok || s != "2010-09-09" {
			p.problem("AWSTemplateFormatVersion", CodeBadValue, "AWSTemplateFormatVersion must be \"2010-09-09\"")
		}
		p.t.FormatVersion = s
	}
	if v, ok := top["Description"]; ok {
		s, ok := v.(string)
		if !ok {
			p.problem("Description", CodeBadValue, "Description must be a string")
		}
		p.t.Description = s
	}
	p.t.Transform = top["Transform"]
	if _, ok := top["Resources"]; !ok {
		return &ParseError{File: p.t.Name, Line: root.Line, Msg: "the template has no Resources section"}
	}
	steps := []struct {
		name string
		fn   func(string, any) error
	}{
		{"Parameters", p.parameter},
		{"Conditions", p.condition},
		{"Mappings", p.mapping},
		{"Resources", p.resource},
		{"Outputs", p.output},
	}
	for _, s := range steps {
		v, ok := top[s.name]
		if !ok {
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return p.fail(s.name, "must be a mapping, not %s", kindOf(v))
		}
		keys := sortedKeys(m)
		if s.name == "Resources" {
			keys = p.documentOrder(s.name, keys)
		}
		for _, k := range keys {
			if err := s.fn(k, m[k]); err != nil {
				return err
			}
		}
	}
	return nil
}

// documentOrder sorts the keys of the section at path by their lines.
func (p *templateParser) documentOrder(path string, keys []string) []string {
	out := append([]string(nil), keys...)
	line := func(k string) int { return p.t.lines[joinPath(path, k)] }
	sortStable(out, func(a, b string) bool { return line(a) < line(b) })
	return out
}

func (p *templateParser) parameter(name string, v any) error {
	path := "Parameters." + name
	m, ok := v.(map[string]any)
	if !ok {
		return p.fail(path, "a parameter must be a mapping, not %s", kindOf(v))
	}
	par := &Parameter{Name: name, Line: p.t.Line(path)}
	known := []string{"Type", "Default", "AllowedValues", "AllowedPattern", "ConstraintDescription",
		"Description", "MaxLength", "MaxValue", "MinLength", "MinValue", "NoEcho"}
	for _, k := range sortedKeys(m) {
		if !contains(known, k) {
			p.problem(joinPath(path, k), CodeUnknownKey, "unknown parameter attribute %q%s", k, suggest(k, known))
		}
	}
	typ, ok := m["Type"].(string)
	if !ok {
		return p.fail(path, "a parameter needs a Type")
	}
	par.Type = typ
	if !validParameterType(typ) {
		p.problem(joinPath(path, "Type"), CodeBadValue, "unknown parameter type %q", typ)
	}
	if d, ok := m["Default"]; ok {
		s, err := scalarString(d)
		if err != nil {
			return p.fail(joinPath(path, "Default"), "%v (a list's default is one comma-separated string)", err)
		}
		par.Default = &s
	}
	if av, ok := m["AllowedValues"]; ok {
		list, ok := av.([]any)
		if !ok {
			return p.fail(joinPath(path, "AllowedValues"), "must be a list")
		}
		for i, e := range list {
			s, err := scalarString(e)
			if err != nil {
				return p.fail(indexPath(joinPath(path, "AllowedValues"), i), "%v", err)
			}
			par.AllowedValues = append(par.AllowedValues, s)
		}
	}
	par.AllowedPattern, _ = m["AllowedPattern"].(string)
	par.Description, _ = m["Description"].(string)
	for _, f := range []struct {
		key string
		dst **int
	}{{"MinLength", &par.MinLength}, {"MaxLength", &par.MaxLength}} {
		if v, ok := m[f.key]; ok {
			n, err := toInt(v)
			if err != nil {
				return p.fail(joinPath(path, f.key), "%v", err)
			}
			*f.dst = &n
		}
	}
	for _, f := range []struct {
		key string
		dst **float64
	}{{"MinValue", &par.MinValue}, {"MaxValue", &par.MaxValue}} {
		if v, ok := m[f.key]; ok {
			n, err := toFloat(v)
			if err != nil {
				return p.fail(joinPath(path, f.key), "%v", err)
			}
			*f.dst = &n
		}
	}
	if v, ok := m["NoEcho"]; ok {
		b, err := toBool(v)
		if err != nil {
			return p.fail(joinPath(path, "NoEcho"), "%v", err)
		}
		par.NoEcho = b
	}
	p.t.Parameters[name] = par
	return nil
}

// validParameterType reports whether typ is a CloudFormation parameter type.
func validParameterType(typ string) bool {
	switch typ {
	case "String", "Number", "List<Number>", "CommaDelimitedList":
		return true
	}
	inner := typ
	if s, ok := strings.CutPrefix(typ, "List<"); ok {
		inner, ok = strings.CutSuffix(s, ">")
		if !ok {
			return false
		}
	}
	return strings.HasPrefix(inner, "AWS::EC2::") || strings.HasPrefix(inner, "AWS::Route53::") ||
		strings.HasPrefix(inner, "AWS::SSM::Parameter::")
}

func (p *templateParser) condition(name string, v any) error {
	p.t.Conditions[name] = v
	return nil
}

func (p *templateParser) mapping(name string, v any) error {
	path := "Mappings." + name
	m, ok := v.(map[string]any)
	if !ok {
		return p.fail(path, "a mapping must be a mapping of keys, not %s", kindOf(v))
	}
	out := make(map[string]map[string]any, len(m))
	for k, second := range m {
		sm, ok := second.(map[string]any)
		if !ok {
			return p.fail(joinPath(path, k), "a mapping's top-level key must hold a mapping, not %s", kindOf(second))
		}
		out[k] = sm
	}
	p.t.Mappings[name] = out
	return nil
}

var resourceKeys = []string{"Type", "Properties", "DependsOn", "Condition", "DeletionPolicy",
	"UpdateReplacePolicy", "UpdatePolicy", "CreationPolicy", "Metadata"}

func (p *templateParser) resource(id string, v any) error {
	path := "Resources." + id
	m, ok := v.(map[string]any)
	if !ok {
		return p.fail(path, "a resource must be a mapping, not %s", kindOf(v))
	}
	r := &Resource{LogicalID: id, Line: p.t.Line(path), Metadata: m["Metadata"],
		UpdatePolicy: m["UpdatePolicy"], CreationPolicy: m["CreationPolicy"]}
	if !isAlphanumeric(id) {
		p.problem(path, CodeBadValue, "logical ID %q must be alphanumeric", id)
	}
	for _, k := range sortedKeys(m) {
		if !contains(resourceKeys, k) {
			p.problem(joinPath(path, k), CodeUnknownKey, "unknown resource attribute %q%s", k, suggest(k, resourceKeys))
		}
	}
	typ, ok := m["Type"].(string)
	if !ok {
		return p.fail(path, "a resource needs a Type string")
	}
	r.Type = typ
	if props, ok := m["Properties"]; ok && props != nil {
		pm, ok := props.(map[string]any)
		if !ok {
			return p.fail(joinPath(path, "Properties"), "must be a mapping, not %s", kindOf(props))
		}
		r.Properties = pm
	}
	switch dep := m["DependsOn"].(type) {
	case nil:
	case string:
		r.DependsOn = []string{dep}
	case []any:
		for i, e := range dep {
			s, ok := e.(string)
			if !ok {
				return p.fail(indexPath(joinPath(path, "DependsOn"), i), "DependsOn takes logical IDs, not %s", kindOf(e))
			}
			r.DependsOn = append(r.DependsOn, s)
		}
	default:
		return p.fail(joinPath(path, "DependsOn"), "DependsOn takes a logical ID or a list of them, not %s", kindOf(dep))
	}
	for _, f := range []struct {
		key     string
		dst     *string
		allowed []string
	}{
		{"Condition", &r.Condition, nil},
		{"DeletionPolicy", &r.DeletionPolicy, []string{"Delete", "Retain", "RetainExceptOnCreate", "Snapshot"}},
		{"UpdateReplacePolicy", &r.UpdateReplacePolicy, []string{"Delete", "Retain", "Snapshot"}},
	} {
		v, ok := m[f.key]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return p.fail(joinPath(path, f.key), "%s takes a string, not %s", f.key, kindOf(v))
		}
		if f.allowed != nil && !contains(f.allowed, s) {
			p.problem(joinPath(path, f.key), CodeBadValue, "%s %q is not one of %s", f.key, s, strings.Join(f.allowed, ", "))
		}
		*f.dst = s
	}
	p.t.Resources[id] = r
	p.t.order = append(p.t.order, id)
	return nil
}

func (p *templateParser) output(name string, v any) error {
	path := "Outputs." + name
	m, ok := v.(map[string]any)
	if !ok {
		return p.fail(path, "an output must be a mapping, not %s", kindOf(v))
	}
	known := []string{"Value", "Description", "Export", "Condition"}
	for _, k := range sortedKeys(m) {
		if !contains(known, k) {
			p.problem(joinPath(path, k), CodeUnknownKey, "unknown output attribute %q%s", k, suggest(k, known))
		}
	}
	o := &Output{Name: name, Line: p.t.Line(path)}
	val, ok := m["Value"]
	if !ok {
		return p.fail(path, "an output needs a Value")
	}
	o.Value = val
	o.Description, _ = m["Description"].(string)
	if c, ok := m["Condition"]; ok {
		s, ok := c.(string)
		if !ok {
			return p.fail(joinPath(path, "Condition"), "Condition takes a condition's name, not %s", kindOf(c))
		}
		o.Condition = s
	}
	if e, ok := m["Export"]; ok {
		em, ok := e.(map[string]any)
		if !ok || em["Name"] == nil || len(em) != 1 {
			return p.fail(joinPath(path, "Export"), "Export takes a mapping with one key, Name")
		}
		o.ExportName = em["Name"]
	}
	p.t.Outputs[name] = o
	return nil
}

func isAlphanumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// scalarString formats a scalar as CloudFormation passes it: numbers and
// booleans become their text.
func scalarString(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case uint64:
		return strconv.FormatUint(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	}
	return "", fmt.Errorf("want a string, not %s", kindOf(v))
}

func toInt(v any) (int, error) {
	s, err := scalarString(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("want an integer, not %q", s)
	}
	return n, nil
}

func toFloat(v any) (float64, error) {
	s, err := scalarString(v)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("want a number, not %q", s)
	}
	return n, nil
}

func toBool(v any) (bool, error) {
	s, err := scalarString(v)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(s) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("want true or false, not %q", s)
}
