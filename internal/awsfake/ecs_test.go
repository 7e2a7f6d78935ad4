package awsfake_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"fluidity/internal/awsfake"
)

func describe(t *testing.T, c *ecs.Client, arn string, include ...ecstypes.TaskField) ecstypes.Task {
	t.Helper()
	out, err := c.DescribeTasks(ctxT(t), &ecs.DescribeTasksInput{Cluster: aws.String(clusterName), Tasks: []string{arn}, Include: include})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 1 || len(out.Failures) != 0 {
		t.Fatalf("DescribeTasks = %d tasks, failures %+v; want 1 task", len(out.Tasks), out.Failures)
	}
	return out.Tasks[0]
}

// eniDetails returns the details of a task's ENI attachment by name.
func eniDetails(t *testing.T, task ecstypes.Task) (status string, details map[string]string) {
	t.Helper()
	if len(task.Attachments) != 1 || aws.ToString(task.Attachments[0].Type) != "ElasticNetworkInterface" {
		t.Fatalf("attachments = %+v; want one ElasticNetworkInterface", task.Attachments)
	}
	details = map[string]string{}
	for _, d := range task.Attachments[0].Details {
		details[aws.ToString(d.Name)] = aws.ToString(d.Value)
	}
	return aws.ToString(task.Attachments[0].Status), details
}

