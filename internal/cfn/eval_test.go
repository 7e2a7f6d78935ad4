package cfn

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fakeCloud plays the part of the AWS fake: it "creates" each resource
// in turn, giving it a physical ID and attributes.
type fakeCloud struct {
	ids   map[string]string
	attrs map[string]any // "Logical.Attribute" → value
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{ids: map[string]string{}, attrs: map[string]any{}}
}

func (f *fakeCloud) env(params map[string]string) Env {
	return Env{
		Parameters:  params,
		Region:      "eu-west-1",
		AccountID:   "111122223333",
		StackName:   "fluidity",
		AZs:         []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"},
		PhysicalIDs: f.ids,
		Attribute: func(id, name string) (any, error) {
			v, ok := f.attrs[id+"."+name]
			if !ok {
				return nil, fmt.Errorf("no attribute %s of %s", name, id)
			}
			return v, nil
		},
	}
}

// create creates the stack's resources in order, as the fake will.
func (f *fakeCloud) create(t *testing.T, s *Stack) map[string]map[string]any {
	t.Helper()
	props := map[string]map[string]any{}
	for _, id := range s.Resources() {
		p, err := s.Properties(id)
		if err != nil {
			t.Fatalf("properties of %s: %v", id, err)
		}
		props[id] = p
		f.ids[id] = "phys-" + id
		arn := "arn:aws:test:eu-west-1:111122223333:" + id
		for _, a := range []string{"Arn", "GroupId", "FunctionUrl", "RoleId"} {
			f.attrs[id+"."+a] = arn + "/" + a
		}
		f.attrs[id+".CidrBlock"] = "10.42.0.0/16"
	}
	return props
}

var goodParams = map[string]string{
	"ImageUri":        "111122223333.dkr.ecr.eu-west-1.amazonaws.com/fluidity/exit@sha256:" + strings.Repeat("ab", 32),
	"CodeBucket":      "code-bucket",
	"CodeKey":         "control.zip",
	"AgentPrincipals": "arn:aws:iam::111122223333:role/laptop,arn:aws:iam::111122223333:user/phone",
}

func withParams(extra map[string]string) map[string]string {
	p := map[string]string{}
	for k, v := range goodParams {
		p[k] = v
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// get walks a resolved value by keys and indices.
func get(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %v: %v is not a mapping", p, v)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("at %v: %v is not a list that long", p, v)
			}
			v = l[k]
		}
	}
	return v
}

