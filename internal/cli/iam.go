package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"fluidity/internal/awsconfig"
	"fluidity/internal/iamauth"
	"fluidity/internal/iamtoken"
	"fluidity/internal/upstream"
)

// defaultIAMServerID is the server ID agents and exits use unless told
// otherwise. Exits that must not accept each other's tokens need distinct IDs.
const defaultIAMServerID = "fluidity-server"

// serverIAMConfig is the exit's iam section: the optional AWS IAM identity
// agents prove with a token, verified through STS (see docs/iam.md).
type serverIAMConfig struct {
	Required    bool              `yaml:"required" help:"refuse streams without a valid IAM token (407); needs iam.allow"`
	ServerID    string            `yaml:"server_id" help:"this exit's ID, which agents sign into their tokens (their iam.server_id must match)"`
	Allow       []string          `yaml:"allow" help:"IAM identities let in: 12-digit account IDs, role ARNs (sessions of the role match), user ARNs; setting it turns IAM checks on"`
	Regions     []string          `yaml:"regions" help:"STS regions the agents' tokens may name (default: the regions of iam.sts_endpoint)"`
	STSEndpoint map[string]string `yaml:"sts_endpoint" help:"STS endpoint per region, REGION=URL, for private endpoints and tests (default: https://sts.REGION.amazonaws.com)"`
	Timeout     time.Duration     `yaml:"timeout" help:"deadline for one STS call; streams get 503 when STS does not answer in time"`
	CacheSize   int               `yaml:"cache_size" help:"verified tokens remembered until they expire, so new streams cost no STS call"`

	MaxVerifications          int `yaml:"max_verifications" help:"STS calls in flight at once, all clients together; a new token beyond them gets 503 and a retry"`
	MaxVerificationsPerClient int `yaml:"max_verifications_per_client" help:"STS calls in flight at once for one client certificate; a new token beyond them gets 429 (an agent sends one token at a time)"`
}

func defaultServerIAM() serverIAMConfig {
	return serverIAMConfig{ServerID: defaultIAMServerID, Timeout: 5 * time.Second, CacheSize: 10000,
		MaxVerifications: 64, MaxVerificationsPerClient: 4}
}

// enabled reports whether the exit checks IAM tokens at all.
func (c *serverIAMConfig) enabled() bool { return c.Required || len(c.Allow) > 0 }

func (c *serverIAMConfig) validate() error {
	if c.Required && len(c.Allow) == 0 {
		return errors.New("iam.required: set, but iam.allow is empty, so no identity could pass; list the accounts or roles to let in with --iam-allow (for example --iam-allow 111122223333), or drop --iam-required")
	}
	if !c.enabled() {
		return nil
	}
	if c.MaxVerifications < 1 || c.MaxVerificationsPerClient < 1 {
		return errors.New("iam.max_verifications, iam.max_verifications_per_client: must be at least 1 (defaults 64 and 4)")
	}
	if len(c.Regions) == 0 && len(c.STSEndpoint) == 0 {
		return errors.New("iam.regions: empty, so no token could be checked; name the STS regions your agents sign for (for example --iam-regions us-east-1,eu-west-1)")
	}
	v, err := c.verifier(nil)
	if err != nil {
		return err
	}
	return v.Close()
}

// verifier builds the verifier the configuration describes.
func (c *serverIAMConfig) verifier(limiter *iamauth.FailureLimiter) (*iamauth.Verifier, error) {
	return iamauth.New(iamauth.Config{
		ServerID:  c.ServerID,
		Regions:   c.Regions,
		Endpoints: c.STSEndpoint,
		Allow:     c.Allow,
		Timeout:   c.Timeout,
		CacheSize: c.CacheSize,
		Limiter:   limiter,

		MaxInFlight:          c.MaxVerifications,
		MaxInFlightPerClient: c.MaxVerificationsPerClient,
	})
}

// iamAuthorizer is the exit's Authorize check for IAM tokens.
type iamAuthorizer struct {
	v        *iamauth.Verifier // immutable
	required bool              // immutable
}

// authorize checks the token in the request's Proxy-Authorization field.
// Without one, a stream passes on its certificate alone unless a token is
// required; a token that is present is always verified, and a bad one is
// refused even where none is required. The limiter's key is the client
// certificate's name. The identity returned is the canonical ARN.
func (a *iamAuthorizer) authorize(ctx context.Context, client string, h http.Header) (string, error) {
	values := h.Values("Proxy-Authorization")
	if len(values) == 0 {
		if !a.required {
			return "", nil
		}
		_, err := a.v.VerifyFor(ctx, client, "") // the 407 that says how to send one
		return "", err
	}
	token, ok := iamauth.ParseBearer(values[0])
	if !ok || len(values) > 1 {
		return "", &iamauth.Error{Status: http.StatusProxyAuthRequired, Err: iamauth.ErrInvalidToken,
			Reason: "Proxy-Authorization is not a single \"Bearer <token>\" (fluidity token prints one)"}
	}
	id, err := a.v.VerifyFor(ctx, client, token)
	if err != nil {
		return "", err
	}
	return id.ARN, nil
}

