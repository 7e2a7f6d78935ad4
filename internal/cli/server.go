package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"fluidity/internal/admin"
	"fluidity/internal/certstore"
	"fluidity/internal/ecstask"
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
	Listen             string           `yaml:"listen" help:"address to accept agents on"`
	Certs              string           `yaml:"certs" help:"directory with ca.crt, server.crt and server.key (made by 'fluidity certs init'), or ssm://NAME (an SSM parameter) or secretsmanager://NAME (a secret) holding them as one bundle"`
	Cert               string           `yaml:"cert" help:"server certificate file (default: server.crt in --certs)"`
	Key                string           `yaml:"key" help:"server private key file (default: server.key in --certs)"`
	CA                 string           `yaml:"ca" help:"CA certificate that client certificates must chain to (default: ca.crt in --certs)"`
	CRL                string           `yaml:"crl" help:"certificate revocation list of the client certificates refused, written by 'fluidity certs revoke' (default: revoked.crl in the certs directory, if it exists); reloaded when it changes"`
	Revoked            string           `yaml:"revoked" help:"file of the client certificates refused: one serial number (hex) or SHA-256 fingerprint (sha256:HEX) a line, '#' comments; reloaded when it changes"`
	RevocationInterval time.Duration    `yaml:"revocation_interval" help:"how often the crl and revoked files are looked at; a change takes effect within this, and open links of newly revoked certificates are closed"`
	AllowPrivate       bool             `yaml:"allow_private" help:"allow loopback, private and link-local targets (for tests and local use; never on a shared exit)"`
	Egress             egressConfig     `yaml:"egress"`
	HandshakeTimeout   time.Duration    `yaml:"handshake_timeout" help:"TLS handshake deadline"`
	HeaderTimeout      time.Duration    `yaml:"header_timeout" help:"deadline for an HTTP/1.1 CONNECT request header"`
	DialTimeout        time.Duration    `yaml:"dial_timeout" help:"deadline for connecting to a target"`
	MaxStreams         int              `yaml:"max_streams" help:"open streams allowed per agent link"`
	MaxLinks           int              `yaml:"max_links" help:"client connections open at once (HTTP/2 links and HTTP/1.1 CONNECT connections); more are refused after the TLS handshake"`
	MaxLinksPerClient  int              `yaml:"max_links_per_client" help:"HTTP/2 links open at once per client certificate name; more are refused with GOAWAY and the reason"`
	MaxTunnels         int              `yaml:"max_tunnels_per_client" help:"HTTP/1.1 CONNECT connections (one tunnel each, as curl and browsers open them) open at once per client certificate name, and per IAM identity when IAM checks are on; more get 429 and the reason"`
	LinkIdleTimeout    time.Duration    `yaml:"link_idle_timeout" help:"close a link that has had no open stream for this long (0: never; agents reconnect at once, so this only sheds abandoned links)"`
	StreamIdleTimeout  time.Duration    `yaml:"stream_idle_timeout" help:"reset a stream that has sent and received nothing for this long (0: never; a quiet SSH session is a legitimate stream)"`
	PingInterval       time.Duration    `yaml:"ping_interval" help:"how often to check that an agent link is alive"`
	PingTimeout        time.Duration    `yaml:"ping_timeout" help:"how long an agent may take to answer a ping before its link is closed"`
	ShutdownTimeout    time.Duration    `yaml:"shutdown_timeout" help:"how long open streams may finish on shutdown"`
	Admin              string           `yaml:"admin" help:"admin listener for metrics and health checks, HOST:PORT (empty: off); it has no authentication, so keep it private"`
	AdminPprof         bool             `yaml:"admin_pprof" help:"serve Go profiling (net/http/pprof) under /debug/pprof/ on the admin listener"`
	Procs              int              `yaml:"procs" help:"threads running Go code at once (GOMAXPROCS; 0: one per CPU); a GOMAXPROCS environment variable takes precedence"`
	ExitWhenIdle       time.Duration    `yaml:"exit_when_idle" help:"stop the exit (status 0) when no stream has been open for this long since the last one closed (0: never; default 5m on ECS, else 0)"`
	ExitWhenUnused     time.Duration    `yaml:"exit_when_unused" help:"stop the exit when no stream has been opened for this long since it started (0: never; default 2m on ECS, else 0)"`
	Lease              bool             `yaml:"lease" help:"on ECS, keep the tag fluidity:lease-until on this task at the time the exit would go idle, for the control plane's sweep (default: on when ECS_CONTAINER_METADATA_URI_V4 is set)"`
	LeaseInterval      time.Duration    `yaml:"lease_interval" help:"how often the lease is renewed (ECS is called only when it has moved)"`
	IAM                serverIAMConfig  `yaml:"iam"`
	Log                serviceLogConfig `yaml:"log"`

	policy      *egress.Policy
	metadataURI string                 // ECS_CONTAINER_METADATA_URI_V4: set on ECS
	tls         *tls.Config            // loaded from a certificate store, when certs is a URI
	revocations *pki.RevocationWatcher // the crl and revoked files, once loaded; nil if none
}