func waitStatus(t *testing.T, c *awsfake.Cloud, arn, status string) awsfake.Task {
	t.Helper()
	ts, err := c.WaitTasks(ctxT(t), func(ts []awsfake.Task) bool {
		for _, task := range ts {
			if task.ARN == arn {
				return task.LastStatus == status
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("task %s never %s: %v (tasks %+v)", arn, status, err, ts)
	}
	task, _ := c.Task(arn)
	return task
}

// TestTaskLifecycle follows one task from RunTask to STOPPED through the
// calls the control plane makes, holding it at each status: SetHold keeps
// it PROVISIONING and Launch keeps it PENDING.
func TestTaskLifecycle(t *testing.T) {
	launched := make(chan awsfake.Task, 1)
	release := make(chan struct{})
	exited := make(chan struct{})
	var stops int
	var mu sync.Mutex
	c := newCloud(t, awsfake.CloudConfig{Launch: func(task awsfake.Task) (awsfake.Container, error) {
		launched <- task
		<-release
		return awsfake.Container{PublicIP: "127.0.0.2", Exited: exited, Stop: func() {
			mu.Lock()
			defer mu.Unlock()
			if stops++; stops == 1 {
				close(exited)
			}
		}}, nil
	}})
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))
	ec2C := ec2.NewFromConfig(c.Config(wakeKey))

	c.SetHold(true)
	in := runInput("alice")
	in.Overrides = &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{
		Name:        aws.String("exit"),
		Environment: []ecstypes.KeyValuePair{{Name: aws.String("FLUIDITY_USER"), Value: aws.String("alice")}},
	}}}
	out, err := ecsC.RunTask(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Tasks) != 1 || len(out.Failures) != 0 {
		t.Fatalf("RunTask = %+v", out)
	}
	arn := aws.ToString(out.Tasks[0].TaskArn)
	id := arn[strings.LastIndex(arn, "/")+1:]
	if want := "arn:aws:ecs:us-east-1:111122223333:task/fluidity/"; !strings.HasPrefix(arn, want) || len(id) != 32 {
		t.Errorf("task ARN %s; want %s<32 hex>", arn, want)
	}

	t.Run("a new task is PROVISIONING with its ENI not yet created", func(t *testing.T) {
		task := describe(t, ecsC, arn)
		if got := aws.ToString(task.LastStatus); got != "PROVISIONING" || aws.ToString(task.DesiredStatus) != "RUNNING" {
			t.Errorf("status %s desired %s", got, aws.ToString(task.DesiredStatus))
		}
		status, details := eniDetails(t, task)
		if status != "PRECREATED" || details["subnetId"] != subnetID || details["networkInterfaceId"] != "" {
			t.Errorf("ENI %s %v; want PRECREATED with only the subnet", status, details)
		}
		if task.CreatedAt == nil || task.StartedAt != nil {
			t.Errorf("createdAt %v startedAt %v; want created, not started", task.CreatedAt, task.StartedAt)
		}
		if got := aws.ToString(task.TaskDefinitionArn); got != "arn:aws:ecs:us-east-1:111122223333:task-definition/fluidity-exit:3" {
			t.Errorf("taskDefinitionArn %s", got)
		}
		if aws.ToString(task.ClusterArn) != "arn:aws:ecs:us-east-1:111122223333:cluster/fluidity" ||
			aws.ToString(task.StartedBy) != "alice" || aws.ToString(task.Group) != "family:fluidity-exit" ||
			task.LaunchType != ecstypes.LaunchTypeFargate || aws.ToString(task.Cpu) != "256" || aws.ToString(task.Memory) != "512" {
			t.Errorf("task = %+v", task)
		}
	})

	c.SetHold(false)
	var snap awsfake.Task
	select {
	case snap = <-launched:
	case <-ctx.Done():
		t.Fatal("Launch was never called")
	}
	t.Run("Launch gets the task as it leaves PENDING, with its ENI and environment", func(t *testing.T) {
		if snap.ARN != arn || snap.LastStatus != "PENDING" || snap.ENI == "" || snap.PrivateIP == "" || snap.Env["FLUIDITY_USER"] != "alice" {
			t.Errorf("Launch got %+v", snap)
		}
		if snap.Caller != wakeARN || !snap.AssignPublicIP || !slices.Equal(snap.Subnets, []string{subnetID}) || !slices.Equal(snap.SecurityGroups, []string{groupID}) {
			t.Errorf("Launch got %+v", snap)
		}
		if !strings.HasPrefix(snap.MetadataURI, c.URL+"/") {
			t.Errorf("MetadataURI %s is not under %s", snap.MetadataURI, c.URL)
		}
	})
	t.Run("a PENDING task has its ENI attached, without a public IP until the container runs", func(t *testing.T) {
		task := describe(t, ecsC, arn)
		if got := aws.ToString(task.LastStatus); got != "PENDING" {
			t.Errorf("status %s; want PENDING", got)
		}
		status, details := eniDetails(t, task)
		if status != "ATTACHED" || details["networkInterfaceId"] != snap.ENI || details["privateIPv4Address"] != snap.PrivateIP || details["macAddress"] == "" {
			t.Errorf("ENI %s %v", status, details)
		}
		nis, err := ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{snap.ENI}})
		if err != nil {
			t.Fatal(err)
		}
		if len(nis.NetworkInterfaces) != 1 || nis.NetworkInterfaces[0].Association != nil {
			t.Errorf("interfaces = %+v; want one without an association", nis.NetworkInterfaces)
		}
	})

	close(release)
	waitStatus(t, c, arn, "RUNNING")
	t.Run("a RUNNING task's ENI has the container's public IP", func(t *testing.T) {
		task := describe(t, ecsC, arn)
		if aws.ToString(task.LastStatus) != "RUNNING" || task.StartedAt == nil || task.StartedAt.Before(*task.CreatedAt) {
			t.Errorf("status %s startedAt %v", aws.ToString(task.LastStatus), task.StartedAt)
		}
		nis, err := ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{snap.ENI}})
		if err != nil {
			t.Fatal(err)
		}
		ni := nis.NetworkInterfaces[0]
		if aws.ToString(ni.NetworkInterfaceId) != snap.ENI || ni.Association == nil || aws.ToString(ni.Association.PublicIp) != "127.0.0.2" ||
			aws.ToString(ni.PrivateIpAddress) != snap.PrivateIP || aws.ToString(ni.SubnetId) != subnetID || len(ni.Groups) != 1 {
			t.Errorf("interface = %+v", ni)
		}
	})

	t.Run("tags appear with include TAGS only", func(t *testing.T) {
		if _, err := ecsC.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []ecstypes.Tag{
			{Key: aws.String("fluidity:last-activity"), Value: aws.String("2026-11-22T10:00:00Z")},
			{Key: aws.String("fluidity:user"), Value: aws.String("alice")},
		}}); err != nil {
			t.Fatal(err)
		}
		if task := describe(t, ecsC, arn); len(task.Tags) != 0 {
			t.Errorf("tags without include: %+v", task.Tags)
		}
		task := describe(t, ecsC, arn, ecstypes.TaskFieldTags)
		if len(task.Tags) != 2 || aws.ToString(task.Tags[1].Key) != "fluidity:user" || aws.ToString(task.Tags[1].Value) != "alice" {
			t.Errorf("tags = %+v", task.Tags)
		}
		if _, err := ecsC.UntagResource(ctx, &ecs.UntagResourceInput{ResourceArn: aws.String(arn), TagKeys: []string{"fluidity:user"}}); err != nil {
			t.Fatal(err)
		}
		lt, err := ecsC.ListTagsForResource(ctx, &ecs.ListTagsForResourceInput{ResourceArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		if len(lt.Tags) != 1 || aws.ToString(lt.Tags[0].Key) != "fluidity:last-activity" {
			t.Errorf("ListTagsForResource = %+v", lt.Tags)
		}
	})

	t.Run("StopTask sets the desired status at once and asks the container to stop", func(t *testing.T) {
		st, err := ecsC.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(clusterName), Task: aws.String(id), Reason: aws.String("idle for 15m")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(st.Task.DesiredStatus) != "STOPPED" || st.Task.StopCode != ecstypes.TaskStopCodeUserInitiated || st.Task.StoppingAt == nil {
			t.Errorf("StopTask = %+v", st.Task)
		}
		task := waitStatus(t, c, arn, "STOPPED")
		mu.Lock()
		n := stops
		mu.Unlock()
		if n != 1 {
			t.Errorf("Stop called %d times; want 1", n)
		}
		if task.StoppedReason != "idle for 15m" || task.StopCode != "UserInitiated" || task.StoppedAt.IsZero() {
			t.Errorf("stopped task = %+v", task)
		}
	})
	t.Run("a STOPPED task stays described, its ENI deleted", func(t *testing.T) {
		task := describe(t, ecsC, arn)
		if aws.ToString(task.LastStatus) != "STOPPED" || aws.ToString(task.StoppedReason) != "idle for 15m" || task.StoppedAt == nil || task.StoppedAt.Before(*task.StoppingAt) {
			t.Errorf("task = %+v", task)
		}
		if status, _ := eniDetails(t, task); status != "DELETED" {
			t.Errorf("ENI %s; want DELETED", status)
		}
		_, err := ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{snap.ENI}})
		if apiCode(err) != "InvalidNetworkInterfaceID.NotFound" {
			t.Errorf("err = %v; want InvalidNetworkInterfaceID.NotFound", err)
		}
	})
	t.Run("stopping a stopped task returns it unchanged", func(t *testing.T) {
		st, err := ecsC.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(clusterName), Task: aws.String(arn), Reason: aws.String("again")})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(st.Task.StoppedReason) != "idle for 15m" || aws.ToString(st.Task.LastStatus) != "STOPPED" {
			t.Errorf("StopTask = %+v", st.Task)
		}
	})
}

