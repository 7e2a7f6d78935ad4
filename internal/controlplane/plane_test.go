package controlplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"go.uber.org/goleak"

	"fluidity/internal/awsfake"
	"fluidity/internal/controlapi"
)

func TestMain(m *testing.M) {
	awsfake.IsolateEnvironment()
	goleak.VerifyTestMain(m)
}

const (
	alice      = "arn:aws:iam::111122223333:user/alice"
	bobSession = "arn:aws:sts::111122223333:assumed-role/dev/bob@example.com"
	bobRole    = "arn:aws:iam::111122223333:role/dev"
	stranger   = "arn:aws:iam::444455556666:user/mallory"
	lambdaKey  = "AKIDCONTROLPLANE"
)

// world is a fake AWS account with a deployed exit: cluster, task
// definition, subnet and security group, and the control plane's role.
type world struct {
	cloud *awsfake.Cloud
	ecs   *ecs.Client
	plane *Plane
	mu    sync.Mutex
	skew  time.Duration // how far the clock of the plane and the fake's tasks runs ahead of the real one
}

func newWorld(t *testing.T, mod func(*Config)) *world {
	t.Helper()
	w := &world{}
	clock := func() time.Time {
		w.mu.Lock()
		defer w.mu.Unlock()
		return time.Now().Add(w.skew)
	}
	c := awsfake.NewCloud(t, awsfake.CloudConfig{ProvisionTime: 20 * time.Millisecond, PendingTime: 20 * time.Millisecond, Clock: clock})
	c.AddIdentity(lambdaKey, "control-secret", "arn:aws:sts::111122223333:assumed-role/fluidity-control/fluidity")
	c.AddCluster("fluidity")
	c.AddTaskDefinition("fluidity-exit:1")
	c.AddSubnet("subnet-0a")
	c.AddSecurityGroup("sg-exit")
	awsCfg := c.Config(lambdaKey)
	w.cloud, w.ecs = c, ecs.NewFromConfig(awsCfg)
	cfg := Config{
		Cluster:        "fluidity",
		TaskDefinition: "fluidity-exit",
		Subnets:        []string{"subnet-0a"},
		SecurityGroups: []string{"sg-exit"},
		Allow:          []string{alice, bobRole},
		PollInterval:   20 * time.Millisecond,
		ECS:            w.ecs,
		EC2:            ec2.NewFromConfig(awsCfg),
		SSM:            ssm.NewFromConfig(awsCfg),
		Now:            clock,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w.plane = p
	return w
}

// advance moves the clock of the plane and of the fake's tasks ahead.
func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.skew += d
	w.mu.Unlock()
}

