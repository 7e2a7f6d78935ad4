package cfn

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"slices"
	"testing"
)

func TestConditionKeyPatterns(t *testing.T) {
	tests := []struct {
		pattern, key string
		match        bool
	}{
		{"aws:TagKeys", "aws:tagkeys", true},
		{"aws:TagKeys", "aws:TagKey", false},
		{"aws:RequestTag/${TagKey}", "aws:RequestTag/fluidity:lease", true},
		{"aws:RequestTag/${TagKey}", "aws:RequestTag/", false},
		{"aws:RequestTag/${TagKey}", "aws:RequestTags/x", false},
		{"events:Metadata/${MetadataKey}/Matcher", "events:Metadata/k/Matcher", true},
		{"events:Metadata/${MetadataKey}/Matcher", "events:Metadata/k/Other", false},
	}
	for _, tt := range tests {
		if got := newKeyPattern(tt.pattern).match(tt.key); got != tt.match {
			t.Errorf("%s matches %s: %v, want %v", tt.pattern, tt.key, got, tt.match)
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		match      bool
	}{
		{"get*", "getparameter", true},
		{"get*", "get", true},
		{"*parameter", "getparameter", true},
		{"get?arameter", "getparameter", true},
		{"get?", "get", false},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b", "xxaxxbxxc", false},
		{"describe*", "listtasks", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.match {
			t.Errorf("wildcardMatch(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.match)
		}
	}
}

func TestTypeExpressions(t *testing.T) {
	for _, s := range []string{"string", "list<tag>", "map<string>", "json|string", "list<Port>", "Port|list<map<integer>>"} {
		e, err := parseTypeExpr(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if e.String() != s {
			t.Errorf("%s reads back as %s", s, e)
		}
	}
	for _, s := range []string{"", "list<string", "list<a b>", "map<>"} {
		if _, err := parseTypeExpr(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
	if _, err := ParseSpec([]byte(`{"resourceTypes": {"A::B::C": {"properties": {"P": "Missing"}}}}`)); err == nil {
		t.Error("a spec naming a property type it lacks loaded")
	}
	if _, err := ParseSpec([]byte(`{"resourceTypes": {"A::B::C": {"properties": {"P": "string"}, "required": ["Q"]}}}`)); err == nil {
		t.Error("a spec requiring a property it lacks loaded")
	}
}

// tgz builds an npm-like tarball from files.
func tgz(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGenerateSpec runs the generator offline on small packages shaped
// like the real ones.
func TestGenerateSpec(t *testing.T) {
	db := `{"idCtr": 9, "schema": {
	  "resource": {"type": "entity", "entities": [
	    {"$id": "1", "cloudFormationType": "AWS::Demo::Thing", "name": "Thing",
	     "attributes": {"Arn": {"type": {"type": "string"}}, "Endpoint.Address": {"type": {"type": "string"}}},
	     "properties": {
	       "Name": {"type": {"type": "string"}, "required": true},
	       "Ports": {"type": {"type": "array", "element": {"type": "ref", "reference": {"$ref": "3"}}}},
	       "Policy": {"type": {"type": "union", "types": [{"type": "json"}, {"type": "string"}]}, "previousTypes": [{"type": "json"}]},
	       "Config": {"type": {"type": "ref", "reference": {"$ref": "4"}}, "previousTypes": [{"type": "json"}]},
	       "Tags": {"type": {"type": "array", "element": {"type": "tag"}}}}},
	    {"$id": "2", "cloudFormationType": "AWS::Demo::Other", "name": "Other", "attributes": {}, "properties": {}}]},
	  "typeDefinition": {"type": "entity", "entities": [
	    {"$id": "3", "name": "Port", "properties": {"Number": {"type": {"type": "integer"}, "required": true}}},
	    {"$id": "4", "name": "Config", "properties": {"Ports": {"type": {"type": "map", "element": {"type": "ref", "reference": {"$ref": "3"}}}}}},
	    {"$id": "5", "name": "Unused", "properties": {}}]},
	  "usesType": {"type": "rel", "forward": {"1": [{"$id": "3"}, {"$id": "4"}, {"$id": "5"}]}}}}`
	specTgz := tgz(t, map[string][]byte{"package/db.json.gz": gz(t, []byte(db)), "package/README.md": []byte("x")})
	iamTgz := tgz(t, map[string][]byte{
		"package/data/actions/demo.json":       []byte(`{"runthing": {"name": "RunThing"}, "listthings": {"name": "ListThings"}}`),
		"package/data/conditionKeys/demo.json": []byte(`{"demo:resourcetag/${tagkey}": {"key": "demo:ResourceTag/${TagKey}"}, "demo:object/<key>": {"key": "demo:Object/<key>"}}`),
		"package/data/services.json":           []byte(`["demo", "other"]`),
		"package/dist/cjs/globalConditionKeys.js": []byte("exports.globalConditionKeys = [\n" + func() string {
			s := ""
			for _, k := range []string{"aws:SourceArn", "aws:PrincipalTag/tag-key", "aws:TagKeys", "ec2:SourceInstanceArn"} {
				s += "    {\n        key: '" + k + "',\n        category: 'x',\n    },\n"
			}
			for i := range 20 {
				s += "    {\n        key: 'aws:Filler" + string(rune('A'+i)) + "',\n    },\n"
			}
			return s
		}() + "];\n"),
	})
	cfg := genConfig{ResourceTypes: []string{"AWS::Demo::Thing"}, Services: []string{"demo"}}
	sources := []Source{{Package: "spec", Version: "1"}, {Package: "iam", Version: "2"}}
	data, err := generateSpec(cfg, specTgz, iamTgz, sources)
	if err != nil {
		t.Fatal(err)
	}
	var f specFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	thing := f.ResourceTypes["AWS::Demo::Thing"]
	wantProps := map[string]string{
		"Name": "string", "Ports": "list<Port>", "Policy": "json|string", "Config": "Config", "Tags": "list<tag>",
	}
	if !mapsEqual(thing.Properties, wantProps) {
		t.Errorf("properties %v, want %v", thing.Properties, wantProps)
	}
	if !slices.Equal(thing.Required, []string{"Name"}) || !slices.Equal(thing.Attributes, []string{"Arn", "Endpoint.Address"}) {
		t.Errorf("required %v, attributes %v", thing.Required, thing.Attributes)
	}
	if len(thing.Types) != 2 || thing.Types["Config"].Properties["Ports"] != "map<Port>" || !slices.Equal(thing.Types["Port"].Required, []string{"Number"}) {
		t.Errorf("types %+v: want Port and Config, not the unused type", thing.Types)
	}
	if !slices.Equal(f.OtherResourceTypes, []string{"AWS::Demo::Other"}) {
		t.Errorf("other types %v", f.OtherResourceTypes)
	}
	demo := f.IAM.Services["demo"]
	if !slices.Equal(demo.Actions, []string{"ListThings", "RunThing"}) ||
		!slices.Equal(demo.ConditionKeys, []string{"demo:Object/${Key}", "demo:ResourceTag/${TagKey}"}) {
		t.Errorf("demo: %+v", demo)
	}
	if !slices.Equal(f.IAM.OtherServices, []string{"other"}) {
		t.Errorf("other services %v", f.IAM.OtherServices)
	}
	if !slices.Contains(f.IAM.GlobalConditionKeys, "aws:PrincipalTag/${TagKey}") || slices.Contains(f.IAM.GlobalConditionKeys, "ec2:SourceInstanceArn") {
		t.Errorf("global keys %v", f.IAM.GlobalConditionKeys)
	}
	if !slices.Equal(f.Sources, sources) {
		t.Errorf("sources %v", f.Sources)
	}

	// What it wrote loads and checks a template.
	spec, err := ParseSpec(data)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := mustParse(t, `
Resources:
  T:
    Type: AWS::Demo::Thing
    Properties:
      Name: x
      Ports: [{Number: 1}, {Numbr: 2}]
      Config: {Ports: {a: {Number: "x"}}}
`)
	var got []string
	for _, p := range Check(tmpl, spec) {
		got = append(got, p.Path+" "+string(p.Code))
	}
	want := []string{
		"Resources.T.Properties.Ports[1] MissingProperty",
		"Resources.T.Properties.Ports[1].Numbr UnknownProperty",
		"Resources.T.Properties.Config.Ports.a.Number BadValue",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}

	if _, err := generateSpec(genConfig{ResourceTypes: []string{"AWS::Demo::Missing"}}, specTgz, iamTgz, nil); err == nil {
		t.Error("a configured type missing from the package did not fail")
	}
	if _, err := generateSpec(genConfig{ResourceTypes: []string{"AWS::Demo::Thing"}, Services: []string{"nope"}}, specTgz, iamTgz, nil); err == nil {
		t.Error("a configured service missing from the package did not fail")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