func TestTaskRunsWithoutLaunch(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))
	in := runInput("bob")
	in.LaunchType = ""
	in.CapacityProviderStrategy = []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 1}}
	out, err := ecsC.RunTask(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.Tasks[0].TaskArn)
	task := waitStatus(t, c, arn, "RUNNING")
	if ip, err := netip.ParseAddr(task.PublicIP); err != nil || !netip.MustParsePrefix("203.0.113.0/24").Contains(ip) {
		t.Errorf("public IP %q; want one in 203.0.113.0/24", task.PublicIP)
	}
	d := describe(t, ecsC, arn)
	if aws.ToString(d.CapacityProviderName) != "FARGATE_SPOT" || d.LaunchType != ecstypes.LaunchTypeFargate {
		t.Errorf("capacity provider %q launch type %q", aws.ToString(d.CapacityProviderName), d.LaunchType)
	}
	ec2C := ec2.NewFromConfig(c.Config(wakeKey))
	nis, err := ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{task.ENI}})
	if err != nil || aws.ToString(nis.NetworkInterfaces[0].Association.PublicIp) != task.PublicIP {
		t.Errorf("DescribeNetworkInterfaces = %+v, %v", nis, err)
	}
	filtered := func(name, value string) ([]ec2types.NetworkInterface, error) {
		out, err := ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{Filters: []ec2types.Filter{{Name: aws.String(name), Values: []string{value}}}})
		if err != nil {
			return nil, err
		}
		return out.NetworkInterfaces, nil
	}
	if nis, err := filtered("private-ip-address", task.PrivateIP); err != nil || len(nis) != 1 || aws.ToString(nis[0].NetworkInterfaceId) != task.ENI {
		t.Errorf("by private IP: %+v, %v", nis, err)
	}
	if nis, err := filtered("private-ip-address", "10.9.9.9"); err != nil || len(nis) != 0 {
		t.Errorf("by another private IP: %+v, %v", nis, err)
	}
	if _, err := filtered("tag:fluidity", "x"); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("an unknown filter: %v; want InvalidParameterValue", err)
	}
}

