package cfn

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// A Spec is what Check knows of AWS: CloudFormation resource types with
// their properties and attributes, and the IAM actions and condition keys
// of some services. VendoredSpec returns the one this package ships.
//
// The data of a Spec is immutable; each call of VendoredSpec returns a new
// Spec sharing it, whose options (WildcardActions) the caller may set.
type Spec struct {
	// Sources names the packages the data was taken from.
	Sources []Source

	// WildcardActions lists the IAM actions with a wildcard that Check
	// accepts in policies, as written there ("logs:Put*"); "*" accepts
	// the bare "*". Any other wildcard is a problem. Each must still
	// match at least one action of the spec.
	WildcardActions []string

	data *specData
}

// A Source is an npm package the vendored data comes from.
type Source struct {
	Package   string `json:"package"`
	Version   string `json:"version"`
	Integrity string `json:"integrity,omitempty"` // npm's sha512 of the tarball
}

//go:embed spec.json
var vendoredSpecJSON []byte

var vendoredSpec = sync.OnceValues(func() (*Spec, error) { return ParseSpec(vendoredSpecJSON) })

// VendoredSpec returns the spec vendored in this package (spec.json):
// the resource types of the Fluidity stacks and the IAM data of the
// services they use. See the package documentation to extend it.
func VendoredSpec() *Spec {
	s, err := vendoredSpec()
	if err != nil {
		panic("cfn: the vendored spec.json does not load: " + err.Error())
	}
	c := *s
	c.Sources = append([]Source(nil), s.Sources...)
	return &c
}

// specFile is the JSON form of a Spec (spec.json).
type specFile struct {
	Comment string   `json:"comment"`
	Sources []Source `json:"sources"`
	// ResourceTypes holds the resource types the templates may use.
	ResourceTypes map[string]*resourceTypeFile `json:"resourceTypes"`
	// OtherResourceTypes names every other resource type, so that a
	// type missing from ResourceTypes reads as such rather than as a typo.
	OtherResourceTypes []string `json:"otherResourceTypes"`
	IAM                iamFile  `json:"iam"`
}

// resourceTypeFile is a resource type: property names with their type
// expressions, required properties, attributes, and the named property
// types its properties use.
//
// A type expression is one of string, integer, number, boolean, json (any
// value), tag ({Key, Value}), date-time, list<T>, map<T> (string keys), T|U
// (either), or the name of a property type of the resource.
type resourceTypeFile struct {
	Properties map[string]string            `json:"properties"`
	Required   []string                     `json:"required,omitempty"`
	Attributes []string                     `json:"attributes,omitempty"`
	Types      map[string]*propertyTypeFile `json:"types,omitempty"`
}

type propertyTypeFile struct {
	Properties map[string]string `json:"properties"`
	Required   []string          `json:"required,omitempty"`
}

// iamFile holds the service authorization reference of some services.
// Condition keys are written as AWS writes them, variables as ${Name}:
// "ecs:ResourceTag/${TagKey}".
type iamFile struct {
	GlobalConditionKeys []string                   `json:"globalConditionKeys"`
	Services            map[string]*iamServiceFile `json:"services"`
	// OtherServices names the prefixes of every other service, so that
	// a service missing from Services reads as such rather than as a
	// typo.
	OtherServices []string `json:"otherServices"`
}

type iamServiceFile struct {
	Actions       []string `json:"actions"`
	ConditionKeys []string `json:"conditionKeys"`
}

// specData is the parsed, indexed form of a specFile.
type specData struct {
	resources map[string]*resourceSpec
	others    map[string]bool
	allTypes  []string
	services  map[string]*serviceSpec // by lower-case prefix
	otherSvcs map[string]bool
	global    []keyPattern
}

type resourceSpec struct {
	name  string
	props *structSpec
	attrs []string
	types map[string]*structSpec
}

type structSpec struct {
	name     string // "" for a resource's top level
	props    map[string]*typeExpr
	required []string
}

