package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"fluidity/internal/awsconfig"
	"fluidity/internal/pki"
	"fluidity/internal/principal"
)

// Options configure Deploy and Destroy. The zero value of every field but
// Out has a default.
type Options struct {
	// Name names the deployment and its resources: the stacks NAME-exit
	// and NAME-control, the cluster, the function, the repository. If
	// empty, "fluidity" is used.
	Name string
	// Region and Profile choose the AWS account and region, as the AWS
	// CLI would (the standard configuration; Region wins over it).
	Region, Profile string
	// StateDir is where the deployment's certificates and the agent's
	// configuration are kept, in a directory NAME. If empty, fluidity in
	// the user's configuration directory is used.
	StateDir string

	// Image, ExitBinary and Source say where the exit's image comes from,
	// in this order: an image reference to copy into the deployment's
	// repository; a linux/arm64 fluidity binary (or a release archive
	// holding one); the Go module at Source (found from the working
	// directory if empty) built with the go command. Without any of them,
	// a binary that is itself linux/arm64 uses itself.
	Image, ExitBinary, Source string
	// Version labels the image.
	Version string

	// SecretsManager keeps the exit's certificates in Secrets Manager
	// ($0.40 a month) rather than in an SSM parameter (free).
	SecretsManager bool
	// Allow adds identities (account IDs, role or user ARNs) that may use
	// the exit, besides the one deploying it.
	Allow []string
	// Spot runs exit tasks on Fargate Spot.
	Spot bool
	// DailyLimit, if set, caps each identity's exit time per day.
	DailyLimit time.Duration

	// Out receives the progress, for a person.
	Out io.Writer
	// AWS, if set, is used instead of loading the configuration.
	AWS *aws.Config
	// PollInterval is how often a stack's progress is read. If zero, 3s.
	PollInterval time.Duration
}

