package controlplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"fluidity/internal/controlapi"
	"fluidity/internal/principal"
)

// Tags and the startedBy prefix that mark the control plane's tasks.
const (
	// OwnerTag holds the owner's canonical ARN.
	OwnerTag = "fluidity:owner"
	// LeaseTag holds the time the exit would go idle (RFC 3339), renewed
	// by the exit while it is in use.
	LeaseTag = "fluidity:lease-until"
	// StartedByPrefix begins the startedBy of every task the control
	// plane starts; the sweep looks at no other task.
	StartedByPrefix = "fluidity-"
)

// ECS is the part of the ECS API the control plane uses (*ecs.Client).
type ECS interface {
	RunTask(context.Context, *ecs.RunTaskInput, ...func(*ecs.Options)) (*ecs.RunTaskOutput, error)
	DescribeTasks(context.Context, *ecs.DescribeTasksInput, ...func(*ecs.Options)) (*ecs.DescribeTasksOutput, error)
	ListTasks(context.Context, *ecs.ListTasksInput, ...func(*ecs.Options)) (*ecs.ListTasksOutput, error)
	StopTask(context.Context, *ecs.StopTaskInput, ...func(*ecs.Options)) (*ecs.StopTaskOutput, error)
}

// EC2 is the part of the EC2 API the control plane uses (*ec2.Client).
type EC2 interface {
	DescribeNetworkInterfaces(context.Context, *ec2.DescribeNetworkInterfacesInput, ...func(*ec2.Options)) (*ec2.DescribeNetworkInterfacesOutput, error)
}

// Config configures a Plane. Cluster, TaskDefinition, Subnets, Allow, ECS
// and EC2 are required.
type Config struct {
	// Cluster is the ECS cluster the tasks run in (name or ARN).
	Cluster string
	// TaskDefinition is the exit's task definition: family, family:revision
	// or ARN.
	TaskDefinition string
	// Subnets are the public subnets a task may be placed in.
	Subnets []string
	// SecurityGroups are given to each task's network interface. If empty,
	// the VPC's default group is used.
	SecurityGroups []string
	// Spot runs tasks on Fargate Spot (about 70 % cheaper; AWS may stop a
	// task with two minutes' notice, and the agent wakes a new one). The
	// cluster must have the FARGATE_SPOT capacity provider.
	Spot bool
	// ExitPort is the port the exit listens on, given to agents with its
	// address. If zero, 8443 is used.
	ExitPort int
	// Allow lists the principals that may use the control plane, as the
	// exit's iam.allow: account IDs, role ARNs, user ARNs.
	Allow []string
	// LeaseGrace is how long a running task may go without a lease before
	// the sweep stops it. If zero, 3m is used.
	LeaseGrace time.Duration
	// LeaseSlack is how far past its lease a task may run before the sweep
	// stops it (the exit stops itself at the lease; this is the backstop).
	// If zero, 1m is used.
	LeaseSlack time.Duration
	// StartTimeout is how long a task may take to start running before the
	// sweep stops it. If zero, 10m is used.
	StartTimeout time.Duration
	// MaxLifetime is the hard limit on a task's life: the sweep stops a
	// task older than this whatever its lease says. If zero, 12h is used.
	MaxLifetime time.Duration
	// PollInterval is how often a query that waits looks at the task. If
	// zero, 500ms is used.
	PollInterval time.Duration
	// DailyLimit, if positive, caps how long each owner's exit may run
	// per day (UTC): a wake past it is refused, and the sweep stops a task
	// whose owner has reached it. Each owner's time is kept in an SSM
	// parameter under LedgerPrefix, which the SSM client must reach.
	DailyLimit time.Duration
	// LedgerPrefix is the SSM parameter path of the daily ledgers. If
	// empty, "/fluidity/usage" is used.
	LedgerPrefix string
	// ECS and EC2 are the AWS clients; SSM is needed for DailyLimit only.
	ECS ECS
	EC2 EC2
	SSM SSM
	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
	// Logger receives a line for every task started or stopped. Nil
	// discards.
	Logger *slog.Logger
}

// Plane is the control plane. It keeps no state between calls: everything
// it knows, it reads from ECS.
type Plane struct {
	cfg   Config // immutable after New
	allow principal.Allowlist
	log   *slog.Logger
}

