package ecse2e

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"fluidity/internal/awsfake"
	"fluidity/internal/ecstask"
	"fluidity/internal/proctest"
)

// runTask starts an exit task as the control plane does and returns it.
func runTask(t testing.TB, c *awsfake.Cloud) awsfake.Task {
	t.Helper()
	out, err := ecs.NewFromConfig(c.Config(planeKey)).RunTask(ctxFor(t, 10*time.Second), &ecs.RunTaskInput{
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
	return task
}

// waitLease waits until the lease tag on task arn satisfies ok and
// returns it.
func waitLease(t testing.TB, c *awsfake.Cloud, arn, what string, ok func(lease time.Time) bool) time.Time {
	t.Helper()
	var lease time.Time
	var raw string
	_, err := c.WaitTasks(ctxFor(t, 10*time.Second), func(ts []awsfake.Task) bool {
		for _, task := range ts {
			if task.ARN != arn {
				continue
			}
			raw = task.Tags[ecstask.LeaseTag]
			v, err := time.Parse(time.RFC3339, raw)
			if err != nil {
				return false
			}
			lease = v
			return ok(v)
		}
		return false
	})
	if err != nil {
		t.Fatalf("waiting for the lease %s: it is %q: %v", what, raw, err)
	}
	if raw != lease.UTC().Format(time.RFC3339) || !strings.HasSuffix(raw, "Z") {
		t.Fatalf("lease %q is not RFC 3339 UTC to the second", raw)
	}
	return lease
}

// exitStatus is the exit's /status.
type exitStatus struct {
	OpenStreams    int64      `json:"open_streams"`
	StreamsTotal   int64      `json:"streams_total"`
	LastActivity   time.Time  `json:"last_activity"`
	IdleForSeconds float64    `json:"idle_for_seconds"`
	ExitWhenIdle   string     `json:"exit_when_idle"`
	ExitWhenUnused string     `json:"exit_when_unused"`
	LeaseUntil     *time.Time `json:"lease_until"`
	Task           string     `json:"task"`
}

func readStatus(t testing.TB, admin string) exitStatus {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s exitStatus
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("/status: %v", err)
	}
	return s
}

func near(got, want time.Time, slack time.Duration) bool {
	d := got.Sub(want)
	return -slack <= d && d <= slack
}

// echoTarget echoes what it reads.
func echoTarget(t testing.TB) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) { io.Copy(c, c) })
}

