package lambdafn

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"fluidity/internal/awsfake"
	"fluidity/internal/controlapi"
	"fluidity/internal/controlplane"
	"fluidity/internal/lifecycle"
)

// deployed is a fake account with the control plane deployed: the
// function URL invokes this package's handler over a real plane.
func deployed(t *testing.T) *awsfake.Cloud {
	t.Helper()
	var h *Handler
	c := awsfake.NewCloud(t, awsfake.CloudConfig{
		Invoke: func(ctx context.Context, payload []byte) ([]byte, error) { return h.Invoke(ctx, payload) },
	})
	c.AddIdentity("AKIDCONTROL", "control-secret", "arn:aws:sts::111122223333:assumed-role/fluidity-control/fluidity")
	c.AddIdentity("AKIDALICE", "alice-secret", alice)
	c.AddIdentity("AKIDMALLORY", "mallory-secret", "arn:aws:iam::444455556666:user/mallory")
	c.AddCluster("fluidity")
	c.AddTaskDefinition("fluidity-exit:1")
	c.AddSubnet("subnet-0a")
	awsCfg := c.Config("AKIDCONTROL")
	plane, err := controlplane.New(controlplane.Config{
		Cluster: "fluidity", TaskDefinition: "fluidity-exit", Subnets: []string{"subnet-0a"},
		Allow: []string{alice}, PollInterval: 20 * time.Millisecond,
		ECS: ecs.NewFromConfig(awsCfg), EC2: ec2.NewFromConfig(awsCfg),
	})
	if err != nil {
		t.Fatal(err)
	}
	h = &Handler{Plane: plane}
	return c
}

func agentBackend(t *testing.T, c *awsfake.Cloud, key, secret string) *lifecycle.AWS {
	t.Helper()
	b, err := lifecycle.NewAWS(context.Background(), lifecycle.AWSConfig{
		URL: c.FunctionURL, Region: c.Region, Credentials: credentials.NewStaticCredentialsProvider(key, secret, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTheAgentWakesItsExitThroughTheFunctionURL(t *testing.T) {
	c := deployed(t)
	exit, err := lifecycle.New(lifecycle.Config{Backend: agentBackend(t, c, "AKIDALICE", "alice-secret")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr, err := exit.Locate(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	tasks := c.Tasks()
	if len(tasks) != 1 || tasks[0].Tags["fluidity:owner"] != alice || addr != net.JoinHostPort(tasks[0].PublicIP, "8443") {
		t.Fatalf("address %s; tasks %+v", addr, tasks)
	}
	// Every call reached the function signed as alice, for the service
	// lambda: the fake checked the signatures.
	for _, call := range c.Calls() {
		if call.Op == "lambda:InvokeFunctionUrl" && (call.Caller != alice || call.Status != http.StatusOK) {
			t.Fatalf("function URL call %+v", call)
		}
	}
	if c.CallCount("lambda:InvokeFunctionUrl") > 4 {
		t.Fatalf("%d calls to wake one exit; the query waits rather than polls", c.CallCount("lambda:InvokeFunctionUrl"))
	}
}

func TestRefusalsReachTheAgentAsTheControlPlaneSaidThem(t *testing.T) {
	c := deployed(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	_, err := agentBackend(t, c, "AKIDMALLORY", "mallory-secret").Wake(ctx, "w")
	var ce *controlapi.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != controlapi.CodeNotAllowed || !strings.Contains(ce.Message, "mallory") {
		t.Fatalf("a caller outside the allowlist: %v", err)
	}
	// A bad signature is refused by the function URL itself, before the
	// function runs.
	_, err = agentBackend(t, c, "AKIDALICE", "not-her-secret").Wake(ctx, "w")
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || ce.Code != controlapi.CodePermission || !strings.Contains(ce.Message, "lambda:InvokeFunctionUrl") {
		t.Fatalf("a bad signature: %v", err)
	}
	c.FailNext("ecs:RunTask", 1, awsfake.APIError{Code: "AccessDeniedException", Message: "not authorized to perform: ecs:RunTask"})
	_, err = agentBackend(t, c, "AKIDALICE", "alice-secret").Wake(ctx, "w")
	if !errors.As(err, &ce) || ce.Status != http.StatusBadGateway || ce.Code != controlapi.CodePermission || !strings.Contains(ce.Message, "fluidity aws deploy") {
		t.Fatalf("RunTask refused: %v", err)
	}
	if n := len(c.Tasks()); n != 0 {
		t.Fatalf("%d tasks after refusals", n)
	}
}