type serviceSpec struct {
	prefix  string
	actions map[string]string // lower case → as AWS writes it
	sorted  []string          // as AWS writes them
	keys    []keyPattern
}

// A keyPattern matches a condition key case-insensitively; a key with a
// variable ("ecs:ResourceTag/${TagKey}") matches any non-empty text in
// its place.
type keyPattern struct {
	name           string // as AWS writes it
	prefix, suffix string // lower case, around the variable
	variable       bool
}

func newKeyPattern(name string) keyPattern {
	lower := strings.ToLower(name)
	i := strings.Index(lower, "${")
	if i < 0 {
		return keyPattern{name: name, prefix: lower}
	}
	j := strings.IndexByte(lower[i:], '}')
	if j < 0 {
		return keyPattern{name: name, prefix: lower}
	}
	return keyPattern{name: name, prefix: lower[:i], suffix: lower[i+j+1:], variable: true}
}

func (p keyPattern) match(key string) bool {
	k := strings.ToLower(key)
	if !p.variable {
		return k == p.prefix
	}
	return len(k) > len(p.prefix)+len(p.suffix) && strings.HasPrefix(k, p.prefix) && strings.HasSuffix(k, p.suffix)
}

// ParseSpec parses a spec in the JSON form of spec.json.
func ParseSpec(data []byte) (*Spec, error) {
	var f specFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("spec: %w", err)
	}
	d := &specData{
		resources: map[string]*resourceSpec{},
		others:    map[string]bool{},
		services:  map[string]*serviceSpec{},
		otherSvcs: map[string]bool{},
	}
	for name, rf := range f.ResourceTypes {
		r := &resourceSpec{name: name, attrs: rf.Attributes, types: map[string]*structSpec{}}
		for tn, tf := range rf.Types {
			r.types[tn] = &structSpec{name: tn, required: tf.Required}
		}
		var err error
		if r.props, err = r.structOf("", rf.Properties, rf.Required); err != nil {
			return nil, fmt.Errorf("spec: %s: %w", name, err)
		}
		for tn, tf := range rf.Types {
			s, err := r.structOf(tn, tf.Properties, tf.Required)
			if err != nil {
				return nil, fmt.Errorf("spec: %s.%s: %w", name, tn, err)
			}
			r.types[tn].props = s.props
		}
		d.resources[name] = r
		d.allTypes = append(d.allTypes, name)
	}
	for _, name := range f.OtherResourceTypes {
		d.others[name] = true
		d.allTypes = append(d.allTypes, name)
	}
	sort.Strings(d.allTypes)
	for prefix, sf := range f.IAM.Services {
		s := &serviceSpec{prefix: prefix, actions: map[string]string{}, sorted: append([]string(nil), sf.Actions...)}
		sort.Strings(s.sorted)
		for _, a := range sf.Actions {
			s.actions[strings.ToLower(a)] = a
		}
		for _, k := range sf.ConditionKeys {
			s.keys = append(s.keys, newKeyPattern(k))
		}
		d.services[strings.ToLower(prefix)] = s
	}
	for _, p := range f.IAM.OtherServices {
		d.otherSvcs[strings.ToLower(p)] = true
	}
	for _, k := range f.IAM.GlobalConditionKeys {
		d.global = append(d.global, newKeyPattern(k))
	}
	return &Spec{Sources: f.Sources, data: d}, nil
}

func (r *resourceSpec) structOf(name string, props map[string]string, required []string) (*structSpec, error) {
	s := &structSpec{name: name, props: make(map[string]*typeExpr, len(props)), required: required}
	for pn, expr := range props {
		t, err := parseTypeExpr(expr)
		if err != nil {
			return nil, fmt.Errorf("property %s: %w", pn, err)
		}
		if err := t.resolve(r.types); err != nil {
			return nil, fmt.Errorf("property %s: %w", pn, err)
		}
		s.props[pn] = t
	}
	for _, req := range required {
		if _, ok := s.props[req]; !ok {
			return nil, fmt.Errorf("required property %s is not a property", req)
		}
	}
	return s, nil
}

