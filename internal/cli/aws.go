package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"fluidity/internal/deploy"
)

func runAWS(ctx context.Context, env Env, args []string) error {
	return runSubcommand(ctx, env, "aws", []command{
		{"deploy", "set up (or update) your exit on demand in an AWS account", runAWSDeploy},
		{"destroy", "remove it", runAWSDestroy},
	}, args)
}

// awsTarget is where a deployment is: shared by deploy and destroy.
type awsTarget struct {
	Stack    string `yaml:"stack" help:"the deployment's name, which names its stacks (NAME-exit, NAME-control) and resources"`
	Region   string `yaml:"region" help:"the AWS region (default: AWS_REGION or the profile's region)"`
	Profile  string `yaml:"profile" help:"the AWS profile (default: AWS_PROFILE, else the default profile)"`
	StateDir string `yaml:"state_dir" help:"where the deployment's certificates and the agent's configuration are kept (default: fluidity in your config directory)"`
}

type awsDeployConfig struct {
	Target         awsTarget     `yaml:",inline"`
	ExitBinary     string        `yaml:"exit_binary" help:"the linux/arm64 fluidity binary, or its release archive, to build the image from (default: build it with Go from the source tree)"`
	Image          string        `yaml:"image" help:"an image you built (see the Dockerfile) to use instead of building one; it is copied into the deployment's repository"`
	Source         string        `yaml:"source" help:"Fluidity's source tree to build the binary from (default: the one holding the working directory)"`
	SecretsManager bool          `yaml:"secrets_manager" help:"keep the exit's certificates in Secrets Manager ($0.40 a month) instead of an SSM parameter (free)"`
	Allow          []string      `yaml:"allow" help:"more AWS identities that may use the exit (account IDs, role or user ARNs), besides yours"`
	Spot           bool          `yaml:"spot" help:"run the exit on Fargate Spot (about 70% cheaper; AWS may stop it with two minutes' notice)"`
	DailyLimit     time.Duration `yaml:"daily_limit" help:"cap each identity's exit time per day (for example 2h; 0: none)"`
}

func (c *awsDeployConfig) Validate() error {
	if c.DailyLimit < 0 {
		return errors.New("daily_limit: must not be negative (0 turns it off)")
	}
	return nil
}

func (c *awsDeployConfig) options(env Env) deploy.Options {
	return deploy.Options{
		Name: c.Target.Stack, Region: c.Target.Region, Profile: c.Target.Profile, StateDir: c.Target.StateDir,
		ExitBinary: c.ExitBinary, Image: c.Image, Source: c.Source, Version: Version(),
		SecretsManager: c.SecretsManager, Allow: c.Allow, Spot: c.Spot, DailyLimit: c.DailyLimit,
		Out: env.Stdout,
	}
}

func runAWSDeploy(ctx context.Context, env Env, args []string) error {
	cfg := awsDeployConfig{Target: awsTarget{Stack: "fluidity"}}
	fs := newFlagSet(env, "aws deploy", "aws deploy [--stack NAME] [--region REGION] [--profile NAME] [flags]", `
Set up your exit on demand in an AWS account, or update it: certificates
(made if there are none), the exit's container image (built here, no
Docker needed, and pushed to a repository it creates), the certificates in
SSM, and two CloudFormation stacks, NAME-exit and NAME-control. Then it
writes the agent's configuration and prints the command that starts it.
Running it again changes only what changed. The AWS identity in use needs
permission to create IAM roles and ECS, Lambda, ECR, SSM and
CloudFormation resources (docs/aws.md lists them).`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	res, err := deploy.Deploy(ctx, cfg.options(env))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, `
Fluidity is deployed in %s as %q.
  control plane: %s
  agent policy:  %s
    Every identity that uses the exit needs it (attach it to the users or roles you --allow;
    %s already has it if it may invoke Lambda function URLs).
Start the agent (the first connection wakes the exit, which takes 30-90 s):
  fluidity agent --config %s
`, res.Region, cfg.Target.Stack, res.FunctionURL, res.AgentPolicyArn, res.Caller, res.AgentConfig)
	return nil
}

type awsDestroyConfig struct {
	Target awsTarget `yaml:",inline"`
	Yes    bool      `yaml:"yes" help:"do not ask for confirmation"`
}

func runAWSDestroy(ctx context.Context, env Env, args []string) error {
	cfg := awsDestroyConfig{Target: awsTarget{Stack: "fluidity"}}
	fs := newFlagSet(env, "aws destroy", "aws destroy [--stack NAME] [--region REGION] [--profile NAME] [--yes]", `
Remove what 'fluidity aws deploy' made: any exit task still running, both
stacks, the image repository, the exit's certificates in SSM (or Secrets
Manager) and the daily-limit ledgers. It asks first (type the deployment's
name), unless --yes. It says what it left, and why.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	t := cfg.Target
	o := deploy.Options{Name: t.Stack, Region: t.Region, Profile: t.Profile, StateDir: t.StateDir, Out: env.Stdout}
	confirm := func(what string) bool {
		if cfg.Yes {
			return true
		}
		fmt.Fprintf(env.Stdout, "This removes %s.\nType %q to go on: ", what, t.Stack)
		return readLine(env.Stdin) == t.Stack
	}
	left, err := deploy.Destroy(ctx, o, confirm)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\nRemoved the deployment %q.\n", t.Stack)
	for _, l := range left {
		fmt.Fprintf(env.Stdout, "Left: %s.\n", l)
	}
	return nil
}

// readLine reads one line from r, without its end.
func readLine(r io.Reader) string {
	if r == nil {
		r = os.Stdin
	}
	line, _ := bufio.NewReader(r).ReadString('\n')
	return strings.TrimSpace(line)
}