func (w *world) live(t *testing.T) []awsfake.Task {
	t.Helper()
	var live []awsfake.Task
	for _, task := range w.cloud.Tasks() {
		if task.DesiredStatus == "RUNNING" {
			live = append(live, task)
		}
	}
	return live
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantCode(t *testing.T, err error, status int, code string) *controlapi.Error {
	t.Helper()
	var ce *controlapi.Error
	if !errors.As(err, &ce) || ce.Status != status || ce.Code != code {
		t.Fatalf("error %v; want %d %s", err, status, code)
	}
	return ce
}

func TestWakeStartsATaskOfTheCallersOwnAndQueryFindsItsAddress(t *testing.T) {
	w := newWorld(t, nil)
	st, err := w.plane.Wake(ctx(t), alice, "wake-1")
	if err != nil {
		t.Fatal(err)
	}
	if st.Owner != alice || st.Task == "" || st.CreatedAt == nil {
		t.Fatalf("wake: %+v", st)
	}
	task, ok := w.cloud.Task(st.Task)
	if !ok {
		t.Fatalf("task %s not in the fake", st.Task)
	}
	// The wake answers at once, before the task runs; on a loaded machine
	// the fake's task may reach RUNNING (after 40 ms) before the answer,
	// and only then may it say ready.
	if st.State != controlapi.Starting && (st.State != controlapi.Ready || task.LastStatus != "RUNNING") {
		t.Fatalf("wake: %+v with the task %s; want starting", st, task.LastStatus)
	}
	if task.Tags[OwnerTag] != alice || !strings.HasPrefix(task.StartedBy, StartedByPrefix) || len(task.StartedBy) > 128 ||
		!task.AssignPublicIP || task.Subnets[0] != "subnet-0a" || task.SecurityGroups[0] != "sg-exit" || task.ClientToken == "" {
		t.Fatalf("task as started: %+v", task)
	}
	if strings.Contains(task.StartedBy, "alice") {
		t.Fatalf("startedBy %q carries the ARN rather than a hash of it", task.StartedBy)
	}

	// One long poll sees it through to ready: the agent does not poll.
	calls := w.cloud.CallCount("ecs:ListTasks")
	st, err = w.plane.Query(ctx(t), alice, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	task, _ = w.cloud.Task(st.Task)
	if st.State != controlapi.Ready || st.Address != net.JoinHostPort(task.PublicIP, "8443") || st.Status != "RUNNING" {
		t.Fatalf("query: %+v (task's public IP %s)", st, task.PublicIP)
	}
	if w.cloud.CallCount("ecs:ListTasks") == calls {
		t.Fatal("the query answered without asking ECS")
	}

	// Waking again returns the same task.
	again, err := w.plane.Wake(ctx(t), alice, "wake-2")
	if err != nil || again.Task != st.Task || again.State != controlapi.Ready {
		t.Fatalf("second wake: %+v, %v; want the running task %s", again, err, st.Task)
	}
	if n := len(w.live(t)); n != 1 {
		t.Fatalf("%d live tasks after two wakes, want 1", n)
	}
}

func TestAFloodOfWakesStartsOneTask(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wakeID func(i int) string
	}{
		{"retries of one wake", func(int) string { return "same-wake" }},
		{"wakes with different IDs (two machines)", func(i int) string { return "wake-" + string(rune('a'+i)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			var wg sync.WaitGroup
			states := make([]controlapi.State, 10)
			errs := make([]error, 10)
			for i := range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					states[i], errs[i] = w.plane.Wake(ctx(t), alice, tc.wakeID(i))
				}()
			}
			wg.Wait()
			for i := range 10 {
				if errs[i] != nil {
					t.Fatalf("wake %d: %v", i, errs[i])
				}
				if states[i].Task != states[0].Task {
					t.Fatalf("wake %d got task %s, wake 0 got %s: every wake must settle on one task", i, states[i].Task, states[0].Task)
				}
			}
			if live := w.live(t); len(live) != 1 || live[0].ARN != states[0].Task {
				t.Fatalf("live tasks %d (want 1, %s)", len(live), states[0].Task)
			}
			for _, task := range w.cloud.Tasks() {
				if task.DesiredStatus == "STOPPED" && !strings.Contains(task.StoppedReason, "duplicate") {
					t.Fatalf("task %s stopped for %q", task.ID, task.StoppedReason)
				}
			}
		})
	}
}