// New checks cfg and returns a Plane. Its errors name the setting at fault.
func New(cfg Config) (*Plane, error) {
	allow, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if cfg.ECS == nil || cfg.EC2 == nil {
		return nil, errors.New("controlplane: ECS and EC2 clients are required")
	}
	if cfg.DailyLimit > 0 && cfg.SSM == nil {
		return nil, errors.New("controlplane: an SSM client is required for the daily limit")
	}
	return &Plane{cfg: cfg, allow: allow, log: cfg.Logger}, nil
}

// Validate checks the settings, all but the clients, as New does.
func (cfg Config) Validate() error {
	_, err := cfg.check()
	return err
}

// check validates the settings and fills in the defaults.
func (cfg *Config) check() (principal.Allowlist, error) {
	switch {
	case cfg.Cluster == "":
		return principal.Allowlist{}, errors.New("cluster: required: the ECS cluster the exit tasks run in")
	case cfg.TaskDefinition == "":
		return principal.Allowlist{}, errors.New("task_definition: required: the exit's task definition (family or ARN)")
	case len(cfg.Subnets) == 0:
		return principal.Allowlist{}, errors.New("subnets: required: the public subnets exit tasks may be placed in")
	case len(cfg.Allow) == 0:
		return principal.Allowlist{}, errors.New("allow: empty, so no one could wake an exit; list the accounts, roles or users that may (the same syntax as the exit's iam.allow)")
	}
	allow, err := principal.ParseAllowlist(cfg.Allow)
	if err != nil {
		return principal.Allowlist{}, fmt.Errorf("allow: %w", err)
	}
	if cfg.ExitPort == 0 {
		cfg.ExitPort = 8443
	}
	if cfg.ExitPort < 1 || cfg.ExitPort > 65535 {
		return principal.Allowlist{}, fmt.Errorf("exit_port: %d is not a port", cfg.ExitPort)
	}
	for _, d := range []struct {
		p   *time.Duration
		v   time.Duration
		key string
	}{{&cfg.LeaseGrace, 3 * time.Minute, "lease_grace"}, {&cfg.LeaseSlack, time.Minute, "lease_slack"},
		{&cfg.StartTimeout, 10 * time.Minute, "start_timeout"}, {&cfg.MaxLifetime, 12 * time.Hour, "max_lifetime"},
		{&cfg.PollInterval, 500 * time.Millisecond, "poll_interval"}, {&cfg.DailyLimit, 0, "daily_limit"}} {
		if *d.p == 0 {
			*d.p = d.v
		}
		if *d.p < 0 {
			return principal.Allowlist{}, fmt.Errorf("%s: must not be negative", d.key)
		}
	}
	if cfg.LedgerPrefix == "" {
		cfg.LedgerPrefix = "/fluidity/usage"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return allow, nil
}

// owner is a caller's canonical principal and the key its tasks carry.
type owner struct {
	arn string // canonical ARN
	key string // startedBy
}

// ownerOf checks the caller, as AWS verified it, against the allowlist.
func (p *Plane) ownerOf(caller string) (owner, error) {
	if caller == "" {
		return owner{}, controlapi.Errorf(http.StatusUnauthorized, controlapi.CodeNoIdentity,
			"the request carries no verified IAM identity; sign it with SigV4 for the service lambda (the function URL must use AWS_IAM auth)")
	}
	c, err := principal.Canonical(caller)
	if err != nil {
		return owner{}, controlapi.Errorf(http.StatusForbidden, controlapi.CodeNotAllowed,
			"%s is not an IAM user or role; call with the credentials of one", caller)
	}
	if !p.allow.Allows(c) {
		return owner{}, controlapi.Errorf(http.StatusForbidden, controlapi.CodeNotAllowed,
			"%s may not use this exit; ask its owner to add it (fluidity aws deploy --allow %s)", c, c)
	}
	return ownerFor(c.String()), nil
}

func ownerFor(arn string) owner {
	sum := sha256.Sum256([]byte(arn))
	return owner{arn: arn, key: StartedByPrefix + hex.EncodeToString(sum[:12])}
}

// clientToken is RunTask's idempotency token for one wake of one owner:
// wake IDs are chosen by agents, so the owner is part of it.
func clientToken(o owner, wakeID string) string {
	sum := sha256.Sum256([]byte(o.key + "/" + wakeID))
	return hex.EncodeToString(sum[:]) // 64 characters, RunTask's limit
}

// Wake returns the caller's task, starting one if none is running or
// starting. wakeID names this wake (see controlapi.WakeRequest).
func (p *Plane) Wake(ctx context.Context, caller, wakeID string) (controlapi.State, error) {
	o, err := p.ownerOf(caller)
	if err != nil {
		return controlapi.State{}, err
	}
	if err := controlapi.CheckWakeID(wakeID); err != nil {
		return controlapi.State{}, controlapi.Errorf(http.StatusBadRequest, controlapi.CodeBadRequest, "%v", err)
	}
	tasks, err := p.liveTasks(ctx, o)
	if err != nil {
		return controlapi.State{}, err
	}
	if len(tasks) == 0 {
		if err := p.checkDailyLimit(ctx, o); err != nil {
			return controlapi.State{}, err
		}
		t, err := p.runTask(ctx, o, wakeID)
		if err != nil {
			return controlapi.State{}, err
		}
		// A wake with another ID may have raced this one: look again, so
		// that both keep the same (oldest) task. ListTasks may not show a
		// task this new yet; later calls and the sweep reconcile then.
		if tasks, err = p.liveTasks(ctx, o); err != nil || len(tasks) == 0 {
			tasks = []types.Task{t}
		}
	}
	return p.state(ctx, o, p.keepOldest(ctx, o, tasks))
}

// Query returns the caller's task. While it is starting, Query looks again
// every PollInterval until it is ready or stopped or wait has passed.
func (p *Plane) Query(ctx context.Context, caller string, wait time.Duration) (controlapi.State, error) {
	o, err := p.ownerOf(caller)
	if err != nil {
		return controlapi.State{}, err
	}
	deadline := p.cfg.Now().Add(min(wait, controlapi.MaxWait))
	for {
		st, err := p.current(ctx, o)
		if err != nil || st.State != controlapi.Starting {
			return st, err
		}
		left := deadline.Sub(p.cfg.Now())
		if left <= 0 {
			return st, nil
		}
		t := time.NewTimer(min(left, p.cfg.PollInterval))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return st, nil
		}
	}
}

