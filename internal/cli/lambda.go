package cli

import (
	"context"
	"time"

	"fluidity/internal/controlplane"
	"fluidity/internal/lambdafn"
)

// lambdaConfig is the control plane function's configuration. On Lambda it
// comes from the function's environment (FLUIDITY_CLUSTER, …), which
// 'fluidity aws deploy' sets; an unknown FLUIDITY_ variable stops the
// function at start rather than being ignored.
type lambdaConfig struct {
	Cluster        string        `yaml:"cluster" help:"the ECS cluster exit tasks run in"`
	TaskDefinition string        `yaml:"task_definition" help:"the exit's task definition (family, family:revision or ARN)"`
	Subnets        []string      `yaml:"subnets" help:"public subnets exit tasks may be placed in"`
	SecurityGroups []string      `yaml:"security_groups" help:"security groups of the exit tasks' network interfaces"`
	Spot           bool          `yaml:"spot" help:"run exit tasks on Fargate Spot (cheaper; AWS may stop one with two minutes' notice)"`
	ExitPort       int           `yaml:"exit_port" help:"the port the exit listens on"`
	Allow          []string      `yaml:"allow" help:"who may wake, query and stop an exit: account IDs, role ARNs, user ARNs (as the exit's iam.allow)"`
	LeaseGrace     time.Duration `yaml:"lease_grace" help:"the sweep stops a running task that has not renewed its lease this long after it started"`
	LeaseSlack     time.Duration `yaml:"lease_slack" help:"the sweep stops a task this long after its lease ran out (the exit stops itself at the lease; this is the backstop)"`
	StartTimeout   time.Duration `yaml:"start_timeout" help:"the sweep stops a task that is not running this long after it was started"`
	MaxLifetime    time.Duration `yaml:"max_lifetime" help:"the sweep stops any task older than this, whatever its lease"`
	DailyLimit     time.Duration `yaml:"daily_limit" help:"if set, how long each identity's exit may run per day (UTC); kept in SSM parameters under ledger_prefix"`
	LedgerPrefix   string        `yaml:"ledger_prefix" help:"the SSM parameter path of the daily limit's ledgers"`
	Log            logConfig     `yaml:"log"`
}

func defaultLambdaConfig() lambdaConfig {
	return lambdaConfig{
		ExitPort:     8443,
		LeaseGrace:   3 * time.Minute,
		LeaseSlack:   time.Minute,
		StartTimeout: 10 * time.Minute,
		MaxLifetime:  12 * time.Hour,
		LedgerPrefix: "/fluidity/usage",
		Log:          logConfig{Level: "info", Format: "json"},
	}
}

func (c *lambdaConfig) plane() controlplane.Config {
	return controlplane.Config{
		Cluster: c.Cluster, TaskDefinition: c.TaskDefinition, Subnets: c.Subnets, SecurityGroups: c.SecurityGroups,
		Spot: c.Spot, ExitPort: c.ExitPort, Allow: c.Allow,
		LeaseGrace: c.LeaseGrace, LeaseSlack: c.LeaseSlack, StartTimeout: c.StartTimeout, MaxLifetime: c.MaxLifetime,
		DailyLimit: c.DailyLimit, LedgerPrefix: c.LedgerPrefix,
	}
}

// Validate checks the keys as the control plane will.
func (c *lambdaConfig) Validate() error {
	if err := c.Log.validate(); err != nil {
		return err
	}
	return c.plane().Validate()
}

func runLambda(ctx context.Context, env Env, args []string) error {
	cfg := defaultLambdaConfig()
	fs := newFlagSet(env, "lambda", "lambda (as the AWS Lambda function's bootstrap)", `
The control plane's AWS Lambda function: it serves the function URL
(wake, query and stop an exit task of the caller's own, on ECS Fargate)
and the scheduled sweep that stops tasks nobody uses. 'fluidity aws
deploy' installs it; a binary named bootstrap runs this command. Its
settings come from FLUIDITY_* variables in the function's environment.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	return lambdafn.Run(ctx, cfg.plane(), cfg.Log.logger(env.Stderr))
}