func TestEachIdentityHasItsOwnTaskAndKillStopsOnlyTheCallers(t *testing.T) {
	w := newWorld(t, nil)
	a, err := w.plane.Wake(ctx(t), alice, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := w.plane.Wake(ctx(t), bobSession, "b")
	if err != nil {
		t.Fatal(err)
	}
	if a.Task == b.Task || b.Owner != bobRole {
		t.Fatalf("alice's task %s, bob's %s owned by %s; want two tasks, bob's owned by his role", a.Task, b.Task, b.Owner)
	}
	// Another session of bob's role is bob's role: the same task.
	b2, err := w.plane.Wake(ctx(t), "arn:aws:sts::111122223333:assumed-role/dev/botocore-session-17", "b2")
	if err != nil || b2.Task != b.Task {
		t.Fatalf("another session of the role got %+v, %v; want task %s", b2, err, b.Task)
	}

	st, err := w.plane.Kill(ctx(t), alice)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != controlapi.Stopped || st.Task != a.Task {
		t.Fatalf("kill: %+v", st)
	}
	if task, _ := w.cloud.Task(a.Task); task.DesiredStatus != "STOPPED" {
		t.Fatalf("alice's task is %s after her kill", task.DesiredStatus)
	}
	if task, _ := w.cloud.Task(b.Task); task.DesiredStatus != "RUNNING" {
		t.Fatalf("bob's task is %s after alice's kill: %s", task.DesiredStatus, task.StoppedReason)
	}
	// Alice's query now says stopped, with the reason; bob's still runs.
	st, err = w.plane.Query(ctx(t), alice, 0)
	if err != nil || st.State != controlapi.Stopped || !strings.Contains(st.Reason, "stopped by its owner") {
		t.Fatalf("alice's query after kill: %+v, %v", st, err)
	}
	// A kill with nothing running says so.
	w.plane.Kill(ctx(t), alice)
	if st, err := w.plane.Kill(ctx(t), alice); err != nil || st.State != controlapi.Stopped {
		t.Fatalf("second kill: %+v, %v", st, err)
	}
}

func TestQueryReportsWhyTheTaskStopped(t *testing.T) {
	w := newWorld(t, nil)
	st, err := w.plane.Query(ctx(t), alice, 0)
	if err != nil || st.State != controlapi.Stopped || st.Task != "" {
		t.Fatalf("query with no task: %+v, %v", st, err)
	}
	w.cloud.SetStartFailure("CannotPullContainerError: pull image manifest has been retried 5 time(s)")
	woke, err := w.plane.Wake(ctx(t), alice, "w")
	if err != nil {
		t.Fatal(err)
	}
	st, err = w.plane.Query(ctx(t), alice, 10*time.Second)
	if err != nil || st.State != controlapi.Stopped || st.Task != woke.Task || !strings.Contains(st.Reason, "CannotPullContainerError") {
		t.Fatalf("query of a task that failed to start: %+v, %v", st, err)
	}
}

func TestOnlyAllowedVerifiedCallersGetIn(t *testing.T) {
	w := newWorld(t, nil)
	_, err := w.plane.Wake(ctx(t), stranger, "x")
	ce := wantCode(t, err, http.StatusForbidden, controlapi.CodeNotAllowed)
	if !strings.Contains(ce.Message, stranger) {
		t.Errorf("message %q does not name the caller", ce.Message)
	}
	_, err = w.plane.Query(ctx(t), stranger, 0)
	wantCode(t, err, http.StatusForbidden, controlapi.CodeNotAllowed)
	_, err = w.plane.Kill(ctx(t), stranger)
	wantCode(t, err, http.StatusForbidden, controlapi.CodeNotAllowed)
	_, err = w.plane.Wake(ctx(t), "", "x")
	wantCode(t, err, http.StatusUnauthorized, controlapi.CodeNoIdentity)
	_, err = w.plane.Wake(ctx(t), "arn:aws:iam::111122223333:group/devs", "x")
	wantCode(t, err, http.StatusForbidden, controlapi.CodeNotAllowed)
	_, err = w.plane.Wake(ctx(t), alice, "no spaces allowed")
	wantCode(t, err, http.StatusBadRequest, controlapi.CodeBadRequest)
	if n := w.cloud.CallCount("ecs:RunTask") + w.cloud.CallCount("ecs:ListTasks"); n != 0 {
		t.Fatalf("%d ECS calls for refused callers; want none", n)
	}
}

func TestAWSRefusalsBecomeErrorsAPersonCanActOn(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(w *world)
		config  func(c *Config)
		status  int
		code    string
		mention string
	}{
		{"RunTask not permitted", func(w *world) {
			w.cloud.FailNext("ecs:RunTask", 1, awsfake.APIError{Code: "AccessDeniedException",
				Message: "User: arn:aws:sts::111122223333:assumed-role/fluidity-control/fluidity is not authorized to perform: ecs:RunTask"})
		}, nil, http.StatusBadGateway, controlapi.CodePermission, "ecs:RunTask"},
		{"no Fargate capacity", func(w *world) {
			w.cloud.SetRunFailure("Capacity is unavailable at this time. Please try again later or in a different availability zone")
		}, nil, http.StatusServiceUnavailable, controlapi.CodeNoCapacity, "Capacity is unavailable"},
		{"a subnet that does not exist", nil, func(c *Config) { c.Subnets = []string{"subnet-gone"} },
			http.StatusBadGateway, controlapi.CodeBadConfig, "subnet-gone"},
		{"no cluster", nil, func(c *Config) { c.Cluster = "missing" }, http.StatusBadGateway, controlapi.CodeBadConfig, "fluidity aws deploy"},
		{"throttled", func(w *world) {
			w.cloud.FailNext("ecs:ListTasks", 1, awsfake.APIError{Code: "ThrottlingException", Message: "Rate exceeded"})
		}, nil, http.StatusTooManyRequests, controlapi.CodeThrottled, "Rate exceeded"},
		{"ECS failing", func(w *world) {
			w.cloud.FailNext("ecs:ListTasks", 1, awsfake.APIError{Status: 500, Code: "ServerException", Message: "Service Unavailable"})
		}, nil, http.StatusServiceUnavailable, controlapi.CodeUnavailable, "ServerException"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.config)
			if tc.setup != nil {
				tc.setup(w)
			}
			_, err := w.plane.Wake(ctx(t), alice, "w")
			ce := wantCode(t, err, tc.status, tc.code)
			if !strings.Contains(ce.Message, tc.mention) {
				t.Errorf("message %q does not mention %q", ce.Message, tc.mention)
			}
			if n := len(w.live(t)); n != 0 {
				t.Errorf("%d tasks left running after a failed wake", n)
			}
		})
	}
}

