package ecstask_test

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/controlplane"
	"fluidity/internal/ecstask"
)

func TestMain(m *testing.M) {
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

const (
	planeKey = "AKIDPLANE0000001"
	exitKey  = "AKIDEXIT00000001"
)

// startTask runs an exit task in a new Cloud, as the control plane would,
// and returns the Cloud and the task.
func startTask(t *testing.T) (*awsfake.Cloud, awsfake.Task) {
	t.Helper()
	c := awsfake.NewCloud(t, awsfake.CloudConfig{})
	c.AddIdentity(planeKey, "plane-secret", "arn:aws:sts::111122223333:assumed-role/fluidity-plane/fn")
	c.AddIdentity(exitKey, "exit-secret", "arn:aws:sts::111122223333:assumed-role/fluidity-exit-task/abc")
	c.AddCluster("fluidity")
	c.AddTaskDefinition("fluidity-exit:1")
	c.AddSubnet("subnet-0a1b2c3d")
	out, err := ecs.NewFromConfig(c.Config(planeKey)).RunTask(t.Context(), &ecs.RunTaskInput{
		Cluster:        aws.String("fluidity"),
		TaskDefinition: aws.String("fluidity-exit"),
		LaunchType:     ecstypes.LaunchTypeFargate,
		NetworkConfiguration: &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
			Subnets: []string{"subnet-0a1b2c3d"}, AssignPublicIp: ecstypes.AssignPublicIpEnabled,
		}},
	})
	if err != nil || len(out.Tasks) != 1 {
		t.Fatalf("RunTask: %v", err)
	}
	task, ok := c.Task(*out.Tasks[0].TaskArn)
	if !ok || task.MetadataURI == "" {
		t.Fatalf("task %s has no metadata endpoint", *out.Tasks[0].TaskArn)
	}
	return c, task
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// clock is the lease's Until: a time the test sets, and a channel that
// receives the calls made while the test waits on it, so the test can wait
// for renewals that begin after a moment.
type clock struct {
	mu    sync.Mutex
	until time.Time
	calls chan struct{}
}

func newClock(until time.Time) *clock { return &clock{until: until, calls: make(chan struct{})} }

func (c *clock) Until(time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case c.calls <- struct{}{}:
	default:
	}
	return c.until
}

func (c *clock) set(until time.Time) {
	c.mu.Lock()
	c.until = until
	c.mu.Unlock()
}

// waitRenewals waits until the lease has begun n more renewals; every
// renewal before them has finished.
func (c *clock) waitRenewals(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.calls:
		case <-time.After(10 * time.Second):
			t.Fatalf("the lease was not renewed %d times within 10s", n)
		}
	}
}