// echoes checks that a tunnel to an echo target carries a round trip.
func echoes(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

// TestLeaseFollowsTheExitsUse runs an exit in a task of the Cloud, with
// the task's metadata endpoint in its environment as on ECS, and watches
// the lease tag on the task as the exit is used.
func TestLeaseFollowsTheExitsUse(t *testing.T) {
	t.Parallel()
	const interval = 200 * time.Millisecond
	c := newCloud(t, awsfake.CloudConfig{})
	task := runTask(t, c)
	certs := proctest.CertsInit(t)
	l := proctest.Launcher{Env: exitEnv(c, ecstask.MetadataEnv+"="+task.MetadataURI), Admin: true}
	started := time.Now()
	exit, exitAddr := l.StartExit(t, certs, "--allow-private", "--lease-interval", interval.String())

	first := waitLease(t, c, task.ARN, "at start", func(time.Time) bool { return true })
	t.Run("at start the lease is exit_when_unused (2m on ECS) from the start", func(t *testing.T) {
		if !near(first, started.Add(2*time.Minute), 3*time.Second) {
			t.Fatalf("lease %v, %v after the exit was started; want about 2m", first, first.Sub(started))
		}
		if !exit.WaitLog("task="+task.ARN, 1, 5*time.Second) {
			t.Fatalf("the exit did not log its task:\n%s", exit.Stderr())
		}
	})

	silent := openTunnel(t, certs, exitAddr, silentTarget(t).Addr())
	t.Run("while a stream is open the lease moves, exit_when_idle (5m on ECS) ahead", func(t *testing.T) {
		open := waitLease(t, c, task.ARN, "ahead of an open stream", func(v time.Time) bool { return near(v, time.Now().Add(5*time.Minute), 3*time.Second) })
		later := waitLease(t, c, task.ARN, "moving", func(v time.Time) bool { return v.After(open) })
		t.Logf("with a stream open the lease moved from %s to %s", open.Format(time.TimeOnly), later.Format(time.TimeOnly))
	})

	t.Run("a refused renewal is logged once and does not stop the exit", func(t *testing.T) {
		before := c.CallCount("ecs:TagResource")
		c.FailNext("ecs:TagResource", 0, awsfake.APIError{Code: "AccessDeniedException",
			Message: "User: " + exitRole + " is not authorized to perform: ecs:TagResource on resource: " + task.ARN})
		if !exit.WaitLog("lease: cannot renew it", 1, 10*time.Second) {
			t.Fatalf("no warning about the refused lease:\n%s", exit.Stderr())
		}
		deadline := time.Now().Add(10 * time.Second)
		for c.CallCount("ecs:TagResource") < before+4 {
			if time.Now().After(deadline) {
				t.Fatalf("the exit stopped trying to renew its lease (%d calls)", c.CallCount("ecs:TagResource")-before)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if n := exit.LogCount("lease: cannot renew it"); n != 1 || !strings.Contains(exit.Stderr(), "needs ecs:TagResource on its own task") {
			t.Fatalf("%d warnings for one run of refusals, want 1 naming the permission:\n%s", n, exit.Stderr())
		}
		echoes(t, openTunnel(t, certs, exitAddr, echoTarget(t).Addr()))
		c.ClearFaults()
		if !exit.WaitLog("lease: renewed again", 1, 10*time.Second) {
			t.Fatalf("the lease was not renewed after the refusals ended:\n%s", exit.Stderr())
		}
	})

	t.Run("once the streams close the lease is their close plus exit_when_idle, and stays", func(t *testing.T) {
		silent.Close()
		var s exitStatus
		deadline := time.Now().Add(10 * time.Second)
		for s = readStatus(t, exit.Admin()); s.OpenStreams != 0; s = readStatus(t, exit.Admin()) {
			if time.Now().After(deadline) {
				t.Fatalf("streams still open: %+v", s)
			}
			time.Sleep(20 * time.Millisecond)
		}
		want := s.LastActivity.Add(5 * time.Minute).Truncate(time.Second)
		if want.Before(s.LastActivity.Add(5 * time.Minute)) {
			want = want.Add(time.Second)
		}
		idle := waitLease(t, c, task.ARN, "after the last close", func(v time.Time) bool { return v.Equal(want) })
		// The fake sets the tag before it records the call; once the exit
		// reports the lease, the call has been answered, so recorded.
		deadline = time.Now().Add(10 * time.Second)
		for s = readStatus(t, exit.Admin()); s.LeaseUntil == nil || !s.LeaseUntil.Equal(idle); s = readStatus(t, exit.Admin()) {
			if time.Now().After(deadline) {
				t.Fatalf("/status reports lease %v, want %v", s.LeaseUntil, idle)
			}
			time.Sleep(20 * time.Millisecond)
		}
		calls := c.CallCount("ecs:TagResource")
		// Watch several renewal intervals: nothing may be written.
		time.Sleep(6 * interval)
		if n := c.CallCount("ecs:TagResource") - calls; n != 0 {
			t.Fatalf("TagResource called %d times while the exit was idle", n)
		}
		if got := waitLease(t, c, task.ARN, "unchanged", func(time.Time) bool { return true }); !got.Equal(idle) {
			t.Fatalf("the lease moved from %v to %v while the exit was idle", idle, got)
		}
		s = readStatus(t, exit.Admin())
		if s.Task != task.ARN || s.LeaseUntil == nil || !s.LeaseUntil.Equal(idle) || s.ExitWhenIdle != "5m0s" || s.ExitWhenUnused != "2m0s" || s.StreamsTotal != 2 {
			t.Fatalf("/status %+v; want task %s, lease %v", s, task.ARN, idle)
		}
		cmd := exec.Command(proctest.Binary(), "status", "--admin", exit.Admin())
		cmd.Env = proctest.Env()
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), task.ARN) || !strings.Contains(string(out), "Lease:") {
			t.Fatalf("fluidity status: %v\n%s", err, out)
		}
		t.Logf("fluidity status says:\n%s", out)
	})

	for _, call := range c.Calls() {
		if call.Op == "ecs:TagResource" && call.Caller != exitRole {
			t.Errorf("TagResource called as %q, want the exit's task role", call.Caller)
		}
	}
}

// TestTaskEndsWhenItsExitIsIdle launches the exit as the task's container:
// the task gets its lease, and stops when the unused exit stops itself.
func TestTaskEndsWhenItsExitIsIdle(t *testing.T) {
	t.Parallel()
	certs := proctest.CertsInit(t)
	exits := make(chan *proctest.Proc, 1)
	var c *awsfake.Cloud
	c = newCloud(t, awsfake.CloudConfig{Launch: func(task awsfake.Task) (awsfake.Container, error) {
		l := proctest.Launcher{Env: exitEnv(c, ecstask.MetadataEnv+"="+task.MetadataURI)}
		p := l.Start(t, "exit", l.ExitArgs(certs, proctest.FreeAddr(t), "--exit-when-unused", "2s", "--lease-interval", "200ms")...)
		exits <- p
		return awsfake.Container{
			Exited: p.Done(),
			Stop: func() {
				if proc, err := os.FindProcess(p.Pid()); err == nil && !p.Exited() {
					proc.Signal(syscall.SIGTERM)
				}
			},
		}, nil
	}})
	arn := runTask(t, c).ARN
	exit := <-exits
	waitLease(t, c, arn, "from the launched exit", func(time.Time) bool { return true })
	ts, err := c.WaitTasks(ctxFor(t, 15*time.Second), func(ts []awsfake.Task) bool { return ts[0].LastStatus == "STOPPED" })
	if err != nil {
		t.Fatalf("the task did not stop: %v\n%s", err, exit.Stderr())
	}
	if code := exit.WaitExit(t, 5*time.Second); code != 0 {
		t.Fatalf("the exit ended with status %d:\n%s", code, exit.Stderr())
	}
	task := ts[0]
	t.Logf("the task ran %v, stopped with %s (%s)", task.StoppingAt.Sub(task.StartedAt).Round(time.Millisecond), task.StopCode, task.StoppedReason)
	if task.StopCode != "EssentialContainerExited" || !strings.Contains(exit.Stderr(), "exit_when_unused") {
		t.Fatalf("the task stopped with %s (%s), want its container's exit after exit_when_unused:\n%s", task.StopCode, task.StoppedReason, exit.Stderr())
	}
}