func TestARunningTaskWithoutAPublicAddressIsAnError(t *testing.T) {
	w := newWorld(t, nil)
	if _, err := w.plane.Wake(ctx(t), alice, "w"); err != nil {
		t.Fatal(err)
	}
	w.cloud.FailNext("ec2:DescribeNetworkInterfaces", 0, awsfake.APIError{Code: "UnauthorizedOperation",
		Message: "You are not authorized to perform this operation."})
	_, err := w.plane.Query(ctx(t), alice, 10*time.Second)
	ce := wantCode(t, err, http.StatusBadGateway, controlapi.CodePermission)
	if !strings.Contains(ce.Message, "ec2:DescribeNetworkInterfaces") {
		t.Errorf("message %q does not name the call", ce.Message)
	}
}

// tag sets a task's tag as the exit does, with the SDK.
func (w *world) tag(t *testing.T, arn, key, value string) {
	t.Helper()
	_, err := w.ecs.TagResource(ctx(t), &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []types.Tag{{Key: aws.String(key), Value: aws.String(value)}}})
	if err != nil {
		t.Fatal(err)
	}
}

func (w *world) running(t *testing.T, caller, wakeID string) controlapi.State {
	t.Helper()
	if _, err := w.plane.Wake(ctx(t), caller, wakeID); err != nil {
		t.Fatal(err)
	}
	st, err := w.plane.Query(ctx(t), caller, 10*time.Second)
	if err != nil || st.State != controlapi.Ready {
		t.Fatalf("query: %+v, %v", st, err)
	}
	return st
}

func decisionFor(t *testing.T, rep SweepReport, task string) Decision {
	t.Helper()
	for _, d := range rep.Decisions {
		if d.Task == task {
			return d
		}
	}
	t.Fatalf("the sweep said nothing of %s: %+v", task, rep)
	return Decision{}
}

func TestSweepStopsWhatNobodyUsesAndKeepsWhatIsLeased(t *testing.T) {
	w := newWorld(t, nil)
	leased := w.running(t, alice, "a")
	expired := w.running(t, bobSession, "b")
	now := w.plane.cfg.Now()
	w.tag(t, leased.Task, LeaseTag, now.Add(4*time.Minute).UTC().Format(time.RFC3339))
	w.tag(t, expired.Task, LeaseTag, now.Add(-2*time.Minute).UTC().Format(time.RFC3339))

	rep, err := w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 2 || rep.Stopped != 1 {
		t.Fatalf("sweep %+v; want 2 checked, 1 stopped", rep)
	}
	if d := decisionFor(t, rep, leased.Task); d.Stop || d.Owner != alice {
		t.Fatalf("leased task: %+v", d)
	}
	if d := decisionFor(t, rep, expired.Task); !d.Stop || !strings.Contains(d.Reason, "lease expired") || d.Owner != bobRole {
		t.Fatalf("expired task: %+v", d)
	}
	if task, _ := w.cloud.Task(expired.Task); task.DesiredStatus != "STOPPED" || !strings.Contains(task.StoppedReason, "lease expired") {
		t.Fatalf("the expired task is %s (%s)", task.DesiredStatus, task.StoppedReason)
	}
	if task, _ := w.cloud.Task(leased.Task); task.DesiredStatus != "RUNNING" {
		t.Fatalf("the leased task is %s", task.DesiredStatus)
	}
}