// agentIAMConfig is the agent's iam section: whether to send an IAM token
// on each CONNECT, and where its AWS credentials come from.
type agentIAMConfig struct {
	Enabled  bool   `yaml:"enabled" flag:"iam" help:"prove this machine's AWS IAM identity to the exit on every stream (standard AWS credential chain)"`
	Profile  string `yaml:"profile" flag:"aws-profile" help:"AWS shared-configuration profile to use (default: AWS_PROFILE, else the default profile)"`
	Region   string `yaml:"region" flag:"aws-region" help:"STS region to sign tokens for (default: AWS_REGION or the profile's region); the exit must accept it"`
	ServerID string `yaml:"server_id" flag:"iam-server-id" help:"the exit's iam.server_id, which tokens are bound to"`
}

// describe says which credentials the agent proves, for its status.
func (c *agentIAMConfig) describe() string {
	d := "on, server_id " + c.ServerID
	if c.Profile != "" {
		d += ", profile " + c.Profile
	}
	if c.Region != "" {
		d += ", region " + c.Region
	}
	return d
}

func defaultAgentIAM() agentIAMConfig { return agentIAMConfig{ServerID: defaultIAMServerID} }

func (c *agentIAMConfig) validate() error {
	if c.Enabled && c.ServerID == "" {
		return errors.New("iam.server_id: empty; set it to the exit's iam.server_id (default fluidity-server)")
	}
	return nil
}

// sourceTimeout bounds loading the AWS configuration and checking the
// credentials at start (an SSO or instance-role lookup may go to the
// network).
const sourceTimeout = 20 * time.Second

func (c *agentIAMConfig) source(ctx context.Context, d *upstream.Dialer) (*iamtoken.Source, error) {
	ctx, cancel := context.WithTimeout(ctx, sourceTimeout)
	defer cancel()
	tc := iamtoken.Config{Region: c.Region, Profile: c.Profile, ServerID: c.ServerID}
	if d != nil {
		// Credential providers that call out (SSO, STS) go the way the
		// link to the exit goes.
		awsCfg, err := awsconfig.LoadVia(ctx, c.Profile, d.DialContext)
		if err != nil {
			return nil, fmt.Errorf("iam: %w", err)
		}
		tc.AWS = &awsCfg
	}
	return iamtoken.New(ctx, tc)
}

// agentTokens starts the agent's token source when IAM is on. When the
// credentials cannot be used it logs why and the fix, and returns nil: the
// agent then serves without tokens, which an exit that does not require
// them still accepts, and one that does answers with a 407 the client sees.
func agentTokens(ctx context.Context, c agentIAMConfig, d *upstream.Dialer, log *slog.Logger) *iamtoken.Source {
	if !c.Enabled {
		return nil
	}
	src, err := c.source(ctx, d)
	if err != nil {
		log.Error("IAM identity unavailable: streams go without an IAM token until the agent is restarted with usable credentials", "err", err)
		return nil
	}
	log.Info("IAM identity on: each stream carries a token", "server_id", c.ServerID)
	return src
}

// bearerHeader returns the tunnel's Header func for src.
func bearerHeader(src *iamtoken.Source) func(context.Context) (http.Header, error) {
	return func(ctx context.Context) (http.Header, error) {
		tok, err := src.Token(ctx)
		if err != nil {
			return nil, err
		}
		return http.Header{"Proxy-Authorization": {"Bearer " + tok}}, nil
	}
}

// tokenConfig is the configuration of 'fluidity token': the agent's AWS
// keys, under the same names.
type tokenConfig struct {
	IAM struct {
		Profile  string `yaml:"profile" flag:"aws-profile" help:"AWS shared-configuration profile to use (default: AWS_PROFILE, else the default profile)"`
		Region   string `yaml:"region" flag:"aws-region" help:"STS region to sign the token for (default: AWS_REGION or the profile's region)"`
		ServerID string `yaml:"server_id" flag:"iam-server-id" help:"the exit's iam.server_id, which the token is bound to"`
	} `yaml:"iam"`
}

func defaultTokenConfig() tokenConfig {
	var c tokenConfig
	c.IAM.ServerID = defaultIAMServerID
	return c
}

func (c *tokenConfig) Validate() error {
	if c.IAM.ServerID == "" {
		return errors.New("iam.server_id: empty; pass the exit's server ID with --iam-server-id (default fluidity-server)")
	}
	return nil
}

func runToken(ctx context.Context, env Env, args []string) error {
	cfg := defaultTokenConfig()
	fs := newFlagSet(env, "token", "token [--aws-profile NAME] [--aws-region REGION] [--iam-server-id ID]", `
Print a fresh IAM token on standard output: a presigned STS
GetCallerIdentity request bound to the exit's server ID, valid for about
five minutes. Credentials come from the standard AWS chain. Other clients
can send it to an exit straight:
  curl --proxy https://EXIT:8443 --proxy-cert client.crt --proxy-key client.key \
    --proxy-cacert ca.crt --proxy-header "Proxy-Authorization: Bearer $(fluidity token)" URL`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	ac := agentIAMConfig{Enabled: true, Profile: cfg.IAM.Profile, Region: cfg.IAM.Region, ServerID: cfg.IAM.ServerID}
	src, err := ac.source(ctx, nil)
	if err != nil {
		return err
	}
	defer src.Close()
	tok, err := src.Token(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, tok)
	return err
}
