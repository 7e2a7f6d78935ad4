package deploy

import (
	"maps"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"fluidity/internal/cfn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTemplatesAreValid checks every embedded template offline: every
// reference resolves, every resource type and property exists in the
// CloudFormation specification, required properties are there, and every
// IAM action and condition key exists.
func TestTemplatesAreValid(t *testing.T) {
	for _, name := range []string{ExitTemplate, ControlTemplate} {
		t.Run(name, func(t *testing.T) {
			tpl, err := cfn.Parse(name+".yaml", Template(name))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range cfn.Check(tpl, cfn.VendoredSpec()) {
				t.Errorf("%s", p)
			}
		})
	}
}

// TestRolesMayDoExactlyWhatTheirCodeDoes compares what each role of the
// templates is granted with the AWS calls its code makes (found from the
// code itself), plus what AWS does on the code's behalf. A call added
// without a grant, or a grant left over, fails here.
func TestRolesMayDoExactlyWhatTheirCodeDoes(t *testing.T) {
	exitCalls := sdkCalls(t, "fluidity/internal/ecstask", "fluidity/internal/certstore")
	controlCalls := sdkCalls(t, "fluidity/internal/controlplane", "fluidity/internal/lambdafn")
	// What AWS does with the role, beyond the code's own calls.
	logs := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
	for _, tc := range []struct {
		template, role string
		want           map[string]bool
	}{
		// Reading a SecureString or a secret decrypts it with KMS.
		{ExitTemplate, "TaskRole", with(exitCalls, "kms:Decrypt")},
		// ECS pulls the image and writes the logs with the execution role.
		{ExitTemplate, "ExecutionRole", with(nil, append(logs, "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")...)},
		// RunTask with tags tags the task, passes the task's roles, and
		// Lambda writes the function's logs.
		{ControlTemplate, "FunctionRole", with(controlCalls, append(logs, "ecs:TagResource", "iam:PassRole")...)},
		// An agent's identity only invokes the function through its URL.
		{ControlTemplate, "AgentPolicy", with(nil, "lambda:InvokeFunctionUrl", "lambda:InvokeFunction")},
	} {
		t.Run(tc.template+"/"+tc.role, func(t *testing.T) {
			tpl, err := cfn.Parse(tc.template+".yaml", Template(tc.template))
			if err != nil {
				t.Fatal(err)
			}
			roles, err := cfn.RoleActions(tpl, cfn.VendoredSpec())
			if err != nil {
				t.Fatal(err)
			}
			if r, ok := tpl.Resources[tc.role]; ok && r.Type == "AWS::IAM::ManagedPolicy" {
				roles[tc.role] = policyActions(t, r.Properties["PolicyDocument"])
			}
			granted, ok := roles[tc.role]
			if !ok {
				t.Fatalf("no role or policy %s in %v", tc.role, slices.Sorted(maps.Keys(roles)))
			}
			if want := sorted(tc.want); !slices.Equal(granted, want) {
				t.Fatalf("%s is granted\n  %v\nbut its code needs\n  %v", tc.role, granted, want)
			}
		})
	}
}

func with(set map[string]bool, more ...string) map[string]bool {
	out := maps.Clone(set)
	if out == nil {
		out = map[string]bool{}
	}
	for _, m := range more {
		out[m] = true
	}
	return out
}

// policyActions are the actions a policy document of a template allows,
// sorted; a test of a standalone managed policy, which no role of the
// template has.
func policyActions(t *testing.T, doc any) []string {
	t.Helper()
	set := map[string]bool{}
	stmts, _ := doc.(map[string]any)["Statement"].([]any)
	for _, st := range stmts {
		m := st.(map[string]any)
		if m["Effect"] != "Allow" {
			continue
		}
		switch a := m["Action"].(type) {
		case string:
			set[a] = true
		case []any:
			for _, x := range a {
				set[x.(string)] = true
			}
		default:
			t.Fatalf("statement %v: Action is %T", m, m["Action"])
		}
	}
	return sorted(set)
}
