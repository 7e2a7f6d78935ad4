package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"fluidity/internal/awsfake"
	"fluidity/internal/pki"
)

// awsEnv points this process's AWS SDK at the fake as the identity key,
// for the commands run in-process.
func awsEnv(t *testing.T, c *awsfake.Cloud, key string) {
	for _, kv := range c.Env(key) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

func TestCertsPushStoresTheBundleOnce(t *testing.T) {
	c := awsfake.NewCloud(t, awsfake.CloudConfig{})
	c.AddIdentity("AKIDPUSH", "push-secret", "arn:aws:iam::111122223333:user/alice")
	awsEnv(t, c, "AKIDPUSH")
	dir := filepath.Join(t.TempDir(), "certs")
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, nil, "certs", "push", "--dir", dir, "ssm:///fluidity/test/exit")
	if code != 0 || !strings.Contains(stdout, "Stored the bundle") || !strings.Contains(stdout, "fluidity server --certs ssm:///fluidity/test/exit") {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	got, err := ssm.NewFromConfig(c.Config("AKIDPUSH")).GetParameter(context.Background(), &ssm.GetParameterInput{
		Name: aws.String("/fluidity/test/exit"), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := pki.ServerBundle(dir)
	if aws.ToString(got.Parameter.Value) != string(want) || got.Parameter.Type != "SecureString" {
		t.Fatalf("the parameter is %s, %d bytes", got.Parameter.Type, len(aws.ToString(got.Parameter.Value)))
	}
	code, stdout, _ = run(t, nil, "certs", "push", "--dir", dir, "ssm:///fluidity/test/exit")
	if code != 0 || !strings.Contains(stdout, "already holds") || c.CallCount("ssm:PutParameter") != 1 {
		t.Fatalf("a second push: exit %d, %d PutParameter calls\n%s", code, c.CallCount("ssm:PutParameter"), stdout)
	}
	// Without somewhere to put it, or with nowhere it can go: a clear no.
	if code, _, stderr := run(t, nil, "certs", "push", "--dir", dir); code != 2 || !strings.Contains(stderr, "ssm://NAME or secretsmanager://NAME") {
		t.Fatalf("push with no destination: exit %d, %s", code, stderr)
	}
	c.FailNext("ssm:GetParameter", 1, awsfake.APIError{Code: "AccessDeniedException", Message: "not authorized to perform: ssm:GetParameter"})
	if code, _, stderr := run(t, nil, "certs", "push", "--dir", dir, "ssm:///fluidity/other"); code != 1 || !strings.Contains(stderr, "needs ssm:GetParameter and ssm:PutParameter") {
		t.Fatalf("push refused: exit %d, %s", code, stderr)
	}
}

func TestIssueClientForADeploymentSaysHowToLetThePersonIn(t *testing.T) {
	dep := filepath.Join(t.TempDir(), "fluidity")
	certs := filepath.Join(dep, "certs")
	if err := pki.Init(pki.InitOptions{Dir: certs}); err != nil {
		t.Fatal(err)
	}
	record := `{"name":"fluidity","region":"eu-west-1","agent_policy_arn":"arn:aws:iam::111122223333:policy/fluidity-agent","allow":["arn:aws:iam::111122223333:role/admin"]}`
	if err := os.WriteFile(filepath.Join(dep, "deployment.json"), []byte(record), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := run(t, nil, "certs", "issue-client", "--dir", certs, "--name", "anna")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"fluidity aws deploy --stack fluidity --region eu-west-1 --allow ARN", "arn:aws:iam::111122223333:role/admin",
		"aws iam attach-user-policy --user-name NAME --policy-arn arn:aws:iam::111122223333:policy/fluidity-agent", "Register-IAMUserPolicy"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("issue-client does not say %q:\n%s", want, stdout)
		}
	}
}