// Kill stops the caller's tasks, and no one else's.
func (p *Plane) Kill(ctx context.Context, caller string) (controlapi.State, error) {
	o, err := p.ownerOf(caller)
	if err != nil {
		return controlapi.State{}, err
	}
	tasks, err := p.liveTasks(ctx, o)
	if err != nil {
		return controlapi.State{}, err
	}
	if len(tasks) == 0 {
		return p.current(ctx, o)
	}
	var stopped types.Task
	for i, t := range tasks {
		st, err := p.stopTask(ctx, t, "stopped by its owner")
		if err != nil {
			return controlapi.State{}, err
		}
		if i == 0 {
			stopped = st
		}
	}
	p.log.Info("task stopped", "task", aws.ToString(stopped.TaskArn), "owner", o.arn, "reason", "killed by its owner")
	return p.state(ctx, o, stopped)
}

// current is the owner's live task, or else its last stopped one.
func (p *Plane) current(ctx context.Context, o owner) (controlapi.State, error) {
	tasks, err := p.liveTasks(ctx, o)
	if err != nil {
		return controlapi.State{}, err
	}
	if len(tasks) > 0 {
		return p.state(ctx, o, p.keepOldest(ctx, o, tasks))
	}
	stopped, err := p.ownerTasks(ctx, o, types.DesiredStatusStopped)
	if err != nil {
		return controlapi.State{}, err
	}
	if len(stopped) == 0 {
		return controlapi.State{State: controlapi.Stopped, Owner: o.arn, Reason: "no exit task is running"}, nil
	}
	last := slices.MaxFunc(stopped, func(a, b types.Task) int { return endTime(a).Compare(endTime(b)) })
	return p.state(ctx, o, last)
}

// endTime is when a task stopped, or else when it was created.
func endTime(t types.Task) time.Time {
	if t.StoppedAt != nil {
		return *t.StoppedAt
	}
	return aws.ToTime(t.CreatedAt)
}

// liveTasks are the owner's tasks that are running or starting, oldest
// first.
func (p *Plane) liveTasks(ctx context.Context, o owner) ([]types.Task, error) {
	tasks, err := p.ownerTasks(ctx, o, types.DesiredStatusRunning)
	if err != nil {
		return nil, err
	}
	// A task may be asked to stop between the list and the description.
	tasks = slices.DeleteFunc(tasks, func(t types.Task) bool { return aws.ToString(t.DesiredStatus) == "STOPPED" })
	slices.SortFunc(tasks, func(a, b types.Task) int { return aws.ToTime(a.CreatedAt).Compare(aws.ToTime(b.CreatedAt)) })
	return tasks, nil
}