func TestRunTaskClientToken(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))

	t.Run("ten concurrent calls with one token start one task", func(t *testing.T) {
		arns := make([]string, 10)
		errs := make([]error, 10)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				in := runInput("alice")
				in.ClientToken = aws.String("wake-alice-1")
				out, err := ecsC.RunTask(ctx, in)
				if errs[i] = err; err == nil && len(out.Tasks) == 1 {
					arns[i] = aws.ToString(out.Tasks[0].TaskArn)
				}
			})
		}
		wg.Wait()
		for i := range 10 {
			if errs[i] != nil || arns[i] == "" || arns[i] != arns[0] {
				t.Errorf("call %d: %s, %v; want %s", i, arns[i], errs[i], arns[0])
			}
		}
		if ts := c.Tasks(); len(ts) != 1 || ts[0].ClientToken != "wake-alice-1" {
			t.Errorf("tasks = %+v; want one", ts)
		}
	})
	t.Run("a token reused with other parameters is a ConflictException naming the task", func(t *testing.T) {
		in := runInput("bob")
		in.ClientToken = aws.String("wake-alice-1")
		_, err := ecsC.RunTask(ctx, in)
		var ce *ecstypes.ConflictException
		if !errors.As(err, &ce) || len(ce.ResourceIds) != 1 || ce.ResourceIds[0] != c.Tasks()[0].ARN {
			t.Fatalf("err = %v; want ConflictException with the task's ARN", err)
		}
	})
	t.Run("a repeat naming the same things otherwise is the same request", func(t *testing.T) {
		in := runInput("alice")
		in.ClientToken = aws.String("wake-alice-1")
		in.Cluster = aws.String("arn:aws:ecs:us-east-1:111122223333:cluster/fluidity")
		in.TaskDefinition = aws.String("fluidity-exit:3")
		in.Count = aws.Int32(1)
		out, err := ecsC.RunTask(ctx, in)
		if err != nil || len(out.Tasks) != 1 || aws.ToString(out.Tasks[0].TaskArn) != c.Tasks()[0].ARN {
			t.Fatalf("RunTask = %+v, %v; want the first task", out, err)
		}
	})
	t.Run("calls without a token each start a task", func(t *testing.T) {
		// The SDK fills in a fresh token for each call.
		for range 2 {
			if _, err := ecsC.RunTask(ctx, runInput("carol")); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(c.Tasks()); n != 3 {
			t.Errorf("%d tasks; want 3", n)
		}
	})
}