func TestSweepStopsARunningTaskThatNeverLeased(t *testing.T) {
	w := newWorld(t, nil)
	st := w.running(t, alice, "a")
	rep, err := w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionFor(t, rep, st.Task); d.Stop {
		t.Fatalf("a task within its grace was stopped: %+v", d)
	}
	// The exit never renewed its lease (hung, or never came up): absence
	// means dead once the grace has passed.
	w.advance(w.plane.cfg.LeaseGrace + time.Second)
	rep, err = w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionFor(t, rep, st.Task); !d.Stop || !strings.Contains(d.Reason, "no lease") {
		t.Fatalf("a task without a lease past its grace: %+v", d)
	}
}

func TestSweepEnforcesTheMaximumLifetimeOverALease(t *testing.T) {
	w := newWorld(t, nil)
	st := w.running(t, alice, "a")
	w.advance(12*time.Hour + time.Minute)
	// A lease renewed a moment ago, as by an exit with an open stream.
	w.tag(t, st.Task, LeaseTag, w.plane.cfg.Now().Add(5*time.Minute).UTC().Format(time.RFC3339))
	rep, err := w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionFor(t, rep, st.Task); !d.Stop || !strings.Contains(d.Reason, "maximum lifetime") {
		t.Fatalf("a 12-hour-old task: %+v", d)
	}
}

func TestSweepStopsATaskThatNeverStarts(t *testing.T) {
	w := newWorld(t, nil)
	w.cloud.SetHold(true)
	st, err := w.plane.Wake(ctx(t), alice, "a")
	if err != nil {
		t.Fatal(err)
	}
	w.advance(9 * time.Minute)
	rep, _ := w.plane.Sweep(ctx(t))
	if d := decisionFor(t, rep, st.Task); d.Stop {
		t.Fatalf("stopped a task still within its start time: %+v", d)
	}
	w.advance(2 * time.Minute)
	rep, _ = w.plane.Sweep(ctx(t))
	if d := decisionFor(t, rep, st.Task); !d.Stop || !strings.Contains(d.Reason, "not running") {
		t.Fatalf("a task stuck starting for 11m: %+v", d)
	}
}

