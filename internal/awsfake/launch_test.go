package awsfake_test

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"

	"fluidity/internal/awsfake"
)

// fakeContainer is a launched container a test controls.
type fakeContainer struct {
	exited    chan struct{}
	once      sync.Once
	stops     atomic.Int32
	obeyStop  bool // exit when asked to stop
	publicIP  string
	container awsfake.Container
}

func newFakeContainer(publicIP string, obeyStop bool) *fakeContainer {
	f := &fakeContainer{exited: make(chan struct{}), obeyStop: obeyStop, publicIP: publicIP}
	f.container = awsfake.Container{PublicIP: publicIP, Exited: f.exited, Stop: func() {
		f.stops.Add(1)
		if f.obeyStop {
			f.exit()
		}
	}}
	return f
}

func (f *fakeContainer) exit() { f.once.Do(func() { close(f.exited) }) }

func runOne(t *testing.T, c *awsfake.Cloud, user string) string {
	t.Helper()
	out, err := ecs.NewFromConfig(c.Config(wakeKey)).RunTask(ctxT(t), runInput(user))
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Tasks[0].TaskArn)
}

func stopTask(t *testing.T, c *awsfake.Cloud, arn string) {
	t.Helper()
	if _, err := ecs.NewFromConfig(c.Config(wakeKey)).StopTask(ctxT(t), &ecs.StopTaskInput{Cluster: aws.String(clusterName), Task: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
}

func TestLaunch(t *testing.T) {
	t.Run("a container exiting on its own stops the task", func(t *testing.T) {
		f := newFakeContainer("127.0.0.3", true)
		c := newCloud(t, awsfake.CloudConfig{Launch: func(awsfake.Task) (awsfake.Container, error) { return f.container, nil }})
		arn := runOne(t, c, "alice")
		task := waitStatus(t, c, arn, "RUNNING")
		if task.PublicIP != "127.0.0.3" {
			t.Errorf("public IP %q; want the container's", task.PublicIP)
		}
		f.exit()
		task = waitStatus(t, c, arn, "STOPPED")
		if task.StopCode != "EssentialContainerExited" || task.StoppedReason != "Essential container in task exited" || task.DesiredStatus != "STOPPED" {
			t.Errorf("task = %+v", task)
		}
		if n := f.stops.Load(); n != 0 {
			t.Errorf("Stop called %d times on a container that exited; want 0", n)
		}
	})
	t.Run("a Launch error stops the task as failed to start", func(t *testing.T) {
		c := newCloud(t, awsfake.CloudConfig{Launch: func(awsfake.Task) (awsfake.Container, error) {
			return awsfake.Container{}, errors.New("exec: no such file")
		}})
		arn := runOne(t, c, "alice")
		task := waitStatus(t, c, arn, "STOPPED")
		if task.StopCode != "TaskFailedToStart" || task.StoppedReason != "CannotStartContainerError: exec: no such file" || !task.StartedAt.IsZero() {
			t.Errorf("task = %+v", task)
		}
	})
	t.Run("a container that ignores Stop is given up after StopTimeout", func(t *testing.T) {
		f := newFakeContainer("127.0.0.2", false)
		c := newCloud(t, awsfake.CloudConfig{StopTimeout: 200 * time.Millisecond, Launch: func(awsfake.Task) (awsfake.Container, error) { return f.container, nil }})
		t.Cleanup(f.exit) // runs before Close, which waits for it
		arn := runOne(t, c, "alice")
		waitStatus(t, c, arn, "RUNNING")
		start := time.Now()
		stopTask(t, c, arn)
		waitStatus(t, c, arn, "STOPPING")
		task := waitStatus(t, c, arn, "STOPPED")
		if waited := time.Since(start); waited < 200*time.Millisecond {
			t.Errorf("stopped after %v; want at least StopTimeout", waited)
		}
		if f.stops.Load() != 1 || task.StopCode != "UserInitiated" {
			t.Errorf("stops %d, task %+v", f.stops.Load(), task)
		}
	})
	t.Run("a container without Exited has exited once Stop returns", func(t *testing.T) {
		var stopped atomic.Bool
		c := newCloud(t, awsfake.CloudConfig{Launch: func(awsfake.Task) (awsfake.Container, error) {
			return awsfake.Container{Stop: func() { stopped.Store(true) }}, nil
		}})
		arn := runOne(t, c, "alice")
		waitStatus(t, c, arn, "RUNNING")
		stopTask(t, c, arn)
		waitStatus(t, c, arn, "STOPPED")
		if !stopped.Load() {
			t.Error("Stop was not called")
		}
	})
	t.Run("a task stopped while launching has its container stopped", func(t *testing.T) {
		f := newFakeContainer("127.0.0.2", true)
		entered, release := make(chan struct{}), make(chan struct{})
		c := newCloud(t, awsfake.CloudConfig{Launch: func(awsfake.Task) (awsfake.Container, error) {
			close(entered)
			<-release
			return f.container, nil
		}})
		arn := runOne(t, c, "alice")
		<-entered
		stopTask(t, c, arn)
		close(release)
		task := waitStatus(t, c, arn, "STOPPED")
		if f.stops.Load() != 1 || task.StopCode != "UserInitiated" || !task.StartedAt.IsZero() {
			t.Errorf("stops %d, task %+v", f.stops.Load(), task)
		}
	})
	t.Run("StopTaskAs calls Stop", func(t *testing.T) {
		f := newFakeContainer("127.0.0.2", true)
		c := newCloud(t, awsfake.CloudConfig{Launch: func(awsfake.Task) (awsfake.Container, error) { return f.container, nil }})
		arn := runOne(t, c, "alice")
		waitStatus(t, c, arn, "RUNNING")
		c.StopTaskAs(arn, "TerminationNotice", "Task stopped due to maintenance")
		task := waitStatus(t, c, arn, "STOPPED")
		if f.stops.Load() != 1 || task.StopCode != "TerminationNotice" {
			t.Errorf("stops %d, task %+v", f.stops.Load(), task)
		}
	})

	f := newFakeContainer("127.0.0.2", true)
	t.Run("Close stops the running containers", func(t *testing.T) {
		c := newCloud(t, awsfake.CloudConfig{Launch: func(awsfake.Task) (awsfake.Container, error) { return f.container, nil }})
		waitStatus(t, c, runOne(t, c, "alice"), "RUNNING")
	})
	select {
	case <-f.exited:
	default:
		t.Error("the container was not stopped when its test ended")
	}
}
