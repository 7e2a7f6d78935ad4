package cfn

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// parseValue parses snippet as the value of a property and returns it.
func parseValue(t *testing.T, snippet string) any {
	t.Helper()
	src := "Resources:\n  R:\n    Type: AWS::SSM::Parameter\n    Properties:\n      V: " + snippet + "\n"
	tmpl, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("parse %s: %v", snippet, err)
	}
	return tmpl.Resources["R"].Properties["V"]
}

func TestShortFormsBecomeLongForms(t *testing.T) {
	tests := []struct {
		name, yaml, long string
	}{
		{"Ref", `!Ref Param`, `{"Ref": "Param"}`},
		{"GetAtt with a dot", `!GetAtt Role.Arn`, `{"Fn::GetAtt": ["Role", "Arn"]}`},
		{"GetAtt of a nested attribute keeps the rest together", `!GetAtt Vpc.VpcEncryptionControl.State`, `{"Fn::GetAtt": ["Vpc", "VpcEncryptionControl.State"]}`},
		{"GetAtt as a list", `!GetAtt [Role, Arn]`, `{"Fn::GetAtt": ["Role", "Arn"]}`},
		{"Sub of a string", `!Sub "${AWS::StackName}-x"`, `{"Fn::Sub": "${AWS::StackName}-x"}`},
		{"Sub with variables", `!Sub ["${A}-${B}", {A: a, B: !Ref P}]`, `{"Fn::Sub": ["${A}-${B}", {"A": "a", "B": {"Ref": "P"}}]}`},
		{"Join", `!Join [",", [a, !Ref P]]`, `{"Fn::Join": [",", ["a", {"Ref": "P"}]]}`},
		{"Select of GetAZs", `!Select [0, !GetAZs ""]`, `{"Fn::Select": [0, {"Fn::GetAZs": ""}]}`},
		{"Split", `!Split [",", "a,b"]`, `{"Fn::Split": [",", "a,b"]}`},
		{"If with NoValue", `!If [C, a, !Ref AWS::NoValue]`, `{"Fn::If": ["C", "a", {"Ref": "AWS::NoValue"}]}`},
		{"Equals", `!Equals [!Ref P, x]`, `{"Fn::Equals": [{"Ref": "P"}, "x"]}`},
		{"Not of Condition", `!Not [!Condition C]`, `{"Fn::Not": [{"Condition": "C"}]}`},
		{"And and Or", `!And [!Condition A, !Or [!Condition B, !Condition C]]`, `{"Fn::And": [{"Condition": "A"}, {"Fn::Or": [{"Condition": "B"}, {"Condition": "C"}]}]}`},
		{"FindInMap", `!FindInMap [M, !Ref AWS::Region, Key]`, `{"Fn::FindInMap": ["M", {"Ref": "AWS::Region"}, "Key"]}`},
		{"Base64 of a long-form Sub", `!Base64 {"Fn::Sub": "x"}`, `{"Fn::Base64": {"Fn::Sub": "x"}}`},
		{"Cidr", `!Cidr [10.0.0.0/16, 4, 8]`, `{"Fn::Cidr": ["10.0.0.0/16", 4, 8]}`},
		{"ImportValue", `!ImportValue other-url`, `{"Fn::ImportValue": "other-url"}`},
		{"a tagged number is its text", `!Ref 123`, `{"Ref": "123"}`},
		{"an unquoted date is a string", `2012-10-17`, `"2012-10-17"`},
		{"numbers and booleans keep their types", `[1, 1.5, true, null]`, `[1, 1.5, true, null]`},
		{"long form as written", `{"Fn::GetAtt": ["Role", "Arn"]}`, `{"Fn::GetAtt": ["Role", "Arn"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseValue(t, tt.yaml)
			var want any
			if err := json.Unmarshal([]byte(tt.long), &want); err != nil {
				t.Fatal(err)
			}
			want = jsonToTemplate(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s\n got %#v\nwant %#v", tt.yaml, got, want)
			}
		})
	}
}

func TestParseJSONTemplate(t *testing.T) {
	src := "{\n\t\"AWSTemplateFormatVersion\": \"2010-09-09\",\n\t\"Resources\": {\n\t\t\"Log\": {\n\t\t\t\"Type\": \"AWS::Logs::LogGroup\",\n" +
		"\t\t\t\"Properties\": {\"RetentionInDays\": 7, \"LogGroupName\": {\"Fn::Sub\": \"${AWS::StackName}\"}}\n\t\t}\n\t},\n" +
		"\t\"Outputs\": {\"Arn\": {\"Value\": {\"Fn::GetAtt\": [\"Log\", \"Arn\"]}}}\n}\n"
	tmpl, err := Parse("t.json", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := tmpl.Resources["Log"]
	if r == nil || r.Type != "AWS::Logs::LogGroup" || r.Properties["RetentionInDays"] != 7 {
		t.Fatalf("resource Log = %+v", r)
	}
	if r.Line != 4 {
		t.Errorf("resource Log at line %d, want 4", r.Line)
	}
	if l := tmpl.Line("Resources.Log.Properties.LogGroupName.Fn::Sub"); l != 6 {
		t.Errorf("Fn::Sub at line %d, want 6", l)
	}
	if len(Check(tmpl, VendoredSpec())) != 0 {
		t.Errorf("problems in a good JSON template: %v", Check(tmpl, VendoredSpec()))
	}
}

func TestParseErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
		part      string
	}{
		{"not YAML", "Resources:\n  R:\n    Type: a: b\n", 3, "mapping values are not allowed"},
		{"an unknown tag", "Resources:\n  R:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Value: !Reff X\n", 5, "unknown tag !Reff"},
		{"an alias", "Resources:\n  R: &r\n    Type: AWS::SSM::Parameter\n  S: *r\n", 2, "anchors are not supported"},
		{"a duplicate key", "Resources:\n  R:\n    Type: AWS::SSM::Parameter\n  R:\n    Type: AWS::SSM::Parameter\n", 4, `duplicate key "R"`},
		{"a binary value", "Resources:\n  R:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Value: !!binary aGk=\n", 5, "!!binary is not supported"},
		{"GetAtt without an attribute", "Resources:\n  R:\n    Type: AWS::SSM::Parameter\n    Properties:\n      Value: !GetAtt X\n", 5, "want Resource.Attribute"},
		{"no Resources", "Parameters: {}\n", 1, "no Resources section"},
		{"a resource without a Type", "Resources:\n  R:\n    Properties: {}\n", 2, "needs a Type"},
		{"a list for a template", "- a\n", 1, "not a list"},
		{"DependsOn of a mapping", "Resources:\n  R:\n    Type: AWS::SSM::Parameter\n    DependsOn: {a: b}\n", 4, "DependsOn takes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.src))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v, want a *ParseError", err)
			}
			if pe.File != "t.yaml" || pe.Line != tt.line {
				t.Errorf("error at %s:%d, want t.yaml:%d (%v)", pe.File, pe.Line, tt.line, err)
			}
			if !strings.Contains(pe.Msg, tt.part) {
				t.Errorf("error %q does not say %q", pe.Msg, tt.part)
			}
		})
	}
}

// lineOf returns the line of the first line of testdata/name containing s.
func lineOf(t *testing.T, name, s string) int {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		if strings.Contains(sc.Text(), s) {
			return line
		}
	}
	t.Fatalf("%s has no line containing %q", name, s)
	return 0
}

func TestTemplateGivesLinesAndSections(t *testing.T) {
	tmpl := parseFile(t, "good.yaml")
	lines := []struct{ path, text string }{
		{"Resources.TaskDefinition", "  TaskDefinition:"},
		{"Resources.TaskDefinition.Properties.ContainerDefinitions[0].Image", "Image: !Ref ImageUri"},
		{"Resources.TaskDefinition.Properties.ContainerDefinitions[0].Image.Ref", "Image: !Ref ImageUri"},
		{"Resources.TaskDefinition.Properties.ContainerDefinitions[0].PortMappings[0].ContainerPort", "ContainerPort: !Ref TunnelPort"},
		{"Resources.TaskRole.Properties.Policies[0].PolicyDocument.Statement[1].Fn::If", "- !If"},
		{"Outputs.FunctionUrl.Value.Fn::GetAtt", "Value: !GetAtt ControlUrl.FunctionUrl"},
		// An unknown path falls back to its closest known ancestor.
		{"Resources.Cluster.Properties.NoSuchThing[3].X", "ClusterName: !Sub"},
	}
	for _, l := range lines {
		want := lineOf(t, "good.yaml", l.text)
		if l.path == "Resources.Cluster.Properties.NoSuchThing[3].X" {
			want--
		}
		if got := tmpl.Line(l.path); got != want {
			t.Errorf("Line(%s) = %d, want %d", l.path, got, want)
		}
	}
	if r := tmpl.Resources["TaskDefinition"]; r.Line != lineOf(t, "good.yaml", "  TaskDefinition:") {
		t.Errorf("TaskDefinition.Line = %d", r.Line)
	}

	p := tmpl.Parameters["CertStore"]
	if p.Type != "String" || *p.Default != "ssm" || !reflect.DeepEqual(p.AllowedValues, []string{"ssm", "secretsmanager"}) {
		t.Errorf("parameter CertStore = %+v", p)
	}
	if p := tmpl.Parameters["ImageUri"]; p.Default != nil {
		t.Errorf("ImageUri has a default %q", *p.Default)
	}
	if p := tmpl.Parameters["TunnelPort"]; *p.Default != "8443" || *p.MaxValue != 65535 {
		t.Errorf("parameter TunnelPort = %+v", p)
	}
	if got := tmpl.Mappings["TaskSizes"]["large"]["Memory"]; got != "2048" {
		t.Errorf("TaskSizes.large.Memory = %v", got)
	}
	if _, ok := tmpl.Conditions["LongLogs"].(map[string]any)["Fn::Or"]; !ok {
		t.Errorf("condition LongLogs = %v", tmpl.Conditions["LongLogs"])
	}
	r := tmpl.Resources["DefaultRoute"]
	if r.Type != "AWS::EC2::Route" || !reflect.DeepEqual(r.DependsOn, []string{"GatewayAttachment"}) {
		t.Errorf("DefaultRoute = %+v", r)
	}
	if r := tmpl.Resources["CertSecret"]; r.Condition != "UseSecretsManager" {
		t.Errorf("CertSecret.Condition = %q", r.Condition)
	}
	if r := tmpl.Resources["ExitLogGroup"]; r.DeletionPolicy != "Delete" {
		t.Errorf("ExitLogGroup.DeletionPolicy = %q", r.DeletionPolicy)
	}
	if r := tmpl.Resources["InternetGateway"]; r.Properties != nil {
		t.Errorf("InternetGateway.Properties = %v, want nil", r.Properties)
	}
	o := tmpl.Outputs["FunctionUrl"]
	if !reflect.DeepEqual(o.ExportName, map[string]any{"Fn::Sub": "${AWS::StackName}-url"}) || o.Description == "" {
		t.Errorf("output FunctionUrl = %+v", o)
	}
	if o := tmpl.Outputs["CertSecretArn"]; o.Condition != "UseSecretsManager" {
		t.Errorf("output CertSecretArn = %+v", o)
	}
	ids := tmpl.ResourceIDs()
	if ids[0] != "Vpc" || ids[len(ids)-1] != "AgentPolicy" || len(ids) != len(tmpl.Resources) {
		t.Errorf("ResourceIDs() = %v, want document order", ids)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"good.yaml", "bad.yaml"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"Resources": {"A": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": {"Fn::Sub": "${!x}${"}}}}}`))
	spec := VendoredSpec()
	f.Fuzz(func(t *testing.T, data []byte) {
		tmpl, err := Parse("f.yaml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			return
		}
		Check(tmpl, spec)
		tmpl.CreationOrder()
		if s, err := Evaluate(tmpl, Env{}); err == nil {
			for _, id := range s.Resources() {
				s.Properties(id)
			}
			s.Outputs()
		}
		RoleActions(tmpl, spec)
	})
}
