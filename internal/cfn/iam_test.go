package cfn

import (
	"reflect"
	"strings"
	"testing"
)

func TestRoleActionsOfTheGoodFixture(t *testing.T) {
	got, err := RoleActions(parseFile(t, "good.yaml"), VendoredSpec())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"ExecutionRole": {"ecr:BatchGetImage", "ecr:GetAuthorizationToken", "ecr:GetDownloadUrlForLayer", "logs:CreateLogStream", "logs:PutLogEvents"},
		// Both branches of the Fn::If count.
		"TaskRole": {"ecs:TagResource", "kms:Decrypt", "secretsmanager:GetSecretValue", "ssm:GetParameter"},
		// Through ManagedPolicyArns: !Ref ControlPolicy.
		"ControlRole": {"ec2:DescribeNetworkInterfaces", "ecs:DescribeTasks", "ecs:ListTasks", "ecs:RunTask", "ecs:StopTask",
			"ecs:TagResource", "iam:PassRole", "logs:CreateLogStream", "logs:PutLogEvents"},
		"SweepRole": {"lambda:InvokeFunction"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RoleActions =\n%v\nwant\n%v", got, want)
	}
}

func TestRoleActions(t *testing.T) {
	const head = `
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Principal: {Service: ecs-tasks.amazonaws.com}, Action: sts:AssumeRole}]}
`
	tests := []struct {
		name, src string
		want      []string
	}{
		{"wildcards expand to the actions they match, written as AWS writes them", head + `
      Policies:
        - PolicyName: p
          PolicyDocument:
            Version: "2012-10-17"
            Statement:
              - {Effect: Allow, Action: ["SSM:getparameter*", "ECS:runtask"], Resource: "*"}
              - {Effect: Deny, Action: ecs:StopTask, Resource: "*"}
`, []string{"ecs:RunTask", "ssm:GetParameter", "ssm:GetParameterHistory", "ssm:GetParameters", "ssm:GetParametersByPath"}},
		{"policies and managed policies under Fn::If count in both branches", head + `
      Policies:
        - !If
          - C
          - {PolicyName: a, PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: ecs:RunTask, Resource: "*"}]}}
          - !Ref AWS::NoValue
      ManagedPolicyArns: !If [C, [!Ref Managed], []]
  Managed:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: ecs:StopTask, Resource: "*"}]}
`, []string{"ecs:RunTask", "ecs:StopTask"}},
		{"an AWS::IAM::Policy names its roles", head + `
  Extra:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: extra
      Roles: [!Ref Role, someone-elses-role]
      PolicyDocument: '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "sts:GetCallerIdentity", "Resource": "*"}}'
`, []string{"sts:GetCallerIdentity"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RoleActions(mustParse(t, tt.src), VendoredSpec())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got["Role"], tt.want) {
				t.Errorf("RoleActions[Role] = %v, want %v", got["Role"], tt.want)
			}
		})
	}

	failures := []struct {
		name, src, part string
	}{
		{"an AWS managed policy", head + `
      ManagedPolicyArns: [arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy]
`, "t.yaml:8: Resources.Role.Properties.ManagedPolicyArns[0]: the managed policy arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy comes from outside the template"},
		{"NotAction in an Allow", head + `
      Policies:
        - {PolicyName: p, PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, NotAction: iam:*, Resource: "*"}]}}
`, "t.yaml:9: Resources.Role.Properties.Policies[0].PolicyDocument.Statement[0]: an Allow statement with NotAction"},
		{"the action *", head + `
      Policies:
        - {PolicyName: p, PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: "*", Resource: "*"}]}}
`, "the action * grants actions that cannot be listed"},
		{"an action made by Fn::Sub", head + `
      Policies:
        - {PolicyName: p, PolicyDocument: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: !Sub "ecs:${AWS::Region}", Resource: "*"}]}}
`, "an action made by Fn::Sub"},
	}
	for _, tt := range failures {
		t.Run(tt.name+" fails", func(t *testing.T) {
			_, err := RoleActions(mustParse(t, tt.src), VendoredSpec())
			if err == nil || !strings.Contains(err.Error(), tt.part) {
				t.Errorf("RoleActions: %v, want an error saying %q", err, tt.part)
			}
		})
	}
}

