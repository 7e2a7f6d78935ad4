package awsfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	smithy "github.com/aws/smithy-go"

	"fluidity/internal/awsfake"
)

const (
	wakeKey    = "AKIDWAKE00000001"
	wakeSecret = "wake-secret"
	wakeARN    = "arn:aws:sts::111122223333:assumed-role/fluidity-wake/fluidity-wake"
	userKey    = "AKIDUSER00000001"
	userSecret = "user-secret"
	userARN    = "arn:aws:iam::444455556666:user/alice"

	clusterName = "fluidity"
	taskFamily  = "fluidity-exit"
	subnetID    = "subnet-0a1b2c3d"
	groupID     = "sg-0a1b2c3d"
)

// newCloud starts a Cloud with a cluster, a task definition, a subnet, a
// security group and two identities.
func newCloud(t *testing.T, cfg awsfake.CloudConfig) *awsfake.Cloud {
	t.Helper()
	c := awsfake.NewCloud(t, cfg)
	c.AddIdentity(wakeKey, wakeSecret, wakeARN)
	c.AddIdentity(userKey, userSecret, userARN)
	c.AddCluster(clusterName)
	c.AddTaskDefinition(taskFamily + ":3")
	c.AddSubnet(subnetID)
	c.AddSecurityGroup(groupID)
	return c
}