// ownerTasks lists and describes the owner's tasks of one desired status.
// A task whose owner tag names someone else (a hash collision, or a task
// someone else started with our startedBy) is not the owner's.
func (p *Plane) ownerTasks(ctx context.Context, o owner, desired types.DesiredStatus) ([]types.Task, error) {
	arns, err := p.listTasks(ctx, &ecs.ListTasksInput{StartedBy: aws.String(o.key), DesiredStatus: desired})
	if err != nil {
		return nil, err
	}
	tasks, err := p.describe(ctx, arns)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(tasks, func(t types.Task) bool { return tagValue(t.Tags, OwnerTag) != o.arn }), nil
}

// listTasks follows ListTasks' pages.
func (p *Plane) listTasks(ctx context.Context, in *ecs.ListTasksInput) ([]string, error) {
	in.Cluster = aws.String(p.cfg.Cluster)
	var arns []string
	pages := ecs.NewListTasksPaginator(p.cfg.ECS, in)
	for pages.HasMorePages() {
		out, err := pages.NextPage(ctx)
		if err != nil {
			return nil, awsError(err)
		}
		arns = append(arns, out.TaskArns...)
	}
	return arns, nil
}

// describe describes tasks with their tags, 100 at a time (DescribeTasks'
// limit). Tasks ECS no longer knows are left out.
func (p *Plane) describe(ctx context.Context, arns []string) ([]types.Task, error) {
	var tasks []types.Task
	for chunk := range slices.Chunk(arns, 100) {
		out, err := p.cfg.ECS.DescribeTasks(ctx, &ecs.DescribeTasksInput{
			Cluster: aws.String(p.cfg.Cluster),
			Tasks:   chunk,
			Include: []types.TaskField{types.TaskFieldTags},
		})
		if err != nil {
			return nil, awsError(err)
		}
		tasks = append(tasks, out.Tasks...)
	}
	return tasks, nil
}

// keepOldest returns the oldest of the owner's live tasks (sorted oldest
// first) and stops the others: duplicates from racing wakes.
func (p *Plane) keepOldest(ctx context.Context, o owner, tasks []types.Task) types.Task {
	for _, t := range tasks[1:] {
		if _, err := p.stopTask(ctx, t, "a duplicate exit task for this owner; keeping the oldest"); err != nil {
			p.log.Warn("stopping a duplicate task failed; the sweep tries again", "task", aws.ToString(t.TaskArn), "owner", o.arn, "err", err)
			continue
		}
		p.log.Info("task stopped", "task", aws.ToString(t.TaskArn), "owner", o.arn, "reason", "duplicate; keeping the oldest", "kept", aws.ToString(tasks[0].TaskArn))
	}
	return tasks[0]
}

// runTask starts a task for the owner.
func (p *Plane) runTask(ctx context.Context, o owner, wakeID string) (types.Task, error) {
	in := &ecs.RunTaskInput{
		Cluster:        aws.String(p.cfg.Cluster),
		TaskDefinition: aws.String(p.cfg.TaskDefinition),
		Count:          aws.Int32(1),
		StartedBy:      aws.String(o.key),
		ClientToken:    aws.String(clientToken(o, wakeID)),
		NetworkConfiguration: &types.NetworkConfiguration{AwsvpcConfiguration: &types.AwsVpcConfiguration{
			Subnets:        p.cfg.Subnets,
			SecurityGroups: p.cfg.SecurityGroups,
			AssignPublicIp: types.AssignPublicIpEnabled,
		}},
		Tags: []types.Tag{{Key: aws.String(OwnerTag), Value: aws.String(o.arn)}},
	}
	if p.cfg.Spot {
		in.CapacityProviderStrategy = []types.CapacityProviderStrategyItem{{CapacityProvider: aws.String("FARGATE_SPOT"), Weight: 1}}
	} else {
		in.LaunchType = types.LaunchTypeFargate
	}
	out, err := p.cfg.ECS.RunTask(ctx, in)
	if err != nil {
		return types.Task{}, awsError(err)
	}
	if len(out.Tasks) == 0 {
		reason := "no reason given"
		if len(out.Failures) > 0 {
			f := out.Failures[0]
			reason = aws.ToString(f.Reason)
			if d := aws.ToString(f.Detail); d != "" {
				reason += " (" + d + ")"
			}
		}
		return types.Task{}, controlapi.Errorf(http.StatusServiceUnavailable, controlapi.CodeNoCapacity,
			"ECS could not start an exit task: %s; try again in a few minutes, or deploy with more subnets (other availability zones)", reason)
	}
	t := out.Tasks[0]
	p.log.Info("task started", "task", aws.ToString(t.TaskArn), "owner", o.arn, "wake_id", wakeID)
	return t, nil
}