// runLease runs a lease until the test ends.
func runLease(t *testing.T, cfg ecstask.LeaseConfig) *ecstask.Lease {
	t.Helper()
	l, err := ecstask.NewLease(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func waitTag(t *testing.T, c *awsfake.Cloud, arn, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err := c.WaitTasks(ctx, func(ts []awsfake.Task) bool {
		for _, task := range ts {
			if task.ARN == arn {
				return task.Tags[ecstask.LeaseTag] == want
			}
		}
		return false
	})
	if err != nil {
		task, _ := c.Task(arn)
		t.Fatalf("the lease tag is %q, want %q: %v", task.Tags[ecstask.LeaseTag], want, err)
	}
}

func TestTaskARN(t *testing.T) {
	_, task := startTask(t)
	arn, err := ecstask.TaskARN(t.Context(), nil, task.MetadataURI)
	if err != nil || arn != task.ARN {
		t.Fatalf("TaskARN = %q, %v; want %q", arn, err, task.ARN)
	}
	if _, err := ecstask.TaskARN(t.Context(), nil, task.MetadataURI+"-gone"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("TaskARN of an unknown container = %v, want a 404", err)
	}
}

func TestLeaseIsTheTagTheSweepReads(t *testing.T) {
	if ecstask.LeaseTag != controlplane.LeaseTag {
		t.Fatalf("the exit writes %q, the control plane reads %q", ecstask.LeaseTag, controlplane.LeaseTag)
	}
}

func TestLeaseRenewsOnlyWhenItMoves(t *testing.T) {
	c, task := startTask(t)
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	clk := newClock(start.Add(2*time.Minute + 300*time.Millisecond))
	logs := &syncBuffer{}
	l := runLease(t, ecstask.LeaseConfig{
		MetadataURI: task.MetadataURI,
		AWS:         ptr(c.Config(exitKey)),
		Until:       clk.Until,
		Interval:    20 * time.Millisecond,
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})

	t.Run("the tag appears at start, rounded up to the second", func(t *testing.T) {
		waitTag(t, c, task.ARN, "2026-11-22T10:02:01Z")
		clk.waitRenewals(t, 1)
		if arn, until := l.State(); arn != task.ARN || !until.Equal(start.Add(121*time.Second)) {
			t.Fatalf("State = %q, %v", arn, until)
		}
		for _, call := range c.Calls() {
			if call.Op == "ecs:TagResource" && !strings.Contains(call.Caller, "fluidity-exit-task") {
				t.Fatalf("TagResource called as %q, want the exit's task role", call.Caller)
			}
		}
	})
	t.Run("a lease that stays put is not written again", func(t *testing.T) {
		before := c.CallCount("ecs:TagResource")
		clk.waitRenewals(t, 5)
		if n := c.CallCount("ecs:TagResource") - before; n != 0 {
			t.Fatalf("TagResource called %d more times for an unchanged lease", n)
		}
	})
	t.Run("a lease that moves is written", func(t *testing.T) {
		clk.set(start.Add(7 * time.Minute))
		waitTag(t, c, task.ARN, "2026-11-22T10:07:00Z")
		// The fake sets the tag before it records the call; a renewal
		// begun since means the call has been answered, so recorded.
		clk.waitRenewals(t, 1)
	})
	if n := c.CallCount("ecs:TagResource"); n != 2 {
		t.Errorf("TagResource called %d times for two values of the lease", n)
	}
	if got := strings.Count(logs.String(), "lease: this exit runs in ECS task"); got != 1 {
		t.Errorf("the task was found %d times, want once:\n%s", got, logs)
	}
}

func TestLeaseFailuresAreLoggedOnceAndRetried(t *testing.T) {
	t.Run("access denied", func(t *testing.T) {
		c, task := startTask(t)
		c.FailNext("ecs:TagResource", 4, awsfake.APIError{Code: "AccessDeniedException",
			Message: "User: arn:aws:sts::111122223333:assumed-role/fluidity-exit-task/abc is not authorized to perform: ecs:TagResource"})
		logs := &syncBuffer{}
		clk := newClock(time.Date(2026, 11, 22, 10, 5, 0, 0, time.UTC))
		runLease(t, ecstask.LeaseConfig{MetadataURI: task.MetadataURI, AWS: ptr(c.Config(exitKey)), Until: clk.Until,
			Interval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		waitTag(t, c, task.ARN, "2026-11-22T10:05:00Z")
		clk.waitRenewals(t, 1)
		if n := c.CallCount("ecs:TagResource"); n != 5 {
			t.Errorf("TagResource called %d times, want 4 refused and 1 accepted", n)
		}
		out := logs.String()
		if strings.Count(out, "cannot renew") != 1 || !strings.Contains(out, "needs ecs:TagResource on its own task") {
			t.Fatalf("want one warning naming the permission, got:\n%s", out)
		}
		if !strings.Contains(out, "renewed again") || !strings.Contains(out, "failures=4") {
			t.Fatalf("want the recovery logged after 4 failures, got:\n%s", out)
		}
	})
	t.Run("metadata endpoint unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		uri := "http://" + ln.Addr().String() + "/v4/gone"
		ln.Close()
		c, _ := startTask(t)
		logs := &syncBuffer{}
		clk := newClock(time.Now())
		l := runLease(t, ecstask.LeaseConfig{MetadataURI: uri, AWS: ptr(c.Config(exitKey)), Until: clk.Until,
			Interval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(logs.String(), "still cannot renew") < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("no retries logged:\n%s", logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		out := logs.String()
		if strings.Count(out, "level=WARN") != 1 || !strings.Contains(out, ecstask.MetadataEnv) {
			t.Fatalf("want one warning naming %s, got:\n%s", ecstask.MetadataEnv, out)
		}
		if task, until := l.State(); task != "" || !until.IsZero() || c.CallCount("ecs:TagResource") != 0 {
			t.Fatalf("State = %q, %v after the task could not be found", task, until)
		}
	})
}

func TestNewLeaseNeedsTheMetadataEndpoint(t *testing.T) {
	_, err := ecstask.NewLease(t.Context(), ecstask.LeaseConfig{Until: func(now time.Time) time.Time { return now }})
	if err == nil || !strings.Contains(err.Error(), ecstask.MetadataEnv) {
		t.Fatalf("NewLease without a metadata URI = %v, want an error naming %s", err, ecstask.MetadataEnv)
	}
}

func ptr[T any](v T) *T { return &v }