func TestListTasks(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	c.SetHold(true) // tasks stay PROVISIONING with desired status RUNNING
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))
	for range 11 {
		in := runInput("alice")
		in.Count = aws.Int32(10)
		if _, err := ecsC.RunTask(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := ecsC.RunTask(ctx, runInput("bob")); err != nil {
			t.Fatal(err)
		}
	}
	var alice []string
	for _, task := range c.Tasks() {
		if task.StartedBy == "alice" {
			alice = append(alice, task.ARN)
		}
	}
	for _, arn := range alice[:5] {
		if _, err := ecsC.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(clusterName), Task: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(in ecs.ListTasksInput) (pages int, arns []string) {
		t.Helper()
		in.Cluster = aws.String(clusterName)
		p := ecs.NewListTasksPaginator(ecsC, &in)
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			arns = append(arns, out.TaskArns...)
		}
		return pages, arns
	}
	t.Run("more than 100 tasks take two pages", func(t *testing.T) {
		out, err := ecsC.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(clusterName), StartedBy: aws.String("alice")})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.TaskArns) != 100 || out.NextToken == nil {
			t.Fatalf("first page: %d tasks, next token %v; want 100 and a token", len(out.TaskArns), out.NextToken)
		}
		pages, arns := list(ecs.ListTasksInput{StartedBy: aws.String("alice")})
		if pages != 2 || !slices.Equal(arns, alice[5:]) {
			t.Errorf("%d pages, %d tasks; want 2 pages of the 105 running", pages, len(arns))
		}
	})
	t.Run("maxResults sets the page size", func(t *testing.T) {
		pages, arns := list(ecs.ListTasksInput{StartedBy: aws.String("alice"), MaxResults: aws.Int32(30)})
		if pages != 4 || len(arns) != 105 {
			t.Errorf("%d pages, %d tasks; want 4 and 105", pages, len(arns))
		}
	})
	t.Run("desiredStatus STOPPED lists the stopped tasks", func(t *testing.T) {
		_, arns := list(ecs.ListTasksInput{StartedBy: aws.String("alice"), DesiredStatus: ecstypes.DesiredStatusStopped})
		if !slices.Equal(arns, alice[:5]) {
			t.Errorf("stopped = %d tasks; want the 5 stopped", len(arns))
		}
	})
	t.Run("startedBy and family filter", func(t *testing.T) {
		if _, arns := list(ecs.ListTasksInput{StartedBy: aws.String("bob")}); len(arns) != 3 {
			t.Errorf("bob has %d tasks; want 3", len(arns))
		}
		if _, arns := list(ecs.ListTasksInput{Family: aws.String(taskFamily)}); len(arns) != 108 {
			t.Errorf("family has %d running tasks; want 108", len(arns))
		}
		if _, arns := list(ecs.ListTasksInput{DesiredStatus: ecstypes.DesiredStatusPending}); len(arns) != 0 {
			t.Errorf("desired PENDING has %d tasks; want 0, as ECS never sets it", len(arns))
		}
		if _, arns := list(ecs.ListTasksInput{Family: aws.String("other")}); len(arns) != 0 {
			t.Errorf("another family has %d tasks; want 0", len(arns))
		}
	})
}