func TestSweepKeepsTheOldestOfDuplicatesAndLeavesOtherTasksAlone(t *testing.T) {
	w := newWorld(t, nil)
	first := w.running(t, alice, "a")
	// A duplicate that slipped past a wake (RunTask with the same owner
	// key, as a racing wake on another machine would have made it).
	task, _ := w.cloud.Task(first.Task)
	out, err := w.ecs.RunTask(ctx(t), &ecs.RunTaskInput{
		Cluster: aws.String("fluidity"), TaskDefinition: aws.String("fluidity-exit"), LaunchType: types.LaunchTypeFargate,
		StartedBy: aws.String(task.StartedBy),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets: []string{"subnet-0a"}, AssignPublicIp: types.AssignPublicIpEnabled}},
		Tags: []types.Tag{{Key: aws.String(OwnerTag), Value: aws.String(alice)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dup := aws.ToString(out.Tasks[0].TaskArn)
	// Someone else's task in the same cluster, not started by us.
	other, err := w.ecs.RunTask(ctx(t), &ecs.RunTaskInput{
		Cluster: aws.String("fluidity"), TaskDefinition: aws.String("fluidity-exit"), LaunchType: types.LaunchTypeFargate,
		StartedBy:            aws.String("ops-batch-job"),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-0a"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.tag(t, first.Task, LeaseTag, w.plane.cfg.Now().Add(5*time.Minute).UTC().Format(time.RFC3339))
	w.advance(time.Hour) // long past every grace: only ours may be judged
	w.tag(t, first.Task, LeaseTag, w.plane.cfg.Now().Add(5*time.Minute).UTC().Format(time.RFC3339))

	rep, err := w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if d := decisionFor(t, rep, dup); !d.Stop || !strings.Contains(d.Reason, "duplicate") {
		t.Fatalf("the duplicate: %+v", d)
	}
	if d := decisionFor(t, rep, first.Task); d.Stop {
		t.Fatalf("the original: %+v", d)
	}
	for _, d := range rep.Decisions {
		if d.Task == aws.ToString(other.Tasks[0].TaskArn) {
			t.Fatalf("the sweep judged a task it did not start: %+v", d)
		}
	}
	if task, _ := w.cloud.Task(aws.ToString(other.Tasks[0].TaskArn)); task.DesiredStatus != "RUNNING" {
		t.Fatalf("someone else's task is %s", task.DesiredStatus)
	}
}

func TestSweepFollowsPagesAndSurvivesAFailedStop(t *testing.T) {
	w := newWorld(t, nil)
	// More tasks than one ListTasks page (100) and one DescribeTasks call.
	for i := range 105 {
		arn := "arn:aws:iam::111122223333:user/u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		ownerKey := ownerFor(arn).key
		_, err := w.ecs.RunTask(ctx(t), &ecs.RunTaskInput{
			Cluster: aws.String("fluidity"), TaskDefinition: aws.String("fluidity-exit"), LaunchType: types.LaunchTypeFargate,
			StartedBy:            aws.String(ownerKey),
			NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{Subnets: []string{"subnet-0a"}}},
			Tags:                 []types.Tag{{Key: aws.String(OwnerTag), Value: aws.String(arn)}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	w.cloud.WaitTasks(ctx(t), func(ts []awsfake.Task) bool {
		for _, task := range ts {
			if task.LastStatus != "RUNNING" {
				return false
			}
		}
		return true
	})
	w.advance(w.plane.cfg.LeaseGrace + time.Minute)
	w.cloud.FailNext("ecs:StopTask", 1, awsfake.APIError{Status: 500, Code: "ServerException", Message: "try again"})
	rep, err := w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 105 || rep.Stopped != 104 {
		t.Fatalf("sweep checked %d and stopped %d; want 105 and 104 (one stop failed)", rep.Checked, rep.Stopped)
	}
	failed := 0
	for _, d := range rep.Decisions {
		if d.Err != "" {
			failed++
		}
	}
	if failed != 1 {
		t.Fatalf("%d decisions carry an error, want 1", failed)
	}
	// The next sweep gets the one that was left.
	rep, err = w.plane.Sweep(ctx(t))
	if err != nil || rep.Checked != 1 || rep.Stopped != 1 {
		t.Fatalf("second sweep %+v, %v", rep, err)
	}
}

func TestATaskIsTheCallersOnlyIfItsOwnerTagSaysSo(t *testing.T) {
	w := newWorld(t, nil)
	// A task carrying alice's startedBy but someone else's owner tag (a
	// hash collision, or someone imitating her key) is not hers.
	impostor, err := w.ecs.RunTask(ctx(t), &ecs.RunTaskInput{
		Cluster: aws.String("fluidity"), TaskDefinition: aws.String("fluidity-exit"), LaunchType: types.LaunchTypeFargate,
		StartedBy: aws.String(ownerFor(alice).key),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets: []string{"subnet-0a"}, AssignPublicIp: types.AssignPublicIpEnabled}},
		Tags: []types.Tag{{Key: aws.String(OwnerTag), Value: aws.String(stranger)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := w.plane.Wake(ctx(t), alice, "w")
	if err != nil {
		t.Fatal(err)
	}
	if st.Task == aws.ToString(impostor.Tasks[0].TaskArn) {
		t.Fatal("alice was given a task whose owner tag names someone else")
	}
	if _, err := w.plane.Kill(ctx(t), alice); err != nil {
		t.Fatal(err)
	}
	if task, _ := w.cloud.Task(aws.ToString(impostor.Tasks[0].TaskArn)); task.DesiredStatus != "RUNNING" {
		t.Fatalf("alice's kill stopped a task that is not hers: %s", task.StoppedReason)
	}
}