// stopTask stops t, saying why. It returns the task as ECS now describes it.
func (p *Plane) stopTask(ctx context.Context, t types.Task, reason string) (types.Task, error) {
	out, err := p.cfg.ECS.StopTask(ctx, &ecs.StopTaskInput{
		Cluster: aws.String(p.cfg.Cluster),
		Task:    t.TaskArn,
		Reason:  aws.String(reason),
	})
	if err != nil {
		return types.Task{}, awsError(err)
	}
	if out.Task == nil {
		return t, nil
	}
	st := *out.Task
	if st.Tags == nil {
		st.Tags = t.Tags
	}
	return st, nil
}

// state describes task t of owner o for the agent.
func (p *Plane) state(ctx context.Context, o owner, t types.Task) (controlapi.State, error) {
	st := controlapi.State{
		Owner:     o.arn,
		Task:      aws.ToString(t.TaskArn),
		Status:    aws.ToString(t.LastStatus),
		CreatedAt: t.CreatedAt,
		StartedAt: t.StartedAt,
		StoppedAt: t.StoppedAt,
	}
	if lease, ok := leaseOf(t); ok {
		st.LeaseUntil = &lease
	}
	switch {
	case aws.ToString(t.DesiredStatus) == "STOPPED" || isStopping(st.Status):
		st.State = controlapi.Stopped
		st.Reason = stopReason(t)
		return st, nil
	case st.Status != "RUNNING":
		st.State = controlapi.Starting
		return st, nil
	}
	ip, err := p.publicIP(ctx, t)
	if err != nil {
		return controlapi.State{}, err
	}
	st.State = controlapi.Ready
	st.Address = net.JoinHostPort(ip, strconv.Itoa(p.cfg.ExitPort))
	return st, nil
}

// stopReason says why a task stopped, as ECS does, with the exit's status
// when it ended by itself with an error.
func stopReason(t types.Task) string {
	reason := aws.ToString(t.StoppedReason)
	if reason == "" {
		return "stopping"
	}
	if t.StopCode == types.TaskStopCodeEssentialContainerExited {
		for _, c := range t.Containers {
			if c.ExitCode != nil && *c.ExitCode != 0 {
				reason += fmt.Sprintf(" (exit code %d: the exit failed; its log in CloudWatch Logs says why)", *c.ExitCode)
				break
			}
		}
	}
	return reason
}

func isStopping(lastStatus string) bool {
	switch lastStatus {
	case "DEACTIVATING", "STOPPING", "DEPROVISIONING", "STOPPED", "DELETED":
		return true
	}
	return false
}

// publicIP is the public IPv4 address of a running task's network
// interface.
func (p *Plane) publicIP(ctx context.Context, t types.Task) (string, error) {
	eni := ""
	for _, a := range t.Attachments {
		if aws.ToString(a.Type) != "ElasticNetworkInterface" {
			continue
		}
		for _, d := range a.Details {
			if aws.ToString(d.Name) == "networkInterfaceId" {
				eni = aws.ToString(d.Value)
			}
		}
	}
	if eni == "" {
		return "", controlapi.Errorf(http.StatusBadGateway, controlapi.CodeBadConfig,
			"the running task %s has no network interface; its task definition must use the awsvpc network mode", aws.ToString(t.TaskArn))
	}
	out, err := p.cfg.EC2.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eni}})
	if err != nil {
		return "", awsError(err)
	}
	for _, ni := range out.NetworkInterfaces {
		if ni.Association != nil && aws.ToString(ni.Association.PublicIp) != "" {
			return aws.ToString(ni.Association.PublicIp), nil
		}
	}
	return "", controlapi.Errorf(http.StatusBadGateway, controlapi.CodeBadConfig,
		"the running task %s has no public IP address (interface %s); its subnets must be public, with a route to an internet gateway", aws.ToString(t.TaskArn), eni)
}

// leaseOf reads a task's lease tag.
func leaseOf(t types.Task) (time.Time, bool) {
	v := tagValue(t.Tags, LeaseTag)
	if v == "" {
		return time.Time{}, false
	}
	lease, err := time.Parse(time.RFC3339, v)
	return lease, err == nil
}

func tagValue(tags []types.Tag, key string) string {
	for _, t := range tags {
		if aws.ToString(t.Key) == key {
			return aws.ToString(t.Value)
		}
	}
	return ""
}

// shortID is the last part of a task ARN, for messages.
func shortID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }
