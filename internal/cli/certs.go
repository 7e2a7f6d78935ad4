package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"fluidity/internal/awsconfig"
	"fluidity/internal/certstore"
	"fluidity/internal/config"
	"fluidity/internal/deploy"
	"fluidity/internal/pki"
)

func runCerts(ctx context.Context, env Env, args []string) error {
	return runSubcommand(ctx, env, "certs", []command{
		{"init", "create a private CA, a server certificate and a client certificate",
			func(_ context.Context, env Env, args []string) error { return runCertsInit(env, args) }},
		{"issue-client", "issue one more client certificate from the same CA",
			func(_ context.Context, env Env, args []string) error { return runCertsIssueClient(env, args) }},
		{"push", "store the exit's CA, certificate and key as one value in SSM or Secrets Manager", runCertsPush},
		{"revoke", "revoke a client certificate (a lost laptop): add it to the CA's revocation list",
			func(_ context.Context, env Env, args []string) error { return runCertsRevoke(env, args) }},
	}, args)
}

type certsInitConfig struct {
	Dir        string   `yaml:"dir" help:"directory to write ca.crt, ca.key, server.crt, server.key, client.crt and client.key to"`
	ServerName []string `yaml:"server_name" help:"extra DNS name for the server certificate (repeatable); fluidity-server and localhost are always included"`
	ServerIP   []string `yaml:"server_ip" help:"extra IP address for the server certificate (repeatable); 127.0.0.1 and ::1 are always included"`
	ClientName string   `yaml:"client_name" help:"common name of the client certificate"`
	Force      bool     `yaml:"force" help:"replace existing files"`
	parsedIPs  []net.IP
}

func (c *certsInitConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required (for example --dir ./certs)")
	}
	for _, s := range c.ServerIP {
		ip := net.ParseIP(s)
		if ip == nil {
			return fmt.Errorf("server_ip: %q is not an IP address (example: 203.0.113.7)", s)
		}
		c.parsedIPs = append(c.parsedIPs, ip)
	}
	return pki.ValidateClientName(c.ClientName)
}

func runCertsInit(env Env, args []string) error {
	cfg := certsInitConfig{ClientName: pki.DefaultClientName}
	fs := newFlagSet(env, "certs init", "certs init --dir DIR [flags]", `
Create a private certificate authority (ECDSA P-256) and, signed by it, a
server certificate for the exit (names fluidity-server and localhost, IPs
127.0.0.1 and ::1, plus any --server-name/--server-ip) and a client
certificate for the agent. Private keys are written with mode 0600. Existing
files are never replaced without --force.

The agent verifies the exit by the name fluidity-server, whatever address
it dials, so the exit's changing IP addresses need no new certificate.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	err := pki.Init(pki.InitOptions{
		Dir:         cfg.Dir,
		ServerNames: cfg.ServerName,
		ServerIPs:   cfg.parsedIPs,
		ClientName:  cfg.ClientName,
		Force:       cfg.Force,
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Wrote a CA, a server and a client certificate to %s\n", cfg.Dir)
	fmt.Fprintf(env.Stdout, "Keep ca.key offline if you can: anyone with it can issue certificates.\n")
	fmt.Fprintf(env.Stdout, "Exit:  fluidity server --certs %s\nAgent: fluidity agent --certs %s --server HOST:8443\n", cfg.Dir, cfg.Dir)
	return nil
}

type issueClientConfig struct {
	Dir   string `yaml:"dir" help:"directory holding ca.crt and ca.key; NAME.crt and NAME.key are written there"`
	Name  string `yaml:"name" help:"client name: letters, digits, '.', '_' and '-'"`
	Force bool   `yaml:"force" help:"replace existing files"`
}

func (c *issueClientConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required (the directory of 'fluidity certs init')")
	}
	if c.Name == "" {
		return errors.New("name: required (for example --name laptop)")
	}
	return pki.ValidateClientName(c.Name)
}

func runCertsIssueClient(env Env, args []string) error {
	cfg := issueClientConfig{}
	fs := newFlagSet(env, "certs issue-client", "certs issue-client --dir DIR --name NAME", `
Issue one more client certificate from the CA in DIR, one per person or
machine, so each can be told apart in the exit's logs. Use it with
'fluidity agent --cert DIR/NAME.crt --key DIR/NAME.key --ca DIR/ca.crt'.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	certPath, keyPath, err := pki.IssueClient(cfg.Dir, cfg.Name, cfg.Force)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Wrote %s and %s\n", certPath, keyPath)
	if rec, err := deploy.ReadRecord(cfg.Dir); err == nil {
		printAccess(env.Stdout, rec)
	}
	return nil
}

// printAccess tells how to let another person's AWS identity use the
// deployment whose record rec is: the deployment's allowlist, and the
// agent's policy on that identity.
func printAccess(w io.Writer, rec *deploy.Record) {
	fmt.Fprintf(w, `
This certificate is for the deployment %q in %s, whose exit also checks an AWS identity on every stream.
The person's AWS identity (ARN below) needs two things:
  1. to be let in: fluidity aws deploy --stack %s --region %s --allow ARN   (keeps the others: %s)
  2. the agent's policy, %s:
       aws iam attach-user-policy --user-name NAME --policy-arn %s          (a user; attach-role-policy for a role)
       Register-IAMUserPolicy -UserName NAME -PolicyArn %s                  (PowerShell, AWS Tools)
It lets the identity invoke the control plane's function URL and nothing else.
`, rec.Name, rec.Region, rec.Name, rec.Region, strings.Join(rec.Allow, ", "), rec.AgentPolicyArn, rec.AgentPolicyArn, rec.AgentPolicyArn)
}

type certsPushConfig struct {
	Dir     string `yaml:"dir" help:"directory holding ca.crt, server.crt and server.key (made by 'fluidity certs init')"`
	Region  string `yaml:"region" help:"the AWS region (default: AWS_REGION or the profile's region)"`
	Profile string `yaml:"profile" help:"the AWS profile (default: AWS_PROFILE, else the default profile)"`
}

func (c *certsPushConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required (the directory of 'fluidity certs init')")
	}
	return nil
}