func TestECSErrors(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))
	running, err := ecsC.RunTask(ctx, runInput("alice"))
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(running.Tasks[0].TaskArn)
	run := func(edit func(*ecs.RunTaskInput)) error {
		in := runInput("alice")
		edit(in)
		_, err := ecsC.RunTask(ctx, in)
		return err
	}
	many := func(n int) []ecstypes.Tag {
		tags := make([]ecstypes.Tag, n)
		for i := range tags {
			tags[i] = ecstypes.Tag{Key: aws.String(fmt.Sprintf("k%d", i)), Value: aws.String("v")}
		}
		return tags
	}
	var (
		clusterNotFound  *ecstypes.ClusterNotFoundException
		invalidParameter *ecstypes.InvalidParameterException
		notFound         *ecstypes.ResourceNotFoundException
	)
	for _, tc := range []struct {
		name    string
		call    func() error
		target  any
		message string
	}{
		{"RunTask in an unknown cluster", func() error { return run(func(in *ecs.RunTaskInput) { in.Cluster = aws.String("nope") }) }, &clusterNotFound, "Cluster not found."},
		{"RunTask in the default cluster that does not exist", func() error { return run(func(in *ecs.RunTaskInput) { in.Cluster = nil }) }, &clusterNotFound, "Cluster not found."},
		{"RunTask of an unknown task definition", func() error {
			return run(func(in *ecs.RunTaskInput) { in.TaskDefinition = aws.String("fluidity-exit:4") })
		}, &invalidParameter, "TaskDefinition not found."},
		{"RunTask in an unknown subnet", func() error {
			return run(func(in *ecs.RunTaskInput) {
				in.NetworkConfiguration.AwsvpcConfiguration.Subnets = []string{"subnet-x"}
			})
		}, &invalidParameter, "Error retrieving subnet information for [subnet-x]: The subnet ID 'subnet-x' does not exist (ErrorCode: InvalidSubnetID.NotFound)"},
		{"RunTask with an unknown security group", func() error {
			return run(func(in *ecs.RunTaskInput) {
				in.NetworkConfiguration.AwsvpcConfiguration.SecurityGroups = []string{"sg-x"}
			})
		}, &invalidParameter, "Error retrieving security group information for [sg-x]: The security group 'sg-x' does not exist (ErrorCode: InvalidGroup.NotFound)"},
		{"RunTask without a network configuration", func() error { return run(func(in *ecs.RunTaskInput) { in.NetworkConfiguration = nil }) }, &invalidParameter, "Network Configuration must be provided"},
		{"RunTask without a launch type or capacity provider", func() error { return run(func(in *ecs.RunTaskInput) { in.LaunchType = "" }) }, &invalidParameter, "No Container Instances"},
		{"RunTask with both a launch type and a capacity provider", func() error {
			return run(func(in *ecs.RunTaskInput) {
				in.CapacityProviderStrategy = []ecstypes.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE"), Weight: 1}}
			})
		}, &invalidParameter, "Specifying both a launch type and capacity provider strategy"},
		{"RunTask of 11 tasks", func() error { return run(func(in *ecs.RunTaskInput) { in.Count = aws.Int32(11) }) }, &invalidParameter, "count"},
		{"RunTask with a startedBy of a forbidden character", func() error { return run(func(in *ecs.RunTaskInput) { in.StartedBy = aws.String("alice@example") }) }, &invalidParameter, "startedBy"},
		{"RunTask with a startedBy of 129 characters", func() error {
			return run(func(in *ecs.RunTaskInput) { in.StartedBy = aws.String(strings.Repeat("a", 129)) })
		}, &invalidParameter, "startedBy"},
		{"RunTask with a client token of 65 characters", func() error {
			return run(func(in *ecs.RunTaskInput) { in.ClientToken = aws.String(strings.Repeat("t", 65)) })
		}, &invalidParameter, "clientToken"},
		{"RunTask with 51 tags", func() error { return run(func(in *ecs.RunTaskInput) { in.Tags = many(51) }) }, &invalidParameter, "tags"},
		{"RunTask with a tag key of 129 characters", func() error {
			return run(func(in *ecs.RunTaskInput) {
				in.Tags = []ecstypes.Tag{{Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("v")}}
			})
		}, &invalidParameter, "Tag keys"},
		{"RunTask with a tag value of 257 characters", func() error {
			return run(func(in *ecs.RunTaskInput) {
				in.Tags = []ecstypes.Tag{{Key: aws.String("k"), Value: aws.String(strings.Repeat("v", 257))}}
			})
		}, &invalidParameter, "Tag values"},
		{"RunTask overriding a container that does not exist", func() error {
			return run(func(in *ecs.RunTaskInput) {
				in.Overrides = &ecstypes.TaskOverride{ContainerOverrides: []ecstypes.ContainerOverride{{Name: aws.String("web")}}}
			})
		}, &invalidParameter, "Override for container named web"},
		{"StopTask of an unknown task", func() error {
			_, err := ecsC.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(clusterName), Task: aws.String("0123456789abcdef0123456789abcdef")})
			return err
		}, &invalidParameter, "The referenced task was not found."},
		{"StopTask with a reason of 256 characters", func() error {
			_, err := ecsC.StopTask(ctx, &ecs.StopTaskInput{Cluster: aws.String(clusterName), Task: aws.String(arn), Reason: aws.String(strings.Repeat("r", 256))})
			return err
		}, &invalidParameter, "Reason"},
		{"DescribeTasks of 101 tasks", func() error {
			_, err := ecsC.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(clusterName), Tasks: slices.Repeat([]string{arn}, 101)})
			return err
		}, &invalidParameter, "100"},
		{"DescribeTasks in an unknown cluster", func() error {
			_, err := ecsC.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String("nope"), Tasks: []string{arn}})
			return err
		}, &clusterNotFound, "Cluster not found."},
		{"ListTasks of 101 results", func() error {
			_, err := ecsC.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(clusterName), MaxResults: aws.Int32(101)})
			return err
		}, &invalidParameter, "maxResults"},
		{"ListTasks with a made-up token", func() error {
			_, err := ecsC.ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(clusterName), NextToken: aws.String("bm90IGEgdG9rZW4=")})
			return err
		}, &invalidParameter, "nextToken"},
		{"TagResource of an unknown task", func() error {
			_, err := ecsC.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn + "0"), Tags: many(1)})
			return err
		}, &notFound, ""},
		{"TagResource past 50 tags", func() error {
			_, err := ecsC.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: many(51)})
			return err
		}, &invalidParameter, "50"},
		{"TagResource with a reserved prefix", func() error {
			_, err := ecsC.TagResource(ctx, &ecs.TagResourceInput{ResourceArn: aws.String(arn), Tags: []ecstypes.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}})
			return err
		}, &invalidParameter, "aws:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.As(err, tc.target) {
				t.Fatalf("err = %v; want %T", err, tc.target)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("err = %v; want a message with %q", err, tc.message)
			}
		})
	}
	if n := len(c.Tasks()); n != 1 {
		t.Errorf("%d tasks after the failed calls; want 1", n)
	}

	t.Run("DescribeTasks reports unknown tasks as MISSING", func(t *testing.T) {
		missing := "arn:aws:ecs:us-east-1:111122223333:task/fluidity/0123456789abcdef0123456789abcdef"
		out, err := ecsC.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: aws.String(clusterName), Tasks: []string{arn, missing}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Tasks) != 1 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Arn) != missing || aws.ToString(out.Failures[0].Reason) != "MISSING" {
			t.Errorf("DescribeTasks = %+v, failures %+v", out.Tasks, out.Failures)
		}
	})
	t.Run("DescribeNetworkInterfaces of an unknown or malformed ID", func(t *testing.T) {
		ec2C := ec2.NewFromConfig(c.Config(wakeKey))
		_, err := ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
		if apiCode(err) != "InvalidNetworkInterfaceID.NotFound" || !strings.Contains(err.Error(), "The networkInterface ID 'eni-0123456789abcdef0' does not exist") {
			t.Errorf("err = %v; want InvalidNetworkInterfaceID.NotFound", err)
		}
		_, err = ec2C.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"nic-1"}})
		if apiCode(err) != "InvalidNetworkInterfaceID.Malformed" {
			t.Errorf("err = %v; want InvalidNetworkInterfaceID.Malformed", err)
		}
	})
}