func TestEvaluateCreatesTheStackInOrder(t *testing.T) {
	tmpl := parseFile(t, "good.yaml")
	cloud := newFakeCloud()
	s, err := Evaluate(tmpl, cloud.env(goodParams))
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{
		"Vpc", "InternetGateway", "GatewayAttachment", "PublicSubnet", "RouteTable", "DefaultRoute",
		"SubnetRoutes", "ExitSecurityGroup", "Repository", "Cluster", "ClusterCapacity", "ExitLogGroup",
		"ControlLogGroup", "ExecutionRole", "TaskRole", "TaskDefinition", "ControlPolicy", "ControlRole",
		"ControlFunction", "ControlUrl", "SweepRole", "Sweep", "TaskStopped", "TaskStoppedPermission", "AgentPolicy",
	}
	if got := s.Resources(); !slices.Equal(got, wantOrder) {
		t.Errorf("Resources() =\n%v\nwant\n%v", got, wantOrder)
	}
	if got := s.DeletionOrder(); got[0] != "AgentPolicy" || got[len(got)-1] != "Vpc" || len(got) != len(wantOrder) {
		t.Errorf("DeletionOrder() = %v, want Resources() reversed", got)
	}
	if s.Condition("UseSecretsManager") || !s.Condition("UseSSM") || s.Condition("LongLogs") {
		t.Errorf("conditions UseSecretsManager=%v UseSSM=%v LongLogs=%v, want false true false",
			s.Condition("UseSecretsManager"), s.Condition("UseSSM"), s.Condition("LongLogs"))
	}
	if _, err := s.Properties("CertSecret"); err == nil {
		t.Error("Properties of CertSecret, whose condition is false, did not fail")
	}

	props := cloud.create(t, s)
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"a Ref of a resource is its physical ID", get(t, props["GatewayAttachment"], "VpcId"), "phys-Vpc"},
		{"Fn::Cidr of an attribute, then Fn::Select", get(t, props["PublicSubnet"], "CidrBlock"), "10.42.0.0/24"},
		{"Fn::GetAZs gives the Env's zones", get(t, props["PublicSubnet"], "AvailabilityZone"), "eu-west-1a"},
		{"Fn::Sub with a pseudo-parameter", get(t, props["Cluster"], "ClusterName"), "fluidity-exit"},
		{"Fn::FindInMap with a Ref'd key", get(t, props["TaskDefinition"], "Cpu"), "256"},
		{"Fn::GetAtt", get(t, props["TaskDefinition"], "TaskRoleArn"), "arn:aws:test:eu-west-1:111122223333:TaskRole/Arn"},
		{"a Ref of a Number parameter is a string", get(t, props["ControlLogGroup"], "RetentionInDays"), "14"},
		{"Fn::If takes the false branch", get(t, props["ExitLogGroup"], "RetentionInDays"), "14"},
		{"Fn::Sub of a parameter", get(t, props["TaskDefinition"], "ContainerDefinitions", 0, "Command", 1), "--listen=:8443"},
		{"${!Literal} is kept literally", get(t, props["TaskDefinition"], "ContainerDefinitions", 0, "Command", 2), "--note=${NotAVariable}"},
		{"Fn::If in a list picks a branch", get(t, props["TaskDefinition"], "ContainerDefinitions", 0, "Environment", 0, "Value"), "ssm:///fluidity/exit"},
		{"an Fn::If item whose condition holds stays", get(t, props["TaskDefinition"], "Tags", 1, "Value"), "ssm"},
		{"a Ref of AWS::Region", get(t, props["TaskDefinition"], "ContainerDefinitions", 0, "Environment", 1, "Value"), "eu-west-1"},
		{"Fn::Sub with its own variables", get(t, props["TaskRole"], "Policies", 0, "PolicyDocument", "Statement", 1, "Resource"),
			"arn:aws:ssm:eu-west-1:111122223333:parameter/fluidity/exit"},
		{"${Resource.Attribute} in Fn::Sub", get(t, props["ExecutionRole"], "Policies", 0, "PolicyDocument", "Statement", 2, "Resource"),
			"arn:aws:test:eu-west-1:111122223333:ExitLogGroup/Arn:log-stream:*"},
		{"AWS::URLSuffix", get(t, props["TaskRole"], "Policies", 0, "PolicyDocument", "Statement", 2, "Condition", "StringEquals", "kms:ViaService", 0),
			"ssm.eu-west-1.amazonaws.com"},
		{"Fn::Join of a list parameter", get(t, props["ControlFunction"], "Environment", "Variables", "ALLOWED"), goodParams["AgentPrincipals"]},
		{"Fn::Select of Fn::Split", get(t, props["ControlFunction"], "Environment", "Variables", "CONTAINER"), "exit"},
		{"literals keep their types", get(t, props["ControlFunction"], "ReservedConcurrentExecutions"), 2},
		{"a Ref of a managed policy in a list", get(t, props["ControlRole"], "ManagedPolicyArns", 0), "phys-ControlPolicy"},
		{"an unquoted date stays a string", get(t, props["AgentPolicy"], "PolicyDocument", "Version"), "2012-10-17"},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}

	outs, err := s.Outputs()
	if err != nil {
		t.Fatal(err)
	}
	wantOuts := []OutputValue{
		{Name: "AgentPolicyArn", Value: "phys-AgentPolicy"},
		{Name: "ClusterArn", Value: "arn:aws:test:eu-west-1:111122223333:Cluster/Arn"},
		{Name: "FunctionUrl", Value: "arn:aws:test:eu-west-1:111122223333:ControlUrl/FunctionUrl",
			Description: "The control plane's URL, for the agent's configuration", ExportName: "fluidity-url"},
		{Name: "Subnets", Value: "phys-PublicSubnet"},
	}
	if !reflect.DeepEqual(outs, wantOuts) {
		t.Errorf("Outputs() =\n%+v\nwant\n%+v", outs, wantOuts)
	}
	if got := s.Parameters(); got["TunnelPort"] != "8443" || got["CertStore"] != "ssm" || got["CodeKey"] != "control.zip" {
		t.Errorf("Parameters() = %v, want defaults and given values", got)
	}
}

