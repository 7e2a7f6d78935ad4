package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"fluidity/internal/admin"
	"fluidity/internal/egress"
	"fluidity/internal/exit"
	"fluidity/internal/iamauth"
	"fluidity/internal/metrics"
	"fluidity/internal/pki"
	"fluidity/internal/tunnel"
)

// tlsFiles names a side's certificate, key and CA: --certs DIR means the
// default names in DIR; --cert, --key and --ca override one file each.
type tlsFiles struct {
	Certs, Cert, Key, CA string
}

// resolve fills the file names from Certs and the side's default names.
func (f tlsFiles) resolve(certName, keyName string) (cert, key, ca string, err error) {
	cert, key, ca = f.Cert, f.Key, f.CA
	if f.Certs != "" {
		if cert == "" {
			cert = filepath.Join(f.Certs, certName)
		}
		if key == "" {
			key = filepath.Join(f.Certs, keyName)
		}
		if ca == "" {
			ca = filepath.Join(f.Certs, pki.CAFile)
		}
	}
	if cert == "" || key == "" || ca == "" {
		return "", "", "", errors.New("certs: no certificates configured; pass --certs DIR (made by 'fluidity certs init --dir DIR'), or --cert, --key and --ca")
	}
	return cert, key, ca, nil
}

type egressConfig struct {
	AllowHosts []string `yaml:"allow_hosts" help:"if set, only these target hosts (example.com, *.example.com) are allowed"`
	DenyHosts  []string `yaml:"deny_hosts" help:"target hosts that are refused"`
	AllowCIDRs []string `yaml:"allow_cidrs" help:"target networks allowed even if private (10.1.0.0/16)"`
	DenyCIDRs  []string `yaml:"deny_cidrs" help:"target networks that are refused"`
	AllowPorts []string `yaml:"allow_ports" help:"if set, only these target ports (443, 8000-9000) are allowed"`
	DenyPorts  []string `yaml:"deny_ports" help:"target ports that are refused"`
}

type serverConfig struct {
	Listen            string          `yaml:"listen" help:"address to accept agents on"`
	Certs             string          `yaml:"certs" help:"directory with ca.crt, server.crt and server.key (made by 'fluidity certs init')"`
	Cert              string          `yaml:"cert" help:"server certificate file (default: server.crt in --certs)"`
	Key               string          `yaml:"key" help:"server private key file (default: server.key in --certs)"`
	CA                string          `yaml:"ca" help:"CA certificate that client certificates must chain to (default: ca.crt in --certs)"`
	AllowPrivate      bool            `yaml:"allow_private" help:"allow loopback, private and link-local targets (for tests and local use; never on a shared exit)"`
	Egress            egressConfig    `yaml:"egress"`
	HandshakeTimeout  time.Duration   `yaml:"handshake_timeout" help:"TLS handshake deadline"`
	HeaderTimeout     time.Duration   `yaml:"header_timeout" help:"deadline for an HTTP/1.1 CONNECT request header"`
	DialTimeout       time.Duration   `yaml:"dial_timeout" help:"deadline for connecting to a target"`
	MaxStreams        int             `yaml:"max_streams" help:"open streams allowed per agent link"`
	MaxLinks          int             `yaml:"max_links" help:"client connections open at once (HTTP/2 links and HTTP/1.1 CONNECT connections); more are refused after the TLS handshake"`
	MaxLinksPerClient int             `yaml:"max_links_per_client" help:"HTTP/2 links open at once per client certificate name; more are refused with GOAWAY and the reason"`
	LinkIdleTimeout   time.Duration   `yaml:"link_idle_timeout" help:"close a link that has had no open stream for this long (0: never; agents reconnect at once, so this only sheds abandoned links)"`
	StreamIdleTimeout time.Duration   `yaml:"stream_idle_timeout" help:"reset a stream that has sent and received nothing for this long (0: never; a quiet SSH session is a legitimate stream)"`
	PingInterval      time.Duration   `yaml:"ping_interval" help:"how often to check that an agent link is alive"`
	PingTimeout       time.Duration   `yaml:"ping_timeout" help:"how long an agent may take to answer a ping before its link is closed"`
	ShutdownTimeout   time.Duration   `yaml:"shutdown_timeout" help:"how long open streams may finish on shutdown"`
	Admin             string          `yaml:"admin" help:"admin listener for metrics and health checks, HOST:PORT (empty: off); it has no authentication, so keep it private"`
	AdminPprof        bool            `yaml:"admin_pprof" help:"serve Go profiling (net/http/pprof) under /debug/pprof/ on the admin listener"`
	Procs             int             `yaml:"procs" help:"threads running Go code at once (GOMAXPROCS; 0: one per CPU); a GOMAXPROCS environment variable takes precedence"`
	IAM               serverIAMConfig `yaml:"iam"`
	Log               logConfig       `yaml:"log"`

	policy *egress.Policy
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		Listen:            ":8443",
		HandshakeTimeout:  10 * time.Second,
		HeaderTimeout:     10 * time.Second,
		DialTimeout:       10 * time.Second,
		MaxStreams:        10000,
		MaxLinks:          1024,
		MaxLinksPerClient: 8,
		PingInterval:      30 * time.Second,
		PingTimeout:       15 * time.Second,
		ShutdownTimeout:   10 * time.Second,
		IAM:               defaultServerIAM(),
		Procs:             defaultProcs,
		Log:               defaultLog(),
	}
}