func TestRunAndStartFailures(t *testing.T) {
	c := newCloud(t, awsfake.CloudConfig{})
	ctx := ctxT(t)
	ecsC := ecs.NewFromConfig(c.Config(wakeKey))

	t.Run("SetRunFailure answers with a failure and no task", func(t *testing.T) {
		const capacity = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
		c.SetRunFailure(capacity)
		out, err := ecsC.RunTask(ctx, runInput("alice"))
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Tasks) != 0 || len(out.Failures) != 1 || aws.ToString(out.Failures[0].Reason) != capacity {
			t.Errorf("RunTask = %+v, failures %+v", out.Tasks, out.Failures)
		}
		if n := len(c.Tasks()); n != 0 {
			t.Errorf("%d tasks; want none", n)
		}
		c.SetRunFailure("")
	})
	t.Run("SetStartFailure stops new tasks while PENDING", func(t *testing.T) {
		const pull = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
		c.SetStartFailure(pull)
		out, err := ecsC.RunTask(ctx, runInput("alice"))
		if err != nil {
			t.Fatal(err)
		}
		c.SetStartFailure("")
		arn := aws.ToString(out.Tasks[0].TaskArn)
		task := waitStatus(t, c, arn, "STOPPED")
		if task.StopCode != "TaskFailedToStart" || task.StoppedReason != pull || !task.StartedAt.IsZero() {
			t.Errorf("task = %+v", task)
		}
		d := describe(t, ecsC, arn)
		if d.StopCode != ecstypes.TaskStopCodeTaskFailedToStart || aws.ToString(d.StoppedReason) != pull || d.StartedAt != nil {
			t.Errorf("described = %+v", d)
		}
	})
	t.Run("SetHold keeps new tasks PROVISIONING until released", func(t *testing.T) {
		c.SetHold(true)
		out, err := ecsC.RunTask(ctx, runInput("bob"))
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(out.Tasks[0].TaskArn)
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond) // 6 times ProvisionTime
		defer cancel()
		_, err = c.WaitTasks(short, func(ts []awsfake.Task) bool { return ts[len(ts)-1].LastStatus != "PROVISIONING" })
		if err == nil {
			t.Fatal("a held task left PROVISIONING")
		}
		c.SetHold(false)
		waitStatus(t, c, arn, "RUNNING")
	})
	t.Run("StopTaskAs stops a task as ECS does", func(t *testing.T) {
		out, err := ecsC.RunTask(ctx, runInput("carol"))
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(out.Tasks[0].TaskArn)
		waitStatus(t, c, arn, "RUNNING")
		c.StopTaskAs(arn, "SpotInterruption", "Your Spot Task was interrupted.")
		task := waitStatus(t, c, arn, "STOPPED")
		if task.StopCode != "SpotInterruption" || task.StoppedReason != "Your Spot Task was interrupted." {
			t.Errorf("task = %+v", task)
		}
	})
}