func TestEvaluateFollowsConditions(t *testing.T) {
	tmpl := parseFile(t, "good.yaml")
	cloud := newFakeCloud()
	s, err := Evaluate(tmpl, cloud.env(withParams(map[string]string{"CertStore": "secretsmanager"})))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Resources(), "CertSecret") {
		t.Errorf("Resources() = %v lacks CertSecret, whose condition holds", s.Resources())
	}
	if !s.Condition("LongLogs") {
		t.Error("LongLogs (Or of And of a Condition and the region) is false")
	}
	props := cloud.create(t, s)
	if got := get(t, props["TaskDefinition"], "ContainerDefinitions", 0, "Environment", 0, "Value"); got != "secretsmanager:///fluidity/exit" {
		t.Errorf("FLUIDITY_CERTS = %v, want the true branch", got)
	}
	if tags := get(t, props["TaskDefinition"], "Tags").([]any); len(tags) != 1 || get(t, tags[0], "Key") != "app" {
		t.Errorf("Tags = %v, want one: the AWS::NoValue item dropped", tags)
	}
	if got := get(t, props["ExitLogGroup"], "RetentionInDays"); got != 30 {
		t.Errorf("RetentionInDays = %#v, want the true branch, 30", got)
	}
	if got := get(t, props["TaskRole"], "Policies", 0, "PolicyDocument", "Statement", 1, "Resource"); got != "phys-CertSecret" {
		t.Errorf("the statement of the true branch has Resource %v", got)
	}
	outs, err := s.Outputs()
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 5 || outs[1].Name != "CertSecretArn" || outs[1].Value != "phys-CertSecret" {
		t.Errorf("Outputs() = %+v, want CertSecretArn too", outs)
	}
}

func TestEvaluateNeedsWhatItRefersTo(t *testing.T) {
	tmpl := parseFile(t, "good.yaml")
	cloud := newFakeCloud()
	s, err := Evaluate(tmpl, cloud.env(goodParams))
	if err != nil {
		t.Fatal(err)
	}
	cloud.ids["InternetGateway"] = "igw-1"
	if _, err := s.Properties("GatewayAttachment"); err == nil || !strings.Contains(err.Error(), "Ref Vpc") {
		t.Errorf("properties before Vpc exists: %v, want an error naming Ref Vpc", err)
	}
	cloud.ids["Vpc"] = "vpc-1"
	p, err := s.Properties("GatewayAttachment")
	if err != nil || p["VpcId"] != "vpc-1" {
		t.Errorf("properties once Vpc exists: %v, %v", p, err)
	}
	if _, err := s.Properties("PublicSubnet"); err == nil || !strings.Contains(err.Error(), "Vpc.CidrBlock") {
		t.Errorf("properties without the attribute: %v, want an error naming Vpc.CidrBlock", err)
	}
	if _, err := s.Properties("Nothing"); err == nil {
		t.Error("Properties of no resource did not fail")
	}
}