// A typeExpr is a parsed type expression.
type typeExpr struct {
	kind string      // a primitive, "list", "map", "union" or "struct"
	elem *typeExpr   // list, map
	alts []*typeExpr // union
	name string      // struct: the property type's name
	def  *structSpec // struct, after resolve
}

var primitiveTypes = []string{"string", "integer", "number", "boolean", "json", "tag", "date-time"}

func parseTypeExpr(s string) (*typeExpr, error) {
	// A union splits at the |s outside brackets.
	depth, start := 0, 0
	var alts []string
	for i, c := range s {
		switch c {
		case '<':
			depth++
		case '>':
			depth--
		case '|':
			if depth == 0 {
				alts = append(alts, s[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("type %q: unbalanced brackets", s)
	}
	if alts != nil {
		alts = append(alts, s[start:])
		u := &typeExpr{kind: "union"}
		for _, a := range alts {
			t, err := parseTypeExpr(a)
			if err != nil {
				return nil, err
			}
			u.alts = append(u.alts, t)
		}
		return u, nil
	}
	for _, k := range []string{"list", "map"} {
		if inner, ok := strings.CutPrefix(s, k+"<"); ok {
			inner, ok = strings.CutSuffix(inner, ">")
			if !ok {
				return nil, fmt.Errorf("type %q: want %s<T>", s, k)
			}
			e, err := parseTypeExpr(inner)
			if err != nil {
				return nil, err
			}
			return &typeExpr{kind: k, elem: e}, nil
		}
	}
	if contains(primitiveTypes, s) {
		return &typeExpr{kind: s}, nil
	}
	if s == "" || strings.ContainsAny(s, "<>| ") {
		return nil, fmt.Errorf("type %q: not a type expression", s)
	}
	return &typeExpr{kind: "struct", name: s}, nil
}

func (t *typeExpr) resolve(types map[string]*structSpec) error {
	switch t.kind {
	case "struct":
		t.def = types[t.name]
		if t.def == nil {
			return fmt.Errorf("no property type %s", t.name)
		}
	case "list", "map":
		return t.elem.resolve(types)
	case "union":
		for _, a := range t.alts {
			if err := a.resolve(types); err != nil {
				return err
			}
		}
	}
	return nil
}

// String writes t back as a type expression.
func (t *typeExpr) String() string {
	switch t.kind {
	case "list", "map":
		return t.kind + "<" + t.elem.String() + ">"
	case "union":
		parts := make([]string, len(t.alts))
		for i, a := range t.alts {
			parts[i] = a.String()
		}
		return strings.Join(parts, "|")
	case "struct":
		return t.name
	}
	return t.kind
}

// HasResourceType reports whether the spec knows the properties of the
// resource type.
func (s *Spec) HasResourceType(typ string) bool {
	_, ok := s.data.resources[typ]
	return ok
}

// Action returns the action "service:Name" as the service authorization
// reference writes it, and whether it exists. Case does not matter.
func (s *Spec) Action(action string) (string, bool) {
	prefix, name, ok := strings.Cut(action, ":")
	if !ok {
		return "", false
	}
	svc := s.data.services[strings.ToLower(prefix)]
	if svc == nil {
		return "", false
	}
	a, ok := svc.actions[strings.ToLower(name)]
	if !ok {
		return "", false
	}
	return svc.prefix + ":" + a, true
}

// matchActions returns the actions of the service that pattern ("Get*",
// "Describe?ask") matches, as AWS writes them, sorted.
func (svc *serviceSpec) matchActions(pattern string) []string {
	var out []string
	for _, a := range svc.sorted {
		if wildcardMatch(strings.ToLower(pattern), strings.ToLower(a)) {
			out = append(out, a)
		}
	}
	return out
}

// wildcardMatch matches s against an IAM pattern: * any run, ? any one
// character.
func wildcardMatch(pattern, s string) bool {
	// Iterative matching with backtracking to the last star.
	p, i, star, mark := 0, 0, -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
