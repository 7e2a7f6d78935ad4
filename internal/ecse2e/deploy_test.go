package ecse2e

import (
	"archive/tar"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"fluidity/internal/awsfake"
	"fluidity/internal/ecstask"
	"fluidity/internal/image"
	"fluidity/internal/proctest"
)

const (
	deployerKey = "AKIDDEPLOYER0001"
	deployer    = "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Admin_0123/alice@example.com"
)

// repoRoot is the module's directory, where deploy builds the binary.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDeployFromAnEmptyAccountToBrowsing runs 'fluidity aws deploy' as a
// person would, against the fake account, then runs what the stacks made
// as AWS would run it: the control plane's function as bootstrap processes
// with the environment the stack gave it, each exit task as an exit
// process with the task definition's command and environment. The agent
// started from the configuration deploy wrote then carries a curl. Last,
// 'fluidity aws destroy' removes it all.
func TestDeployFromAnEmptyAccountToBrowsing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the linux/arm64 binary")
	}
	t.Parallel()
	sts := awsfake.NewServer(t)
	sts.AddIdentity(deployerKey, "deployer-secret", deployer, "111122223333", "AROADEPLOYER:alice@example.com")
	origin := strings.TrimPrefix(newOrigin(t).URL, "http://")
	rt := awsfake.NewRuntimeAPI(t, awsfake.RuntimeConfig{Timeout: time.Minute})

	var (
		c      *awsfake.Cloud
		mu     sync.Mutex
		nextIP = 2
	)
	launch := func(task awsfake.Task) (awsfake.Container, error) {
		mu.Lock()
		ip := fmt.Sprintf("127.0.1.%d", nextIP)
		nextIP++
		mu.Unlock()
		// The task definition's own command, listening on the task's
		// address; --allow-private lets the exit reach the test's origin
		// on loopback.
		args := append([]string(nil), task.Command...)
		for i, a := range args {
			if a == "--listen" && i+1 < len(args) {
				_, port, _ := net.SplitHostPort(args[i+1])
				args[i+1] = net.JoinHostPort(ip, port)
			}
		}
		args = append(args, "--allow-private")
		env := exitEnv(c, ecstask.MetadataEnv+"="+task.MetadataURI, "FLUIDITY_IAM_STS_ENDPOINT=us-east-1="+sts.URL)
		for k, v := range task.DefinitionEnv {
			env = append(env, k+"="+v)
		}
		p := proctest.Launcher{Env: env}.Start(t, "exit-"+ip, args...)
		return awsfake.Container{PublicIP: ip, Exited: p.Done(), ExitCode: p.ExitCode,
			Stop: func() {
				if proc, err := os.FindProcess(p.Pid()); err == nil && !p.Exited() {
					proc.Signal(syscall.SIGTERM)
				}
			}}, nil
	}
	c = newCloud(t, awsfake.CloudConfig{Launch: launch, Invoke: rt.Invoke, StackStepTime: time.Millisecond})
	c.AddIdentity(deployerKey, "deployer-secret", deployer)
	state := t.TempDir()

	// Deploy, from the source tree, as a person would.
	fluidity := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, proctest.Binary(), args...)
		cmd.Dir = repoRoot(t)
		cmd.Env = append(append(proctest.Env(), c.Env(deployerKey)...), "FLUIDITY_STATE_DIR="+state)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := fluidity("aws", "deploy")
	if err != nil {
		t.Fatalf("fluidity aws deploy: %v\n%s", err, out)
	}
	agentConfig := filepath.Join(state, "fluidity", "agent.yaml")
	if !strings.Contains(out, "building the linux/arm64 binary from "+repoRoot(t)) || !strings.Contains(out, "fluidity agent --config "+agentConfig) {
		t.Fatalf("deploy's output:\n%s", out)
	}

	// The image holds the linux/arm64 binary deploy built.
	checkImage(t, c)

	// The control plane runs as Lambda runs it: the stack's image (this
	// machine's build of the same source) as bootstrap, its environment,
	// its role's credentials.
	fn, ok := c.LambdaFunction("fluidity")
	if !ok {
		t.Fatal("the stack made no function")
	}
	env := append(append(proctest.Env(), c.Env(planeKey)...), "AWS_LAMBDA_RUNTIME_API="+rt.Addr)
	for k, v := range fn.Env {
		env = append(env, k+"="+v)
	}
	for i := range 3 {
		proctest.Launcher{Env: env}.Start(t, fmt.Sprintf("lambda-%d", i), fn.Command...)
	}

	// The agent, from the configuration deploy wrote, with the deployer's
	// own credentials.
	l := proctest.Launcher{Env: append(proctest.Env(), c.Env(deployerKey)...)}
	agent, addr := l.StartReady(t, "agent", proctest.AgentReady, func(addr string) []string {
		return []string{"agent", "--config", agentConfig, "--listen", addr, "--admin", "", "--log-level", "debug"}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	curl := exec.CommandContext(ctx, "curl", "-q", "-sS", "--max-time", "90", "-p", "-x", "http://"+addr, "http://"+origin+"/")
	curl.Env = proctest.Env()
	body, err := curl.CombinedOutput()
	if err != nil || string(body) != "hello from the origin\n" {
		t.Fatalf("curl through the deployed exit: %v %q\nagent:\n%s", err, body, agent.Stderr())
	}
	if !agent.WaitLog("exit ready", 1, time.Second) {
		t.Fatalf("the agent did not wake the exit:\n%s", agent.Stderr())
	}

	// Destroy: the running exit is stopped, and everything goes.
	out, err = fluidity("aws", "destroy", "--yes")
	if err != nil {
		t.Fatalf("fluidity aws destroy: %v\n%s", err, out)
	}
	for _, st := range []string{"fluidity-exit", "fluidity-control"} {
		if status, _ := c.StackStatus(st); status != "DELETE_COMPLETE" {
			t.Fatalf("stack %s is %s after destroy:\n%s", st, status, out)
		}
	}
	if !strings.Contains(out, "stopped the exit task") || !strings.Contains(out, "Left: "+filepath.Join(state, "fluidity")) {
		t.Fatalf("destroy's output:\n%s", out)
	}
}

// checkImage pulls the deployment's image and checks the binary in it: a
// static linux/arm64 executable, which runs here when this machine is one.
func checkImage(t *testing.T, c *awsfake.Cloud) {
	t.Helper()
	tok, err := ecr.NewFromConfig(c.Config(deployerKey)).GetAuthorizationToken(t.Context(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(aws.ToString(tok.AuthorizationData[0].AuthorizationToken))
	user, pass, _ := strings.Cut(string(raw), ":")
	fn, _ := c.LambdaFunction("fluidity")
	ref, err := name.NewDigest(fn.ImageURI)
	if err != nil {
		t.Fatalf("the function's image %q: %v", fn.ImageURI, err)
	}
	img, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: user, Password: pass}))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.OS != "linux" || cf.Architecture != "arm64" || cf.Config.User != image.User || cf.Config.Entrypoint[0] != image.BinaryPath {
		t.Fatalf("image config %+v, %v", cf, err)
	}
	bin := extract(t, img)
	if err := image.CheckBinary(bin); err != nil {
		t.Fatalf("the binary in the image: %v", err)
	}
	if runtime.GOOS == "linux" && runtime.GOARCH == "arm64" {
		path := filepath.Join(t.TempDir(), "fluidity")
		os.WriteFile(path, bin, 0o755)
		if out, err := exec.Command(path, "version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "fluidity ") {
			t.Fatalf("the image's binary does not run here: %v %s", err, out)
		}
	} else {
		t.Logf("the image's binary is %d bytes of linux/arm64; this machine is %s/%s, so it is not run", len(bin), runtime.GOOS, runtime.GOARCH)
	}
}

// extract returns the file /fluidity of the image's layers.
func extract(t *testing.T, img v1.Image) []byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no /fluidity in the image: %v", err)
		}
		if h.Name == "fluidity" || h.Name == "/fluidity" {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
}