// Defaults on ECS, where an exit runs on demand and should stop itself.
const (
	ecsExitWhenIdle   = 5 * time.Minute
	ecsExitWhenUnused = 2 * time.Minute
)

// onECS applies the defaults of an exit that runs in an ECS task, whose
// task metadata endpoint is metadataURI (empty elsewhere): it stops when
// idle and keeps a lease. Flags and the file can still turn either off.
func (c *serverConfig) onECS(metadataURI string) {
	c.metadataURI = metadataURI
	if metadataURI == "" {
		return
	}
	c.ExitWhenIdle = ecsExitWhenIdle
	c.ExitWhenUnused = ecsExitWhenUnused
	c.Lease = true
}

func defaultServerConfig() serverConfig {
	return serverConfig{
		Listen:             ":8443",
		HandshakeTimeout:   10 * time.Second,
		HeaderTimeout:      10 * time.Second,
		DialTimeout:        10 * time.Second,
		MaxStreams:         10000,
		MaxLinks:           1024,
		MaxLinksPerClient:  16,
		MaxTunnels:         64,
		RevocationInterval: 5 * time.Second,
		PingInterval:       30 * time.Second,
		PingTimeout:        15 * time.Second,
		ShutdownTimeout:    10 * time.Second,
		LeaseInterval:      ecstask.DefaultInterval,
		IAM:                defaultServerIAM(),
		Procs:              defaultProcs,
		Log:                defaultServiceLog(),
	}
}