func (o *Options) defaults() error {
	if o.Name == "" {
		o.Name = "fluidity"
	}
	if !nameRE.MatchString(o.Name) {
		return fmt.Errorf("stack: %q is not a name for a deployment: lower-case letters, digits and '-', starting with a letter, at most 31 characters", o.Name)
	}
	if o.StateDir == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return fmt.Errorf("state directory: %w; pass --state-dir", err)
		}
		o.StateDir = filepath.Join(dir, "fluidity")
	}
	if o.PollInterval == 0 {
		o.PollInterval = 3 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if _, err := principal.ParseAllowlist(o.Allow); err != nil {
		return fmt.Errorf("allow: %w", err)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// Paths of a deployment's local state.
func (o *Options) dir() string         { return filepath.Join(o.StateDir, o.Name) }
func (o *Options) certsDir() string    { return filepath.Join(o.dir(), "certs") }
func (o *Options) agentConfig() string { return filepath.Join(o.dir(), "agent.yaml") }

// Names of a deployment's AWS resources.
func (o *Options) exitStack() string    { return o.Name + "-exit" }
func (o *Options) controlStack() string { return o.Name + "-control" }
func (o *Options) repository() string   { return o.Name }
func (o *Options) certsName() string    { return "/fluidity/" + o.Name + "/exit-certs" }

// clients are the AWS clients a deployment uses.
type clients struct {
	cfg    aws.Config
	region string
	cfn    *cloudformation.Client
	ecr    *ecr.Client
	ssm    *ssm.Client
	sm     *secretsmanager.Client
	sts    *sts.Client
	lambda *lambda.Client
}

func (o *Options) clients(ctx context.Context) (*clients, error) {
	var cfg aws.Config
	if o.AWS != nil {
		cfg = o.AWS.Copy()
	} else {
		var err error
		if cfg, err = awsconfig.Load(ctx, o.Profile); err != nil {
			return nil, err
		}
	}
	if o.Region != "" {
		cfg.Region = o.Region
	}
	if cfg.Region == "" {
		return nil, errors.New("region: none configured; pass --region (for example --region eu-west-1) or set AWS_REGION")
	}
	if !regionRE.MatchString(cfg.Region) {
		return nil, fmt.Errorf("region: %q is not an AWS region name such as eu-west-1", cfg.Region)
	}
	return &clients{
		cfg:    cfg,
		region: cfg.Region,
		cfn:    cloudformation.NewFromConfig(cfg),
		ecr:    ecr.NewFromConfig(cfg),
		ssm:    ssm.NewFromConfig(cfg),
		sm:     secretsmanager.NewFromConfig(cfg),
		sts:    sts.NewFromConfig(cfg),
		lambda: lambda.NewFromConfig(cfg),
	}, nil
}

// exitPort is the port of a deployed exit, fixed in its template (its
// security group opens only that port).
const exitPort = 8443

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// Result is what Deploy made.
type Result struct {
	FunctionURL    string // the control plane's function URL
	AgentConfig    string // the agent's configuration file
	AgentPolicyArn string // the managed policy an agent's identity needs
	Image          string // the image, by digest
	Caller         string // the canonical identity that deployed
	Region         string
}

// begin fills in o's defaults and returns its clients and the function
// that reports a step of the work to o.Out.
func (o *Options) begin(ctx context.Context) (*clients, func(string, ...any), error) {
	if err := o.defaults(); err != nil {
		return nil, nil, err
	}
	c, err := o.clients(ctx)
	if err != nil {
		return nil, nil, err
	}
	step := func(format string, args ...any) { fmt.Fprintf(o.Out, "• "+format+"\n", args...) }
	return c, step, nil
}

// Deploy creates or updates the deployment (see the package comment).
func Deploy(ctx context.Context, o Options) (*Result, error) {
	c, step, err := o.begin(ctx)
	if err != nil {
		return nil, err
	}

	caller, err := c.whoAmI(ctx)
	if err != nil {
		return nil, err
	}
	step("deploying %q to %s as %s", o.Name, c.region, caller)
	allow := append([]string{caller}, o.Allow...)

	if made, err := ensureCerts(o.certsDir()); err != nil {
		return nil, err
	} else if made {
		step("made a private CA and certificates in %s", o.certsDir())
	}

	img, err := o.image(ctx, step)
	if err != nil {
		return nil, err
	}
	imageRef, err := c.pushImage(ctx, o, img, step)
	if err != nil {
		return nil, err
	}

	certsSecretArn, err := c.storeCerts(ctx, o, step)
	if err != nil {
		return nil, err
	}

	store := "ssm"
	if o.SecretsManager {
		store = "secretsmanager"
	}
	exitOut, err := c.applyStack(ctx, o, o.exitStack(), ExitTemplate, map[string]string{
		"Name":           o.Name,
		"ImageUri":       imageRef,
		"RepositoryName": o.repository(),
		"CertsName":      o.certsName(),
		"CertsStore":     store,
		"CertsSecretArn": certsSecretArn,
		"IamAllow":       strings.Join(allow, ","),
	}, step)
	if err != nil {
		return nil, err
	}

	reserved := c.reservedConcurrency(ctx, step)
	ctlOut, err := c.applyStack(ctx, o, o.controlStack(), ControlTemplate, map[string]string{
		"Name":                 o.Name,
		"ImageUri":             imageRef,
		"Cluster":              exitOut["Cluster"],
		"ClusterArn":           exitOut["ClusterArn"],
		"TaskDefinitionFamily": exitOut["TaskDefinitionFamily"],
		"Subnets":              exitOut["Subnets"],
		"SecurityGroup":        exitOut["SecurityGroup"],
		"TaskRoleArn":          exitOut["TaskRoleArn"],
		"ExecutionRoleArn":     exitOut["ExecutionRoleArn"],
		"Allow":                strings.Join(allow, ","),
		"ExitPort":             fmt.Sprint(exitPort),
		"Spot":                 fmt.Sprint(o.Spot),
		"DailyLimit":           o.DailyLimit.String(),
		"ReservedConcurrency":  fmt.Sprint(reserved),
	}, step)
	if err != nil {
		return nil, err
	}

	res := &Result{
		FunctionURL:    ctlOut["FunctionUrl"],
		AgentPolicyArn: ctlOut["AgentPolicyArn"],
		AgentConfig:    o.agentConfig(),
		Image:          imageRef,
		Caller:         caller,
		Region:         c.region,
	}
	if err := writeAgentConfig(o, res); err != nil {
		return nil, err
	}
	if err := writeRecord(o.dir(), Record{Name: o.Name, Region: res.Region, FunctionURL: res.FunctionURL,
		AgentPolicyArn: res.AgentPolicyArn, Allow: allow, Image: imageRef}); err != nil {
		return nil, err
	}
	step("wrote the agent's configuration to %s", res.AgentConfig)
	return res, nil
}

// whoAmI is the canonical identity of the credentials in use.
func (c *clients) whoAmI(ctx context.Context) (string, error) {
	out, err := c.sts.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", explain(err, "sts:GetCallerIdentity", "")
	}
	p, err := principal.Canonical(aws.ToString(out.Arn))
	if err != nil {
		return "", fmt.Errorf("the AWS identity in use, %s, is not an IAM user or role; deploy with one", aws.ToString(out.Arn))
	}
	return p.String(), nil
}

// ensureCerts makes the deployment's certificates on first use, and reports
// whether it did.
func ensureCerts(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, pki.CAFile)); err == nil {
		return false, nil
	}
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		return false, err
	}
	return true, nil
}

// reservedConcurrency is how many concurrent invocations the function gets
// reserved (which also caps it): ten, where the account's limit leaves
// room for them beyond the hundred AWS keeps unreserved; none otherwise
// (new accounts start with a limit of ten).
func (c *clients) reservedConcurrency(ctx context.Context, step func(string, ...any)) int {
	out, err := c.lambda.GetAccountSettings(ctx, &lambda.GetAccountSettingsInput{})
	if err != nil || out.AccountLimit == nil {
		step("could not read the account's Lambda limits (%v); the function gets no reserved concurrency", err)
		return 0
	}
	if aws.ToInt32(out.AccountLimit.UnreservedConcurrentExecutions) >= 110 {
		return 10
	}
	step("the account's Lambda concurrency (%d) leaves no room to reserve; the function gets none", out.AccountLimit.ConcurrentExecutions)
	return 0
}