func TestEvaluateChecksParameters(t *testing.T) {
	tmpl := parseFile(t, "good.yaml")
	without := func(name string) map[string]string {
		p := withParams(nil)
		delete(p, name)
		return p
	}
	tests := []struct {
		name   string
		params map[string]string
		part   string
	}{
		{"a parameter without default left out", without("ImageUri"), "parameter ImageUri: a value is required"},
		{"an undeclared parameter", withParams(map[string]string{"Imageuri": "x"}), "parameter Imageuri: the template declares no such parameter"},
		{"a value outside AllowedValues", withParams(map[string]string{"CertStore": "vault"}), `parameter CertStore: "vault" is not one of the allowed values`},
		{"a value not matching AllowedPattern", withParams(map[string]string{"ImageUri": "nginx:latest"}), "does not match the pattern"},
		{"a number out of bounds", withParams(map[string]string{"TunnelPort": "70000"}), "parameter TunnelPort: 70000 is out of bounds [1, 65535]"},
		{"a number that is not one", withParams(map[string]string{"TunnelPort": "https"}), `"https" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Evaluate(tmpl, Env{Parameters: tt.params})
			if err == nil || !strings.Contains(err.Error(), tt.part) {
				t.Errorf("Evaluate: %v, want an error saying %q", err, tt.part)
			}
		})
	}
}

// evalOutput evaluates expr as the value of an output of a template with
// a few parameters, a mapping and one resource R.
func evalOutput(t *testing.T, expr string, env Env) (string, error) {
	t.Helper()
	src := `
Parameters:
  Name: {Type: String, Default: fluidity}
  Zones: {Type: CommaDelimitedList, Default: "a,b,c"}
  Count: {Type: Number, Default: 3}
Mappings:
  Regions:
    eu-west-1: {Short: euw1, Zones: [x, y]}
Conditions:
  IsIreland: !Equals [!Ref "AWS::Region", eu-west-1]
  IsFluidity: !Equals [fluidity, !Ref Name]
  Both: !And [!Condition IsIreland, !Condition IsFluidity]
Resources:
  R: {Type: AWS::SSM::Parameter, Properties: {Type: String, Value: x}}
Outputs:
  O:
    Value: ` + expr + "\n"
	tmpl, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if env.PhysicalIDs == nil {
		env.PhysicalIDs = map[string]string{"R": "param-r"}
	}
	s, err := Evaluate(tmpl, env)
	if err != nil {
		return "", err
	}
	outs, err := s.Outputs()
	if err != nil {
		return "", err
	}
	return outs[0].Value, nil
}

func TestIntrinsicFunctions(t *testing.T) {
	ireland := Env{Region: "eu-west-1", AZs: []string{"eu-west-1a", "eu-west-1b"},
		ImportValue: func(name string) (any, error) {
			if name == "net-vpc" {
				return "vpc-123", nil
			}
			return nil, errors.New("not exported")
		},
		Attribute: func(id, name string) (any, error) { return []any{"l1", "l2"}, nil },
	}
	tests := []struct {
		name, expr, want string
		env              Env
	}{
		{"Ref of a pseudo-parameter", `!Ref AWS::StackName`, "stack", Env{}},
		{"default pseudo-parameters", `!Sub "${AWS::Partition} ${AWS::URLSuffix} ${AWS::AccountId} ${AWS::Region}"`, "aws amazonaws.com 123456789012 us-east-1", Env{}},
		{"partition from the region", `!Sub "${AWS::Partition} ${AWS::URLSuffix}"`, "aws-cn amazonaws.com.cn", Env{Region: "cn-north-1"}},
		{"the default StackId", `!Ref AWS::StackId`, "arn:aws:cloudformation:us-east-1:123456789012:stack/stack/00000000-0000-0000-0000-000000000000", Env{}},
		{"Join of a list parameter", `!Join ["-", !Ref Zones]`, "a-b-c", Env{}},
		{"Join drops AWS::NoValue", `!Join ["-", [a, !Ref AWS::NoValue, b]]`, "a-b", Env{}},
		{"Select with a string index", `!Select ["1", !Ref Zones]`, "b", Env{}},
		{"Split then Join", `!Join ["+", !Split [",", "x,y,z"]]`, "x+y+z", Env{}},
		{"GetAZs", `!Join [",", !GetAZs ""]`, "eu-west-1a,eu-west-1b", ireland},
		{"GetAZs of a Ref", `!Select [1, !GetAZs {Ref: "AWS::Region"}]`, "eu-west-1b", ireland},
		{"FindInMap", `!FindInMap [Regions, !Ref "AWS::Region", Short]`, "euw1", ireland},
		{"FindInMap of a list", `!Join ["", !FindInMap [Regions, eu-west-1, Zones]]`, "xy", Env{}},
		{"Base64", `!Base64 "fluidity"`, "Zmx1aWRpdHk=", Env{}},
		{"Cidr of IPv4", `!Join [" ", !Cidr ["10.0.0.0/16", 3, 8]]`, "10.0.0.0/24 10.0.1.0/24 10.0.2.0/24", Env{}},
		{"Cidr of an unaligned block", `!Select [2, !Cidr ["192.168.7.9/24", 4, 6]]`, "192.168.7.128/26", Env{}},
		{"Cidr of IPv6", `!Join [" ", !Cidr ["2001:db8::/56", 2, 64]]`, "2001:db8::/64 2001:db8:0:1::/64", Env{}},
		{"ImportValue", `!ImportValue net-vpc`, "vpc-123", ireland},
		{"If on an And of Conditions", `!If [Both, yes, no]`, "yes", ireland},
		{"If when the condition fails", `!If [Both, yes, no]`, "no", Env{}},
		{"Sub with a variable map of intrinsics", `!Sub ["${A}/${Name}/${R}", {A: !Select [0, !Ref Zones]}]`, "a/fluidity/param-r", Env{}},
		{"Sub of a list attribute", `!Join [",", !GetAtt R.List]`, "l1,l2", ireland},
		{"Sub of the Count", `!Sub "${Count}"`, "3", Env{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := evalOutput(t, tt.expr, tt.env)
			if err != nil {
				t.Fatalf("%s: %v", tt.expr, err)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}

	failures := []struct {
		name, expr, part string
		env              Env
	}{
		{"Select out of range", `!Select [5, !Ref Zones]`, "index 5 is out of range for a list of 3", Env{}},
		{"ImportValue without exports", `!ImportValue x`, "Fn::ImportValue x: no exports are known", Env{}},
		{"ImportValue of no export", `!ImportValue x`, "not exported", ireland},
		{"GetAtt without attributes", `!GetAtt R.Arn`, "Fn::GetAtt R.Arn: no attributes are known", Env{}},
		{"Sub of a list", `!Sub "${Zones}"`, "Fn::Sub ${Zones}", Env{}},
		{"an output of a list", `!Ref Zones`, "Outputs.O.Value: want a string, not a list", Env{}},
		{"Cidr too many subnets", `!Cidr ["10.0.0.0/24", 5, 7]`, "has no room for 5 subnets of /25", Env{}},
		{"a condition function in a value", `!Equals [a, a]`, "only be used in the Conditions section", Env{}},
		{"FindInMap of no key", `!FindInMap [Regions, us-east-1, Short]`, "mapping Regions has no key us-east-1", Env{}},
		{"Ref of a resource not created", `!Ref R`, "Ref R: the resource has no physical ID yet", Env{PhysicalIDs: map[string]string{}}},
	}
	for _, tt := range failures {
		t.Run(tt.name+" fails", func(t *testing.T) {
			got, err := evalOutput(t, tt.expr, tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.part) {
				t.Errorf("%s = %q, %v; want an error saying %q", tt.expr, got, err, tt.part)
			}
		})
	}
}

func TestEvaluateRefusesCircularConditions(t *testing.T) {
	src := "Conditions:\n  A: !Not [!Condition B]\n  B: !And [!Condition A, !Condition A]\nResources:\n  R: {Type: AWS::SSM::Parameter}\n"
	tmpl, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Evaluate(tmpl, Env{}); err == nil || !strings.Contains(err.Error(), "refers to itself") {
		t.Errorf("Evaluate: %v, want a circular condition error", err)
	}
	problems := Check(tmpl, nil)
	if len(problems) != 2 || problems[0].Code != CodeCycle || problems[1].Code != CodeCycle {
		t.Errorf("Check: %v, want the circle reported at A and at B", problems)
	}
}