func TestCheckAllowsListedWildcards(t *testing.T) {
	tmpl := mustParse(t, `
Resources:
  Policy:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          - {Effect: Allow, Action: [ecs:Describe*, logs:Put*, ssm:Nothing*], Resource: "*"}
`)
	codes := func(spec *Spec) []Code {
		var out []Code
		for _, p := range Check(tmpl, spec) {
			out = append(out, p.Code)
		}
		return out
	}
	spec := VendoredSpec()
	if got := codes(spec); !reflect.DeepEqual(got, []Code{CodeWildcardAction, CodeWildcardAction, CodeUnknownAction}) {
		t.Errorf("without an allowlist: %v", got)
	}
	spec.WildcardActions = []string{"ecs:Describe*", "logs:put*", "ssm:Nothing*"}
	if got := codes(spec); !reflect.DeepEqual(got, []Code{CodeUnknownAction}) {
		t.Errorf("with the wildcards allowed: %v, want only the wildcard matching nothing", got)
	}
	if other := VendoredSpec(); len(other.WildcardActions) != 0 {
		t.Errorf("a second VendoredSpec shares the allowlist %v", other.WildcardActions)
	}
}

func TestCheckPolicyDocuments(t *testing.T) {
	tests := []struct {
		name, doc string
		codes     []Code
	}{
		{"a JSON string is checked too", `'{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecs:RunTasks", "Resource": "*"}]}'`,
			[]Code{CodeUnknownAction}},
		{"a string that is not JSON", `'Allow everything'`, []Code{CodeBadPolicy}},
		{"a statement without Resource", `{Version: "2012-10-17", Statement: {Effect: Allow, Action: ecs:RunTask}}`, []Code{CodeBadPolicy}},
		{"a statement with a Principal", `{Version: "2012-10-17", Statement: {Effect: Allow, Principal: "*", Action: ecs:RunTask, Resource: "*"}}`, []Code{CodeBadPolicy}},
		{"an old Version is fine, a wrong one is not", `{Version: "2012-10-18", Statement: {Effect: Allow, Action: ecs:RunTask, Resource: "*"}}`, []Code{CodeBadPolicy}},
		{"an unknown element", `{Version: "2012-10-17", Statement: {Effect: Allow, Actions: ecs:RunTask, Resource: "*"}}`, []Code{CodeBadPolicy, CodeBadPolicy}},
		{"operators with prefixes and IfExists, case aside", `{Version: "2012-10-17", Statement: {Effect: Allow, Action: ecs:RunTask, Resource: "*", Condition: {
			"ForAnyValue:StringLikeIfExists": {aws:TagKeys: x}, stringequals: {aws:PrincipalTag/team: x}, "NullIfExists": {aws:TagKeys: "true"}}}}`,
			[]Code{CodeUnknownOperator}},
		{"service keys with variables", `{Version: "2012-10-17", Statement: {Effect: Allow, Action: ecs:RunTask, Resource: "*", Condition: {
			StringEquals: {ecs:ResourceTag/fluidity:owner: x, aws:RequestTag/: x, kms:EncryptionContext:aws:ssm:name: x, ec2:SourceInstanceARN: x}}}}`,
			[]Code{CodeUnknownConditionKey}},
		{"a service that does not exist", `{Version: "2012-10-17", Statement: {Effect: Allow, Action: ecss:RunTask, Resource: "*"}}`, []Code{CodeUnknownAction}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := mustParse(t, "Resources:\n  P:\n    Type: AWS::IAM::ManagedPolicy\n    Properties:\n      PolicyDocument: "+tt.doc+"\n")
			var got []Code
			for _, p := range Check(tmpl, VendoredSpec()) {
				got = append(got, p.Code)
			}
			if !reflect.DeepEqual(got, tt.codes) {
				t.Errorf("problems %v, want %v: %v", got, tt.codes, Check(tmpl, VendoredSpec()))
			}
		})
	}
}