func (c *serverConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port (example: :8443)", c.Listen)
	}
	if certstore.IsURI(c.Certs) {
		if _, err := certstore.Parse(c.Certs); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if c.Cert != "" || c.Key != "" || c.CA != "" {
			return fmt.Errorf("cert, key, ca: not with certs %s, whose bundle holds the certificate, the key and the CA; drop --cert, --key and --ca", c.Certs)
		}
	} else if _, _, _, err := c.files().resolve(pki.ServerCertFile, pki.ServerKeyFile); err != nil {
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
		return errors.New("max_links_per_client: must be at least 1 (default 16)")
	}
	if c.MaxTunnels < 1 {
		return errors.New("max_tunnels_per_client: must be at least 1 (default 64)")
	}
	if c.RevocationInterval <= 0 {
		return errors.New("revocation_interval: must be positive (example: 5s)")
	}
	if c.Revoked != "" {
		if _, err := os.Stat(c.Revoked); err != nil {
			return fmt.Errorf("revoked: %w; create it (one serial number or sha256:FINGERPRINT a line) or drop --revoked", err)
		}
	}
	if c.CRL != "" {
		if _, err := os.Stat(c.CRL); err != nil {
			return fmt.Errorf("crl: %w; make it with 'fluidity certs revoke --dir CA-DIR NAME' and copy it here, or drop --crl", err)
		}
	}
	if c.LinkIdleTimeout < 0 || c.StreamIdleTimeout < 0 {
		return errors.New("link_idle_timeout, stream_idle_timeout: must not be negative (0 turns them off)")
	}
	if c.ExitWhenIdle < 0 || c.ExitWhenUnused < 0 {
		return errors.New("exit_when_idle, exit_when_unused: must not be negative (0 turns them off)")
	}
	if c.Lease {
		if c.metadataURI == "" {
			return fmt.Errorf("lease: the exit is not on ECS (%s is not set), so it has no task to keep a lease on; drop --lease", ecstask.MetadataEnv)
		}
		if c.LeaseInterval <= 0 {
			return errors.New("lease_interval: must be positive (example: 1m)")
		}
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

// loadRevocations loads the crl and revoked files into c.revocations:
// crl, or revoked.crl in the certs directory if it exists (and once it
// appears). onChange runs after each reload.
func (c *serverConfig) loadRevocations(log *slog.Logger, onChange func()) error {
	rc := pki.RevocationConfig{List: c.Revoked, CRL: c.CRL, Interval: c.RevocationInterval, OnChange: onChange, Logger: log}
	if rc.CRL == "" && c.Certs != "" && !certstore.IsURI(c.Certs) {
		rc.CRL, rc.CRLOptional = filepath.Join(c.Certs, pki.CRLFile), true
	}
	if rc.CRL == "" && rc.List == "" {
		return nil
	}
	if _, _, ca, err := c.files().resolve(pki.ServerCertFile, pki.ServerKeyFile); err == nil {
		if rc.CAs, err = pki.LoadCACertificates(ca); err != nil {
			return err
		}
	}
	w, err := pki.NewRevocationWatcher(rc)
	if err != nil {
		return fmt.Errorf("crl, revoked: %w", err)
	}
	serials, fps, entries := w.Current().Len()
	log.Info("revocation list loaded", "crl", rc.CRL, "revoked", rc.List, "serials", serials, "fingerprints", fps, "crl_entries", entries,
		"interval", rc.Interval)
	c.revocations = w
	return nil
}

// parseServer reads the exit's configuration: the defaults (those of ECS
// when env says the exit runs there), the file, the environment, args.
func parseServer(env Env, args []string) (serverConfig, error) {
	cfg := defaultServerConfig()
	cfg.onECS(lookupEnv(env.Environ, ecstask.MetadataEnv))
	fs := newFlagSet(env, "server", "server [--listen ADDR] --certs DIR|ssm://NAME|secretsmanager://NAME [flags]", `
Run the exit server: a standard HTTPS CONNECT proxy (HTTP/2 and HTTP/1.1)
that requires a client certificate from your private CA and connects to
targets under the egress policy. By default it refuses loopback, private,
link-local (including cloud metadata) and unique-local targets.
With --iam-allow it also checks the AWS IAM identity a stream proves
(agents with --iam, or 'fluidity token'), through STS.
On ECS (ECS_CONTAINER_METADATA_URI_V4 set) it stops by itself when idle
(--exit-when-idle 5m, --exit-when-unused 2m) and keeps a lease on its task.`)
	_, err := parse(env, fs, &cfg, args)
	return cfg, err
}

func runServer(ctx context.Context, env Env, args []string) error {
	cfg, err := parseServer(env, args)
	if err != nil {
		return err
	}
	log, flushLog := cfg.Log.logger(env.Stderr)
	defer flushLog()
	applyProcs(env, cfg.Procs, log)
	if certstore.IsURI(cfg.Certs) {
		if cfg.tls, err = (&certstore.Store{}).ServerConfig(ctx, cfg.Certs); err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		log.Info("certificates loaded", "from", cfg.Certs)
	}
	var srv *exit.Server
	// Open links whose certificates a reload revokes are closed; Run, which
	// calls this, starts after srv is set.
	if err := cfg.loadRevocations(log, func() { srv.Recheck() }); err != nil {
		return err
	}
	reg := metrics.NewRegistry()
	srv, closeIAM, err := newExit(cfg, log, metrics.NewExit(reg, 0))
	if err != nil {
		return err
	}
	defer closeIAM()
	var lease *ecstask.Lease
	if cfg.Lease {
		policy := cfg.leasePolicy()
		lease, err = ecstask.NewLease(ctx, ecstask.LeaseConfig{
			MetadataURI: cfg.metadataURI,
			Until: func(now time.Time) time.Time {
				at, _ := policy.IdleAt(srv.Activity(), now)
				return at
			},
			Interval: cfg.LeaseInterval,
			Logger:   log,
		})
		if err != nil {
			return err
		}
	}
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
	if idle := cfg.idlePolicy(); idle != (exit.IdlePolicy{}) {
		log.Info("the exit stops when idle", "exit_when_idle", idle.After, "exit_when_unused", idle.Unused)
	}
	log.Info("exit server listening", "addr", ln.Addr().String(), "allow_private", cfg.AllowPrivate,
		"max_links", cfg.MaxLinks, "max_links_per_client", cfg.MaxLinksPerClient, "max_tunnels_per_client", cfg.MaxTunnels, "max_streams", cfg.MaxStreams)
	if adminLn != nil {
		log.Info("admin listening", "addr", adminLn.Addr().String(), "pprof", cfg.AdminPprof)
	}
	acfg := admin.Config{Gatherer: reg, Pprof: cfg.AdminPprof, Logger: log, Ready: srv.Ready, Status: func() any {
		return newExitReport(srv, cfg.idlePolicy(), lease, time.Now())
	}}
	return serveWithAdmin(ctx, adminLn, acfg, func(ctx context.Context) error {
		return serveExit(ctx, srv, ln, cfg.idlePolicy(), lease, cfg.revocations, log)
	})
}

// idlePolicy is when the exit stops by itself.
func (c *serverConfig) idlePolicy() exit.IdlePolicy {
	return exit.IdlePolicy{After: c.ExitWhenIdle, Unused: c.ExitWhenUnused}
}

// leasePolicy is the idle policy the lease reports: the exit's own, or
// ECS's defaults where it has none, so the sweep sees a lease that runs out
// even when the exit does not stop itself.
func (c *serverConfig) leasePolicy() exit.IdlePolicy {
	p := c.idlePolicy()
	if p.After == 0 {
		p.After = ecsExitWhenIdle
	}
	if p.Unused == 0 {
		p.Unused = ecsExitWhenUnused
	}
	return p
}

// serveExit serves the exit on ln until ctx ends or, under a non-zero
// idle policy, the exit is idle; it keeps lease, if any, and the
// revocations, if any, meanwhile. Either way the exit stops as on a
// signal: GOAWAY, open streams drain, and Serve returns.
func serveExit(ctx context.Context, srv *exit.Server, ln net.Listener, idle exit.IdlePolicy, lease *ecstask.Lease, revocations *pki.RevocationWatcher, log *slog.Logger) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	if idle != (exit.IdlePolicy{}) {
		wg.Go(func() {
			reason, err := srv.WaitIdle(ctx, idle)
			if err == nil {
				log.Info("exit server idle: stopping", "reason", reason)
				stop()
			}
		})
	}
	if lease != nil {
		wg.Go(func() { lease.Run(ctx) })
	}
	if revocations != nil {
		wg.Go(func() { revocations.Run(ctx) })
	}
	err := srv.Serve(ctx, ln)
	stop()
	return err
}

// newExit builds an exit server from a validated configuration. The
// returned func releases the IAM verifier, if any, once Serve has returned.
func newExit(cfg serverConfig, log *slog.Logger, obs exit.Observer) (srv *exit.Server, closeIAM func(), err error) {
	closeIAM = func() {}
	tlsCfg := cfg.tls
	if tlsCfg == nil {
		cert, key, ca, _ := cfg.files().resolve(pki.ServerCertFile, pki.ServerKeyFile)
		if tlsCfg, err = pki.ServerConfig(cert, key, ca); err != nil {
			return nil, closeIAM, err
		}
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
	var revoked func([]*x509.Certificate) error
	if cfg.revocations != nil {
		revoked = cfg.revocations.Check
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
		MaxLinks:            cfg.MaxLinks,
		MaxLinksPerClient:   cfg.MaxLinksPerClient,
		MaxTunnelsPerClient: cfg.MaxTunnels,
		Revoked:             revoked,
		Authorize:           authorize,
		Observer:            obs,
		Logger:              log,
	})
	if err != nil {
		closeIAM()
		return nil, func() {}, err
	}
	return srv, closeIAM, nil
}