func (c *serverConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port (example: :8443)", c.Listen)
	}
	if _, _, _, err := c.files().resolve(pki.ServerCertFile, pki.ServerKeyFile); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"handshake_timeout", c.HandshakeTimeout}, {"header_timeout", c.HeaderTimeout}, {"dial_timeout", c.DialTimeout},
		{"ping_interval", c.PingInterval}, {"ping_timeout", c.PingTimeout}, {"shutdown_timeout", c.ShutdownTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive (example: 10s)", d.key)
		}
	}
	if c.MaxStreams < 1 {
		return errors.New("max_streams: must be at least 1")
	}
	if c.MaxLinks < 1 {
		return errors.New("max_links: must be at least 1 (default 1024)")
	}
	if c.MaxLinksPerClient < 1 {
		return errors.New("max_links_per_client: must be at least 1 (default 8)")
	}
	if c.LinkIdleTimeout < 0 || c.StreamIdleTimeout < 0 {
		return errors.New("link_idle_timeout, stream_idle_timeout: must not be negative (0 turns them off)")
	}
	if err := validateAdmin(c.Admin); err != nil {
		return err
	}
	p, err := egress.New(egress.Config{
		AllowPrivate: c.AllowPrivate,
		AllowHosts:   c.Egress.AllowHosts, DenyHosts: c.Egress.DenyHosts,
		AllowCIDRs: c.Egress.AllowCIDRs, DenyCIDRs: c.Egress.DenyCIDRs,
		AllowPorts: c.Egress.AllowPorts, DenyPorts: c.Egress.DenyPorts,
	})
	if err != nil {
		return err
	}
	c.policy = p
	if err := c.IAM.validate(); err != nil {
		return err
	}
	if err := validateProcs(c.Procs); err != nil {
		return err
	}
	return c.Log.validate()
}

func (c *serverConfig) files() tlsFiles { return tlsFiles{c.Certs, c.Cert, c.Key, c.CA} }

func runServer(ctx context.Context, env Env, args []string) error {
	cfg := defaultServerConfig()
	fs := newFlagSet(env, "server", "server [--listen ADDR] --certs DIR [flags]", `
Run the exit server: a standard HTTPS CONNECT proxy (HTTP/2 and HTTP/1.1)
that requires a client certificate from your private CA and connects to
targets under the egress policy. By default it refuses loopback, private,
link-local (including cloud metadata) and unique-local targets.
With --iam-allow it also checks the AWS IAM identity a stream proves
(agents with --iam, or 'fluidity token'), through STS.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	log := cfg.Log.logger(env.Stderr)
	applyProcs(env, cfg.Procs, log)
	reg := metrics.NewRegistry()
	srv, closeIAM, err := newExit(cfg, log, metrics.NewExit(reg, 0))
	if err != nil {
		return err
	}
	defer closeIAM()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	// The exit's admin listener may be on any address: probes and
	// Prometheus reach it from elsewhere. It is off unless configured.
	adminLn, err := listenAdmin(cfg.Admin, true, "", log)
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.IAM.enabled() {
		log.Info("IAM identity checks on", "required", cfg.IAM.Required, "server_id", cfg.IAM.ServerID,
			"allow", cfg.IAM.Allow, "regions", cfg.IAM.Regions, "sts_endpoint", cfg.IAM.STSEndpoint)
	}
	log.Info("exit server listening", "addr", ln.Addr().String(), "allow_private", cfg.AllowPrivate,
		"max_links", cfg.MaxLinks, "max_links_per_client", cfg.MaxLinksPerClient, "max_streams", cfg.MaxStreams)
	if adminLn != nil {
		log.Info("admin listening", "addr", adminLn.Addr().String(), "pprof", cfg.AdminPprof)
	}
	acfg := admin.Config{Gatherer: reg, Pprof: cfg.AdminPprof, Logger: log}
	return serveWithAdmin(ctx, adminLn, acfg, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
}

// newExit builds an exit server from a validated configuration. The
// returned func releases the IAM verifier, if any, once Serve has returned.
func newExit(cfg serverConfig, log *slog.Logger, obs exit.Observer) (srv *exit.Server, closeIAM func(), err error) {
	closeIAM = func() {}
	cert, key, ca, _ := cfg.files().resolve(pki.ServerCertFile, pki.ServerKeyFile)
	tlsCfg, err := pki.ServerConfig(cert, key, ca)
	if err != nil {
		return nil, closeIAM, err
	}
	var authorize func(ctx context.Context, client string, h http.Header) (string, error)
	if cfg.IAM.enabled() {
		v, err := cfg.IAM.verifier(&iamauth.FailureLimiter{})
		if err != nil {
			return nil, closeIAM, err
		}
		closeIAM = func() { v.Close() }
		authorize = (&iamAuthorizer{v: v, required: cfg.IAM.Required}).authorize
	}
	d := &egress.Dialer{Policy: cfg.policy, Timeout: cfg.DialTimeout}
	srv, err = exit.New(exit.Config{
		TLS:              tlsCfg,
		Dial:             d.DialContext,
		HandshakeTimeout: cfg.HandshakeTimeout,
		HeaderTimeout:    cfg.HeaderTimeout,
		DialTimeout:      cfg.DialTimeout,
		ShutdownTimeout:  cfg.ShutdownTimeout,
		Tunnel: tunnel.Config{
			MaxStreams:        cfg.MaxStreams,
			PingInterval:      cfg.PingInterval,
			PingTimeout:       cfg.PingTimeout,
			LinkIdleTimeout:   cfg.LinkIdleTimeout,
			StreamIdleTimeout: cfg.StreamIdleTimeout,
		},
		MaxLinks:          cfg.MaxLinks,
		MaxLinksPerClient: cfg.MaxLinksPerClient,
		Authorize:         authorize,
		Observer:          obs,
		Logger:            log,
	})
	if err != nil {
		closeIAM()
		return nil, func() {}, err
	}
	return srv, closeIAM, nil
}