// runInput is a valid RunTask request for the exit of user.
func runInput(user string) *ecs.RunTaskInput {
	return &ecs.RunTaskInput{
		Cluster:        aws.String(clusterName),
		TaskDefinition: aws.String(taskFamily),
		LaunchType:     ecstypes.LaunchTypeFargate,
		StartedBy:      aws.String(user),
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets:        []string{subnetID},
			SecurityGroups: []string{groupID},
			AssignPublicIp: ecstypes.AssignPublicIpEnabled,
		}},
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiCode returns the code of an SDK API error, or "" if err is none.
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// signedRequest builds a request to url signed as accessKeyID for a
// signing name and region, with an awsJson target if target is not empty.
func signedRequest(t *testing.T, url, target, service, region, accessKeyID, secret string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	} else {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: accessKeyID, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestSignatureChecks(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	c.PutParameter("/fluidity/ca", "pem", false)
	c.PutSecret("fluidity/key", "secret")
	ctx := ctxT(t)
	withKey := func(key, secret, token, region string) aws.Config {
		cfg := c.Config(wakeKey)
		cfg.Credentials = credentials.NewStaticCredentialsProvider(key, secret, token)
		cfg.Region = region
		return cfg
	}
	calls := map[string]func(cfg aws.Config) error{
		"ecs": func(cfg aws.Config) error {
			_, err := ecs.NewFromConfig(cfg).ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(clusterName)})
			return err
		},
		"ec2": func(cfg aws.Config) error {
			_, err := ec2.NewFromConfig(cfg).DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
			return err
		},
		"ssm": func(cfg aws.Config) error {
			_, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/fluidity/ca")})
			return err
		},
		"secretsmanager": func(cfg aws.Config) error {
			_, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/key")})
			return err
		},
	}
	badSig := map[string]string{"ecs": "InvalidSignatureException", "ec2": "SignatureDoesNotMatch", "ssm": "InvalidSignatureException", "secretsmanager": "InvalidSignatureException"}
	badKey := map[string]string{"ecs": "UnrecognizedClientException", "ec2": "AuthFailure", "ssm": "UnrecognizedClientException", "secretsmanager": "UnrecognizedClientException"}
	for service, call := range calls {
		t.Run(service+": the right key and secret are accepted", func(t *testing.T) {
			if err := call(withKey(wakeKey, wakeSecret, "", c.Region)); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(service+": a session token is accepted as signed", func(t *testing.T) {
			if err := call(withKey(wakeKey, wakeSecret, "session-token", c.Region)); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(service+": a wrong secret is refused", func(t *testing.T) {
			if code := apiCode(call(withKey(wakeKey, "wrong", "", c.Region))); code != badSig[service] {
				t.Errorf("code %q; want %s", code, badSig[service])
			}
		})
		t.Run(service+": a wrong region is refused", func(t *testing.T) {
			if code := apiCode(call(withKey(wakeKey, wakeSecret, "", "eu-west-1"))); code != badSig[service] {
				t.Errorf("code %q; want %s", code, badSig[service])
			}
		})
		t.Run(service+": an unknown key is refused", func(t *testing.T) {
			if code := apiCode(call(withKey("AKIDNOBODY000000", wakeSecret, "", c.Region))); code != badKey[service] {
				t.Errorf("code %q; want %s", code, badKey[service])
			}
		})
	}

	const listTasks = "AmazonEC2ContainerServiceV20141113.ListTasks"
	body := []byte(`{"cluster":"fluidity"}`)
	for _, tc := range []struct {
		name    string
		req     func() *http.Request
		status  int
		message string
	}{
		{"a signature for another signing name is refused", func() *http.Request {
			return signedRequest(t, c.URL, listTasks, "ssm", c.Region, wakeKey, wakeSecret, body)
		}, 400, "Credential should be scoped to correct service: 'ecs'."},
		{"a tampered signed header is refused", func() *http.Request {
			req := signedRequest(t, c.URL, listTasks, "ecs", c.Region, wakeKey, wakeSecret, body)
			req.Header.Set("X-Amz-Target", "AmazonEC2ContainerServiceV20141113.StopTask")
			return req
		}, 400, "The request signature we calculated does not match"},
		{"a tampered body is refused", func() *http.Request {
			req := signedRequest(t, c.URL, listTasks, "ecs", c.Region, wakeKey, wakeSecret, body)
			req.Body = io.NopCloser(strings.NewReader(`{"cluster":"fluidit!"}`))
			return req
		}, 400, "The request signature we calculated does not match"},
		{"an unsigned request is refused", func() *http.Request {
			req := signedRequest(t, c.URL, listTasks, "ecs", c.Region, wakeKey, wakeSecret, body)
			req.Header.Del("Authorization")
			return req
		}, 400, "MissingAuthenticationTokenException"},
		{"an EC2 signature for the ecs signing name is refused", func() *http.Request {
			return signedRequest(t, c.URL, "", "ecs", c.Region, wakeKey, wakeSecret, []byte("Action=DescribeNetworkInterfaces&Version=2016-11-15"))
		}, 403, "<Code>SignatureDoesNotMatch</Code>"},
		{"an unknown operation is refused after the signature", func() *http.Request {
			return signedRequest(t, c.URL, "AmazonEC2ContainerServiceV20141113.LaunchRocket", "ecs", c.Region, wakeKey, wakeSecret, body)
		}, 400, "UnknownOperationException"},
		{"an unknown EC2 action is refused", func() *http.Request {
			return signedRequest(t, c.URL, "", "ec2", c.Region, wakeKey, wakeSecret, []byte("Action=LaunchRocket&Version=2016-11-15"))
		}, 400, "<Code>InvalidAction</Code>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, got := do(t, tc.req())
			if status != tc.status || !strings.Contains(got, tc.message) {
				t.Errorf("got %d %s; want %d with %q", status, got, tc.status, tc.message)
			}
		})
	}
}

func TestCallsAreRecordedWithTheCaller(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	if _, err := ecs.NewFromConfig(c.Config(wakeKey)).RunTask(ctx, runInput("alice")); err != nil {
		t.Fatal(err)
	}
	cfg := c.Config(wakeKey)
	cfg.Credentials = credentials.NewStaticCredentialsProvider(wakeKey, "wrong", "")
	if _, err := ecs.NewFromConfig(cfg).RunTask(ctx, runInput("alice")); err == nil {
		t.Fatal("RunTask with a wrong secret succeeded")
	}
	calls := c.Calls()
	if len(calls) != 2 {
		t.Fatalf("calls = %+v; want 2", calls)
	}
	if got := calls[0]; got.Op != "ecs:RunTask" || got.AccessKeyID != wakeKey || got.Caller != wakeARN || got.Status != 200 || !strings.Contains(string(got.Body), `"startedBy":"alice"`) {
		t.Errorf("first call = %+v %s", got, got.Body)
	}
	if got := calls[1]; got.Op != "ecs:RunTask" || got.AccessKeyID != wakeKey || got.Caller != "" || got.Status != 400 {
		t.Errorf("refused call = %+v", got)
	}
	if n := c.CallCount("ecs:RunTask"); n != 2 {
		t.Errorf("CallCount = %d; want 2", n)
	}
	if ts := c.Tasks(); len(ts) != 1 || ts[0].Caller != wakeARN {
		t.Errorf("tasks = %+v; want one run by %s", ts, wakeARN)
	}
}

func TestFailNext(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	c.PutParameter("/fluidity/ca", "pem", false)
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))
	denied := awsfake.APIError{Code: "AccessDeniedException", Message: "User is not authorized to perform: ecs:RunTask"}

	t.Run("the next call fails with a typed error, the one after succeeds", func(t *testing.T) {
		c.FailNext("ecs:RunTask", 1, denied)
		_, err := ecsC.RunTask(ctx, runInput("alice"))
		var ade *ecstypes.AccessDeniedException
		if !errors.As(err, &ade) || ade.ErrorMessage() != denied.Message {
			t.Fatalf("err = %v; want AccessDeniedException", err)
		}
		if _, err := ecsC.RunTask(ctx, runInput("alice")); err != nil {
			t.Fatalf("second RunTask: %v", err)
		}
	})
	t.Run("times 0 fails until ClearFaults", func(t *testing.T) {
		c.FailNext("ssm:GetParameter", 0, awsfake.APIError{Status: 500, Code: "InternalServerError", Message: "boom"})
		ssmC := ssm.NewFromConfig(c.Config(wakeKey))
		for range 3 {
			if _, err := ssmC.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/fluidity/ca")}); apiCode(err) != "InternalServerError" {
				t.Fatalf("err = %v; want InternalServerError", err)
			}
		}
		c.ClearFaults()
		if _, err := ssmC.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/fluidity/ca")}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an EC2 fault is an EC2 error", func(t *testing.T) {
		c.FailNext("ec2:DescribeNetworkInterfaces", 1, awsfake.APIError{Code: "UnauthorizedOperation", Message: "You are not authorized to perform this operation."})
		_, err := ec2.NewFromConfig(c.Config(wakeKey)).DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{})
		if apiCode(err) != "UnauthorizedOperation" {
			t.Fatalf("err = %v; want UnauthorizedOperation", err)
		}
	})
	t.Run("a fault applies only after the signature is verified", func(t *testing.T) {
		c.FailNext("ecs:ListTasks", 1, denied)
		cfg := c.Config("AKIDNOBODY000000")
		if _, err := ecs.NewFromConfig(cfg).ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(clusterName)}); apiCode(err) != "UnrecognizedClientException" {
			t.Fatalf("err = %v; want UnrecognizedClientException", err)
		}
		if _, err := ecsC.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(clusterName)}); apiCode(err) != "AccessDeniedException" {
			t.Fatalf("err = %v; want the fault", err)
		}
	})
}

