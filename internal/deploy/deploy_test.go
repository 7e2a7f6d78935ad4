package deploy

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"fluidity/internal/awsfake"
	"fluidity/internal/image"
	"fluidity/internal/pki"
)

const (
	deployerKey = "AKIDDEPLOYER0001"
	deployer    = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com"
	deployerArn = "arn:aws:iam::111122223333:role/AWSReservedSSO_Admin_0123"
)

// armELF is a stand-in for the linux/arm64 fluidity binary: a minimal
// static ELF executable for arm64.
func armELF() []byte {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0})
	b.Write(make([]byte, 8))
	for _, v := range []any{uint16(2), uint16(183), uint32(1), uint64(0x10000), uint64(0), uint64(0), uint32(0),
		uint16(64), uint16(56), uint16(0), uint16(64), uint16(0), uint16(0)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("a fluidity binary")
	return b.Bytes()
}

type world struct {
	cloud *awsfake.Cloud
	cfg   aws.Config
	state string
	bin   string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	c := awsfake.NewCloud(t, awsfake.CloudConfig{StackStepTime: time.Millisecond})
	c.AddIdentity(deployerKey, "deployer-secret", deployer)
	w := &world{cloud: c, cfg: c.Config(deployerKey), state: t.TempDir()}
	w.bin = filepath.Join(t.TempDir(), "fluidity")
	if err := os.WriteFile(w.bin, armELF(), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *world) options(out *bytes.Buffer) Options {
	return Options{AWS: &w.cfg, StateDir: w.state, ExitBinary: w.bin, Version: "v9.9.9", Out: out, PollInterval: 5 * time.Millisecond}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestDeployMakesEverythingAndASecondRunChangesNothing(t *testing.T) {
	w := newWorld(t)
	var out bytes.Buffer
	res, err := Deploy(ctxT(t), w.options(&out))
	if err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	for _, st := range []string{"fluidity-exit", "fluidity-control"} {
		if status, _ := w.cloud.StackStatus(st); status != "CREATE_COMPLETE" {
			t.Fatalf("stack %s is %s\n%s", st, status, out.String())
		}
	}
	if res.FunctionURL != w.cloud.FunctionURL || res.Caller != deployerArn || !strings.Contains(res.AgentPolicyArn, ":policy/fluidity-agent") {
		t.Fatalf("result %+v", res)
	}
	// Progress for a person: each resource as CloudFormation works on it.
	for _, want := range []string{"creating the stack fluidity-exit", "AWS::ECS::TaskDefinition", "CREATE_COMPLETE", "pushed the image"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the progress lacks %q:\n%s", want, out.String())
		}
	}

	// The image is in the registry, by the digest the stacks name.
	tok, err := ecr.NewFromConfig(w.cfg).GetAuthorizationToken(ctxT(t), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	user, pass, _ := strings.Cut(string(raw), ":")
	ref, err := name.NewDigest(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	if err != nil {
		t.Fatalf("pulling %s: %v", res.Image, err)
	}
	if cf, _ := img.ConfigFile(); cf.Architecture != "arm64" || cf.Config.Labels["org.opencontainers.image.version"] != "v9.9.9" {
		t.Fatalf("image config %+v", cf)
	}

	// The function runs that image, configured for the exit's stack.
	fn, ok := w.cloud.LambdaFunction("fluidity")
	if !ok || fn.ImageURI != res.Image || strings.Join(fn.Command, " ") != "lambda" || fn.Env["FLUIDITY_CLUSTER"] != "fluidity" ||
		fn.Env["FLUIDITY_TASK_DEFINITION"] != "fluidity-exit" || fn.Env["FLUIDITY_ALLOW"] != deployerArn || fn.ReservedConcurrency != 10 {
		t.Fatalf("function %+v", fn)
	}
	// The exit's certificates are where the task definition reads them.
	param, err := ssm.NewFromConfig(w.cfg).GetParameter(ctxT(t), &ssm.GetParameterInput{Name: aws.String("/fluidity/fluidity/exit-certs"), WithDecryption: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	bundle, _ := pki.ServerBundle(filepath.Join(w.state, "fluidity", "certs"))
	if aws.ToString(param.Parameter.Value) != string(bundle) || param.Parameter.Type != "SecureString" {
		t.Fatalf("the parameter holds %d bytes of type %s", len(aws.ToString(param.Parameter.Value)), param.Parameter.Type)
	}
	conf, err := os.ReadFile(res.AgentConfig)
	if err != nil || !strings.Contains(string(conf), "lifecycle: aws") || !strings.Contains(string(conf), w.cloud.FunctionURL) ||
		!strings.Contains(string(conf), "enabled: true") {
		t.Fatalf("agent configuration %s: %v", conf, err)
	}
	if rec, err := ReadRecord(filepath.Join(w.state, "fluidity", "certs")); err != nil || rec.AgentPolicyArn != res.AgentPolicyArn {
		t.Fatalf("record %+v, %v", rec, err)
	}

	// Again: nothing to change, and nothing changed.
	before := map[string]int{}
	for _, op := range []string{"ssm:PutParameter", "cloudformation:CreateStack"} {
		before[op] = w.cloud.CallCount(op)
	}
	out.Reset()
	again, err := Deploy(ctxT(t), w.options(&out))
	if err != nil {
		t.Fatalf("second deploy: %v\n%s", err, out.String())
	}
	for _, want := range []string{"already in the repository", "certificates in ssm:///fluidity/fluidity/exit-certs are current",
		"the stack fluidity-exit is up to date", "the stack fluidity-control is up to date"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the second deploy does not say %q:\n%s", want, out.String())
		}
	}
	for op, n := range before {
		if got := w.cloud.CallCount(op); got != n {
			t.Errorf("the second deploy called %s %d more times", op, got-n)
		}
	}
	if again.Image != res.Image {
		t.Fatalf("a second build of the same binary made another image: %s, %s", again.Image, res.Image)
	}
}

func TestDestroyRemovesWhatDeployMade(t *testing.T) {
	w := newWorld(t)
	var out bytes.Buffer
	if _, err := Deploy(ctxT(t), w.options(&out)); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	if _, err := Destroy(ctxT(t), w.options(&out), func(string) bool { return false }); err == nil {
		t.Fatal("destroy went on without a yes")
	}
	if status, _ := w.cloud.StackStatus("fluidity-exit"); status != "CREATE_COMPLETE" {
		t.Fatalf("a refused destroy touched the stack: %s", status)
	}
	var asked string
	left, err := Destroy(ctxT(t), w.options(&out), func(what string) bool { asked = what; return true })
	if err != nil {
		t.Fatalf("destroy: %v\n%s", err, out.String())
	}
	if !strings.Contains(asked, "fluidity-control") || !strings.Contains(asked, "/fluidity/fluidity/exit-certs") {
		t.Fatalf("the confirmation did not say what goes: %q", asked)
	}
	for _, st := range []string{"fluidity-exit", "fluidity-control"} {
		if status, _ := w.cloud.StackStatus(st); status != "DELETE_COMPLETE" {
			t.Fatalf("stack %s is %s after destroy", st, status)
		}
	}
	if _, err := ssm.NewFromConfig(w.cfg).GetParameter(ctxT(t), &ssm.GetParameterInput{Name: aws.String("/fluidity/fluidity/exit-certs")}); err == nil {
		t.Fatal("the certificates are still in SSM")
	}
	if _, err := ecr.NewFromConfig(w.cfg).DescribeRepositories(ctxT(t), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"fluidity"}}); err == nil {
		t.Fatal("the repository is still there")
	}
	if len(left) != 1 || !strings.Contains(left[0], filepath.Join(w.state, "fluidity")) {
		t.Fatalf("left %q", left)
	}
}

func TestDeployFailuresSayWhatToDo(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(w *world, o *Options)
		want  []string
	}{
		{"no region", func(w *world, o *Options) { w.cfg.Region = "" }, []string{"region: none configured", "--region"}},
		{"a region that is not one", func(w *world, o *Options) { o.Region = "eu-wst" }, []string{`"eu-wst" is not an AWS region`}},
		{"no permission to create stacks", func(w *world, o *Options) {
			w.cloud.FailNext("cloudformation:CreateStack", 0, awsfake.APIError{Status: 403, Code: "AccessDenied",
				Message: "User: " + deployer + " is not authorized to perform: cloudformation:CreateStack"})
		}, []string{"may not call cloudformation:CreateStack", "AdministratorAccess"}},
		{"expired credentials", func(w *world, o *Options) {
			w.cloud.FailNext("sts:GetCallerIdentity", 0, awsfake.APIError{Status: 403, Code: "ExpiredToken", Message: "The security token included in the request is expired"})
		}, []string{"expired", "aws sso login"}},
		{"a binary for the wrong machine", func(w *world, o *Options) {
			os.WriteFile(w.bin, []byte("#!/bin/sh\necho not a binary\n"), 0o755)
		}, []string{"not an ELF file", "linux/arm64"}},
		{"a stack resource that fails", func(w *world, o *Options) {
			w.cloud.FailResource("TaskDefinition", "Invalid request provided: Create TaskDefinition: No Fargate configuration exists for given values.")
		}, []string{"ROLLBACK_COMPLETE", "AWS::ECS::TaskDefinition TaskDefinition", "No Fargate configuration"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			var out bytes.Buffer
			o := w.options(&out)
			tc.setup(w, &o)
			_, err := Deploy(ctxT(t), o)
			if err == nil {
				t.Fatalf("deploy succeeded:\n%s", out.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestAStackThatFailedToBeCreatedIsMadeAgain(t *testing.T) {
	w := newWorld(t)
	var out bytes.Buffer
	w.cloud.FailResource("Cluster", "Resource handler returned message: \"rate exceeded\"")
	if _, err := Deploy(ctxT(t), w.options(&out)); !errors.Is(err, errStackFailed) {
		t.Fatalf("deploy with a failing resource: %v", err)
	}
	if status, _ := w.cloud.StackStatus("fluidity-exit"); status != "ROLLBACK_COMPLETE" {
		t.Fatalf("the failed stack is %s", status)
	}
	w.cloud.FailResource("Cluster", "")
	out.Reset()
	if _, err := Deploy(ctxT(t), w.options(&out)); err != nil {
		t.Fatalf("deploy after the failure: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "failed to be created earlier") {
		t.Errorf("deploy did not say it replaced the failed stack:\n%s", out.String())
	}
	if status, _ := w.cloud.StackStatus("fluidity-exit"); status != "CREATE_COMPLETE" {
		t.Fatalf("the stack is %s", status)
	}
}

func TestNoSecretLeavesThroughOutputsOrProgress(t *testing.T) {
	w := newWorld(t)
	var out bytes.Buffer
	if _, err := Deploy(ctxT(t), w.options(&out)); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	key, err := os.ReadFile(filepath.Join(w.state, "fluidity", "certs", pki.ServerKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(strings.Split(string(key), "\n")[1]) // a line of the key's base64
	if strings.Contains(out.String(), secret) || strings.Contains(out.String(), "PRIVATE KEY") {
		t.Fatal("deploy's progress shows the exit's private key")
	}
	for _, call := range w.cloud.Calls() {
		if strings.HasPrefix(call.Op, "cloudformation:") && (bytes.Contains(call.Body, []byte("PRIVATE")) || bytes.Contains(call.Body, []byte(secret))) {
			t.Fatalf("the key went to CloudFormation in %s", call.Op)
		}
	}
}

func TestDeployWithSecretsManagerAndMorePeople(t *testing.T) {
	w := newWorld(t)
	var out bytes.Buffer
	o := w.options(&out)
	o.SecretsManager = true
	o.Allow = []string{"arn:aws:iam::111122223333:user/anna", "444455556666"}
	if _, err := Deploy(ctxT(t), o); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	fn, _ := w.cloud.LambdaFunction("fluidity")
	want := deployerArn + ",arn:aws:iam::111122223333:user/anna,444455556666"
	if fn.Env["FLUIDITY_ALLOW"] != want {
		t.Fatalf("the control plane allows %q, want %q", fn.Env["FLUIDITY_ALLOW"], want)
	}
	// The exit's task definition reads the secret and lets the same people in.
	task := w.runExitTask(t)
	if task.DefinitionEnv["FLUIDITY_IAM_ALLOW"] != want || !slicesContain(task.Command, "secretsmanager://arn:aws:secretsmanager:") {
		t.Fatalf("the exit's task definition: %v %v", task.Command, task.DefinitionEnv)
	}
	if !strings.Contains(out.String(), "stored the exit's certificates in secretsmanager://fluidity/fluidity/exit-certs") {
		t.Fatalf("deploy's progress:\n%s", out.String())
	}
	if _, err := Deploy(ctxT(t), w.options(&out)); err != nil { // and back to SSM
		t.Fatalf("deploy back to SSM: %v", err)
	}
}

// runExitTask starts a task of the deployment's exit, as the control plane
// would, and returns it as the fake ran it.
func (w *world) runExitTask(t *testing.T) awsfake.Task {
	t.Helper()
	w.cloud.SetHold(true)
	fn, _ := w.cloud.LambdaFunction("fluidity")
	out, err := ecs.NewFromConfig(w.cfg).RunTask(ctxT(t), &ecs.RunTaskInput{
		Cluster: aws.String(fn.Env["FLUIDITY_CLUSTER"]), TaskDefinition: aws.String(fn.Env["FLUIDITY_TASK_DEFINITION"]),
		LaunchType: ecstypes.LaunchTypeFargate,
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: strings.Split(fn.Env["FLUIDITY_SUBNETS"], ","), SecurityGroups: []string{fn.Env["FLUIDITY_SECURITY_GROUPS"]}}},
	})
	if err != nil {
		t.Fatalf("RunTask with the deployment's settings: %v", err)
	}
	task, _ := w.cloud.Task(aws.ToString(out.Tasks[0].TaskArn))
	return task
}

func slicesContain(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func TestDeployCopiesAnImageGiven(t *testing.T) {
	w := newWorld(t)
	// An image someone built and pushed elsewhere.
	src := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer src.Close()
	built, err := image.Build(armELF(), "v1.0.0-theirs")
	if err != nil {
		t.Fatal(err)
	}
	ref := strings.TrimPrefix(src.URL, "http://") + "/theirs/fluidity:v1"
	if _, _, err := image.Push(ctxT(t), built, ref, authn.Anonymous); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	o := w.options(&out)
	o.ExitBinary, o.Image = "", ref
	res, err := Deploy(ctxT(t), o)
	if err != nil {
		t.Fatalf("deploy with --image: %v\n%s", err, out.String())
	}
	d, _ := built.Digest()
	if !strings.HasPrefix(res.Image, w.cloud.RegistryHost()+"/fluidity@") || !strings.HasSuffix(res.Image, d.String()) {
		t.Fatalf("the deployment runs %s; want the given image (%s) copied into its repository", res.Image, d)
	}
}

func TestReadBinaryFromReleaseArchives(t *testing.T) {
	bin := armELF()
	dir := t.TempDir()
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "fluidity_linux_arm64/README.md", Mode: 0o644, Size: 5})
	tw.Write([]byte("hello"))
	tw.WriteHeader(&tar.Header{Name: "fluidity_linux_arm64/fluidity", Mode: 0o755, Size: int64(len(bin))})
	tw.Write(bin)
	tw.Close()
	zw.Close()
	var zbuf bytes.Buffer
	zwr := zip.NewWriter(&zbuf)
	f, _ := zwr.Create("fluidity")
	f.Write(bin)
	zwr.Close()
	var empty bytes.Buffer
	ez := zip.NewWriter(&empty)
	ez.Create("README.md")
	ez.Close()
	for name, data := range map[string][]byte{"fluidity.tar.gz": tgz.Bytes(), "fluidity.zip": zbuf.Bytes(), "fluidity": bin} {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o644)
		got, err := readBinary(path)
		if err != nil || !bytes.Equal(got, bin) {
			t.Errorf("readBinary(%s): %d bytes, %v", name, len(got), err)
		}
	}
	path := filepath.Join(dir, "other.zip")
	os.WriteFile(path, empty.Bytes(), 0o644)
	if _, err := readBinary(path); !errors.Is(err, errNoBinaryInArchive) {
		t.Errorf("an archive without the binary: %v", err)
	}
}
