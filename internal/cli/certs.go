package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"

	"fluidity/internal/pki"
)

func runCerts(ctx context.Context, env Env, args []string) error {
	usage := func() {
		fmt.Fprintf(env.Stderr, `Usage: fluidity certs <init|issue-client> [flags]

  init          create a private CA, a server certificate and a client certificate
  issue-client  issue one more client certificate from the same CA

Run 'fluidity certs <subcommand> --help' for its flags.
`)
	}
	if len(args) == 0 {
		usage()
		return errUsage
	}
	switch args[0] {
	case "init":
		return runCertsInit(env, args[1:])
	case "issue-client":
		return runCertsIssueClient(env, args[1:])
	case "-h", "--help", "help":
		usage()
		return flag.ErrHelp
	}
	fmt.Fprintf(env.Stderr, "fluidity certs: unknown subcommand %q\n\n", args[0])
	usage()
	return errUsage
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
	return nil
}