// TestEnvPointsTheSDKAtTheCloud loads the SDK's default configuration from
// Env alone, as a child process would.
func TestEnvPointsTheSDKAtTheCloud(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	c.PutParameter("/fluidity/ca", "pem", false)
	c.PutSecret("fluidity/key", "secret")
	for _, kv := range c.Env(wakeKey) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := ctxT(t)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ecs.NewFromConfig(cfg).RunTask(ctx, runInput("alice")); err != nil {
		t.Errorf("ecs: %v", err)
	}
	if _, err := ec2.NewFromConfig(cfg).DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{}); err != nil {
		t.Errorf("ec2: %v", err)
	}
	if _, err := ssm.NewFromConfig(cfg).GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("/fluidity/ca")}); err != nil {
		t.Errorf("ssm: %v", err)
	}
	if _, err := secretsmanager.NewFromConfig(cfg).GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("fluidity/key")}); err != nil {
		t.Errorf("secretsmanager: %v", err)
	}
	for _, op := range []string{"ecs:RunTask", "ec2:DescribeNetworkInterfaces", "ssm:GetParameter", "secretsmanager:GetSecretValue"} {
		if n := c.CallCount(op); n != 1 {
			t.Errorf("%s reached the Cloud %d times; want 1", op, n)
		}
	}
}