func runCertsPush(ctx context.Context, env Env, args []string) error {
	cfg := certsPushConfig{}
	fs := newFlagSet(env, "certs push", "certs push --dir DIR ssm://NAME | secretsmanager://NAME", `
Store the exit's CA, certificate and key from DIR as one value (the bundle
that 'fluidity server --certs ssm://NAME' reads): an SSM SecureString of
the standard tier (free) or a Secrets Manager secret. Nothing is written
when the value is already there. 'fluidity aws deploy' does this itself.`)
	l := config.Bind(fs, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(env.Stderr, "fluidity certs push: name where to store the bundle: ssm://NAME or secretsmanager://NAME")
		fs.Usage()
		return errUsage
	}
	if err := l.Load(env.Environ); err != nil {
		return err
	}
	loc, err := certstore.Parse(fs.Arg(0))
	if err != nil {
		return err
	}
	bundle, err := pki.ServerBundle(cfg.Dir)
	if err != nil {
		return err
	}
	awsCfg, err := awsconfig.Load(ctx, cfg.Profile)
	if err != nil {
		return err
	}
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	changed, _, err := deploy.PushCerts(ctx, awsCfg, loc, bundle, "Fluidity exit: CA, certificate and key")
	if err != nil {
		return err
	}
	if changed {
		fmt.Fprintf(env.Stdout, "Stored the bundle of %s in %s (%s).\n", cfg.Dir, loc, awsCfg.Region)
	} else {
		fmt.Fprintf(env.Stdout, "%s (%s) already holds the bundle of %s.\n", loc, awsCfg.Region, cfg.Dir)
	}
	fmt.Fprintf(env.Stdout, "Exit: fluidity server --certs %s\n", loc)
	return nil
}

type revokeConfig struct {
	Dir string `yaml:"dir" help:"directory holding ca.crt and ca.key (and NAME.crt); revoked.crl is written there"`
}

func (c *revokeConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("dir: required (the directory of 'fluidity certs init')")
	}
	return nil
}

func runCertsRevoke(env Env, args []string) error {
	cfg := revokeConfig{}
	fs := newFlagSet(env, "certs revoke", "certs revoke --dir DIR NAME|SERIAL", `
Revoke a client certificate issued by the CA in DIR: NAME is a client's
name (DIR/NAME.crt, or client.crt by its name), SERIAL a serial number in
hex. The certificate is added to DIR/revoked.crl, a certificate revocation
list signed by the CA. An exit whose certificate directory holds that file
(or whose --crl names a copy of it) refuses the certificate at the TLS
handshake, and within its --revocation-interval (5s) closes the links the
certificate has open.`)
	target, args := revokeTarget(args)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	if target == "" {
		fmt.Fprintf(env.Stderr, "fluidity certs revoke: which certificate? Give a client's name or a serial number\n")
		fs.Usage()
		return errUsage
	}
	res, err := pki.Revoke(cfg.Dir, target, time.Now())
	if err != nil {
		return err
	}
	what := "serial " + pki.FormatSerial(res.Serial)
	if res.Name != "" {
		what = fmt.Sprintf("%s (serial %s, %s)", res.Name, pki.FormatSerial(res.Serial), res.Fingerprint)
	}
	if res.Already {
		fmt.Fprintf(env.Stdout, "%s is already revoked in %s; nothing changed.\n", what, res.CRLFile)
		return nil
	}
	fmt.Fprintf(env.Stdout, "Revoked %s in %s (the list now revokes %d).\n", what, res.CRLFile, res.Entries)
	fmt.Fprintf(env.Stdout, "Exits reading this directory pick it up within seconds; copy %s to any exit elsewhere (into its --certs directory, or --crl FILE).\n", pki.CRLFile)
	return nil
}

// revokeTarget takes the NAME|SERIAL argument of 'certs revoke' out of
// args, before the flags or after them, and returns it and the flags.
func revokeTarget(args []string) (string, []string) {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		return args[0], args[1:]
	}
	n := len(args)
	if n > 0 && !strings.HasPrefix(args[n-1], "-") {
		// Not the value of a --dir before it.
		if n == 1 || !slices.Contains([]string{"-dir", "--dir", "-config", "--config"}, args[n-2]) {
			return args[n-1], args[:n-1]
		}
	}
	return "", args
}
