package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"fluidity/internal/admin"
	"fluidity/internal/agent"
	"fluidity/internal/lifecycle"
	"fluidity/internal/metrics"
	"fluidity/internal/pki"
	"fluidity/internal/route"
	"fluidity/internal/sysproxy"
	"fluidity/internal/tunnel"
	"fluidity/internal/upstream"
)

type agentConfig struct {
	Listen           string           `yaml:"listen" help:"local proxy address (HTTP, CONNECT and SOCKS5 on one port)"`
	AllowNonLoopback bool             `yaml:"allow_non_loopback" help:"permit a non-loopback --listen address, for the clients in --allow-clients only"`
	AllowClients     []string         `yaml:"allow_clients" help:"with --allow-non-loopback: client addresses or CIDRs served (example: 172.16.0.0/12 for WSL); loopback always is"`
	SystemProxy      bool             `yaml:"system_proxy" help:"point this user's system proxy at the agent while it runs, and put the previous setting back on exit"`
	SystemProxyPAC   string           `yaml:"system_proxy_pac" help:"with --system-proxy: point the system proxy at this PAC URL (default: the agent's own PAC file when --direct is set, else the agent's address)"`
	Lifecycle        string           `yaml:"lifecycle" help:"where the exit comes from: static (--server, always running) or aws (a task of your own, woken on demand through --control-url)"`
	Server           string           `yaml:"server" help:"exit server address, HOST:PORT (lifecycle static)"`
	ControlURL       string           `yaml:"control_url" help:"the control plane's function URL (lifecycle aws; printed by 'fluidity aws deploy'); requests are signed with your AWS credentials (--aws-profile)"`
	WakeTimeout      time.Duration    `yaml:"wake_timeout" help:"how long a wake may take before the agent gives up and stops the exit (lifecycle aws; Fargate takes 30-90s)"`
	WakeOnStart      bool             `yaml:"wake_on_start" help:"wake the exit when the agent starts, not at the first connection (lifecycle aws)"`
	StopOnExit       bool             `yaml:"stop_on_exit" help:"stop the exit when the agent stops (lifecycle aws); otherwise it stops itself once idle"`
	StateDir         string           `yaml:"state_dir" help:"where the agent keeps its state: the saved system proxy setting, the record of exit hours (default: fluidity in your config directory)"`
	ServerName       string           `yaml:"server_name" help:"name the exit's certificate is verified against, whatever address is dialed"`
	Certs            string           `yaml:"certs" help:"directory with ca.crt, client.crt and client.key (made by 'fluidity certs init')"`
	Cert             string           `yaml:"cert" help:"client certificate file (default: client.crt in --certs)"`
	Key              string           `yaml:"key" help:"client private key file (default: client.key in --certs)"`
	CA               string           `yaml:"ca" help:"CA certificate the exit's certificate must chain to (default: ca.crt in --certs)"`
	Links            int              `yaml:"links" help:"TCP connections (links) to the exit, each carrying its share of the streams: a loss on one holds only its own streams (1 to 8)"`
	PingInterval     time.Duration    `yaml:"ping_interval" help:"how often to check that the link is alive"`
	PingTimeout      time.Duration    `yaml:"ping_timeout" help:"how long the exit may take to answer a ping before the link is declared dead"`
	LinkWait         time.Duration    `yaml:"link_wait" help:"how long a new client connection waits for the link before it gets 503"`
	DialTimeout      time.Duration    `yaml:"dial_timeout" help:"deadline for connecting to the exit (TCP, TLS and first ping)"`
	HeaderTimeout    time.Duration    `yaml:"header_timeout" help:"deadline for a client's request header or SOCKS5 negotiation"`
	IdleTimeout      time.Duration    `yaml:"idle_timeout" help:"idle keep-alive client connections, and request bodies that send nothing, are cut off after this"`
	ShutdownTimeout  time.Duration    `yaml:"shutdown_timeout" help:"how long open connections may finish on shutdown"`
	MaxConnections   int              `yaml:"max_connections" help:"client connections open at once; more are closed at once, with a log line"`
	FastOpen         bool             `yaml:"fast_open" help:"answer CONNECT and SOCKS5 requests to fast_open_ports at once and send the client's first bytes with the request to the exit, a round trip sooner; a refused target then closes the client's connection (the log says why)"`
	FastOpenPorts    []string         `yaml:"fast_open_ports" help:"target ports where clients speak first, for fast_open"`
	Admin            string           `yaml:"admin" help:"admin listener for metrics, health checks and 'fluidity status' (empty: off)"`
	AdminPprof       bool             `yaml:"admin_pprof" help:"serve Go profiling (net/http/pprof) under /debug/pprof/ on the admin listener"`
	AdminNonLoopback bool             `yaml:"admin_allow_non_loopback" help:"permit a non-loopback --admin address (its endpoints have no authentication)"`
	Procs            int              `yaml:"procs" help:"threads running Go code at once (GOMAXPROCS; 0: one per CPU); a GOMAXPROCS environment variable takes precedence"`
	IAM              agentIAMConfig   `yaml:"iam"`
	Log              serviceLogConfig `yaml:"log"`
	Network          NetworkConfig    `yaml:",inline"`

	// environ is the environment the command was given, where the upstream
	// proxy's HTTPS_PROXY and NO_PROXY are read; nil means the process's.
	environ []string
}

// defaultLinks is the agent's pool of links to the exit: on a lossy path a
// page loads faster through 3 than through one, and no slower on a clean
// one (docs/performance.md, "Loss: one link or a pool").
const defaultLinks = 3

func defaultAgentConfig() agentConfig {
	return agentConfig{
		Listen:          "127.0.0.1:8080",
		Lifecycle:       lifecycleStatic,
		WakeTimeout:     3 * time.Minute,
		ServerName:      pki.DefaultServerName,
		Links:           defaultLinks,
		PingInterval:    5 * time.Second,
		PingTimeout:     10 * time.Second,
		LinkWait:        30 * time.Second,
		DialTimeout:     10 * time.Second,
		HeaderTimeout:   10 * time.Second,
		IdleTimeout:     2 * time.Minute,
		ShutdownTimeout: 10 * time.Second,
		MaxConnections:  4096,
		FastOpen:        true,
		FastOpenPorts:   []string{"443"},
		Admin:           defaultAgentAdmin,
		IAM:             defaultAgentIAM(),
		Procs:           defaultProcs,
		Log:             defaultServiceLog(),
		Network:         defaultNetworkConfig(),
	}
}

// upstreamDialer is how the agent reaches the exit and the control plane:
// through the upstream proxy, if one is configured or in the environment.
func (c *agentConfig) upstreamDialer() (*upstream.Dialer, error) {
	return c.Network.dialer(c.environ)
}

func (c *agentConfig) files() tlsFiles { return tlsFiles{c.Certs, c.Cert, c.Key, c.CA} }

func (c *agentConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port (example: 127.0.0.1:8080)", c.Listen)
	}
	if err := c.validateListen(); err != nil {
		return err
	}
	if err := c.validateLifecycle(); err != nil {
		return err
	}
	if c.ServerName == "" {
		return errors.New("server_name: must not be empty (default: fluidity-server)")
	}
	if _, _, _, err := c.files().resolve(pki.ClientCertFile, pki.ClientKeyFile); err != nil {
		return err
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"ping_interval", c.PingInterval}, {"ping_timeout", c.PingTimeout}, {"link_wait", c.LinkWait}, {"wake_timeout", c.WakeTimeout},
		{"dial_timeout", c.DialTimeout}, {"header_timeout", c.HeaderTimeout}, {"idle_timeout", c.IdleTimeout},
		{"shutdown_timeout", c.ShutdownTimeout}} {
		if d.v <= 0 {
			return fmt.Errorf("%s: must be positive (example: 10s)", d.key)
		}
	}
	if c.MaxConnections < 1 {
		return errors.New("max_connections: must be at least 1 (default 4096)")
	}
	if c.Links < 1 || c.Links > tunnel.MaxLinks {
		return fmt.Errorf("links: must be from 1 to %d (default %d)", tunnel.MaxLinks, defaultLinks)
	}
	if _, err := c.fastOpenPorts(); err != nil {
		return err
	}
	if err := validateAdmin(c.Admin); err != nil {
		return err
	}
	if err := c.Network.validate(); err != nil {
		return err
	}
	if err := c.IAM.validate(); err != nil {
		return err
	}
	if err := validateProcs(c.Procs); err != nil {
		return err
	}
	return c.Log.validate()
}

// validateListen checks who may use the proxy and the system proxy keys.
func (c *agentConfig) validateListen() error {
	if _, err := agent.ParseAllowedClients(c.AllowClients); err != nil {
		return fmt.Errorf("allow_clients: %w", err)
	}
	switch {
	case c.AllowNonLoopback && len(c.AllowClients) == 0:
		return errors.New("allow_clients: required with allow_non_loopback: the addresses that may use the proxy " +
			"(--allow-clients 172.16.0.0/12 for WSL in NAT mode), or anyone who reaches the port can use your exit")
	case !c.AllowNonLoopback && len(c.AllowClients) > 0:
		return errors.New("allow_clients: only for a non-loopback --listen address, with --allow-non-loopback; loopback clients are always served")
	case c.SystemProxyPAC != "" && !c.SystemProxy:
		return errors.New("system_proxy_pac: only with --system-proxy")
	}
	if c.SystemProxy {
		if err := c.systemProxySetting().Validate(); err != nil {
			return fmt.Errorf("system_proxy_pac: %w", err)
		}
	}
	return nil
}

// systemProxySetting is what --system-proxy points the system at: the PAC
// URL given; with split routing (direct), the PAC file the agent serves, so
// programs send those targets direct in the first place; else the agent's
// address (on loopback when it listens on every address).
func (c *agentConfig) systemProxySetting() sysproxy.Setting {
	if c.SystemProxyPAC != "" {
		return sysproxy.Setting{PACURL: c.SystemProxyPAC}
	}
	host, port, _ := net.SplitHostPort(c.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	addr := net.JoinHostPort(host, port)
	if len(c.Network.Direct) > 0 {
		return sysproxy.Setting{PACURL: "http://" + addr + agent.PACPath}
	}
	return sysproxy.Setting{Server: addr}
}

// fastOpenPorts parses fast_open_ports.
func (c *agentConfig) fastOpenPorts() ([]int, error) {
	var ports []int
	for _, p := range c.FastOpenPorts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("fast_open_ports: %q is not a port from 1 to 65535 (example: 443,993)", p)
		}
		ports = append(ports, n)
	}
	return ports, nil
}

// Lifecycles: where an agent's exit comes from.
const (
	lifecycleStatic = "static" // a fixed address, always running
	lifecycleAWS    = "aws"    // a task of one's own, woken through the control plane
)

// validateLifecycle checks the keys that say where the exit is.
func (c *agentConfig) validateLifecycle() error {
	switch c.Lifecycle {
	case lifecycleStatic:
		if c.Server == "" {
			return errors.New("server: required: the exit's HOST:PORT (for example --server exit.example.com:8443), or --lifecycle aws with --control-url for an exit on demand")
		}
		if _, port, err := net.SplitHostPort(c.Server); err != nil || port == "" {
			return fmt.Errorf("server: %q is not HOST:PORT (example: exit.example.com:8443)", c.Server)
		}
	case lifecycleAWS:
		if c.ControlURL == "" {
			return errors.New("control_url: required with lifecycle aws: the control plane's function URL, printed by 'fluidity aws deploy' (--control-url https://ID.lambda-url.REGION.on.aws/)")
		}
		if c.Server != "" {
			return errors.New("server: not used with lifecycle aws (the control plane says where the exit is); remove it, or use --lifecycle static")
		}
	default:
		return fmt.Errorf("lifecycle: %q is not static or aws", c.Lifecycle)
	}
	return nil
}

func runAgent(ctx context.Context, env Env, args []string) error {
	cfg := defaultAgentConfig()
	fs := newFlagSet(env, "agent", "agent --server HOST:PORT --certs DIR [flags]", `
Run the local proxy. It listens on one localhost port that speaks HTTP proxy
(plain requests, CONNECT, WebSocket) and SOCKS5, and carries every client
connection over mutually-authenticated TLS 1.3 links to the exit server (a
pool of --links, 3 by default: a loss on one link holds only its streams).
Each link is checked with pings and re-established with backoff, forever.
With --iam, every stream also carries a token proving this machine's AWS
IAM identity, for exits that check it (see 'fluidity token').`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	cfg.environ = env.Environ
	log, flushLog := cfg.Log.logger(env.Stderr)
	defer flushLog()
	applyProcs(env, cfg.Procs, log)
	reg := metrics.NewRegistry()
	exit, err := newLifecycle(ctx, cfg, log)
	if err != nil {
		return err
	}
	a, closeIAM, err := newAgent(ctx, cfg, exit, log, reg)
	if err != nil {
		return err
	}
	defer closeIAM()
	ln, err := agent.Listen(cfg.Listen, cfg.AllowNonLoopback)
	if err != nil {
		return err
	}
	if cfg.AllowNonLoopback {
		allowed, _ := agent.ParseAllowedClients(cfg.AllowClients) // validated already
		ln = agent.AllowClients(ln, allowed, log)
		log.Warn("listening beyond loopback: the clients allowed can use your exit through this port",
			"listen", ln.Addr().String(), "allow_clients", strings.Join(cfg.AllowClients, ","))
	}
	if cfg.SystemProxy {
		restore, err := systemProxyOn(ctx, cfg.systemProxySetting(), stateDir(cfg.StateDir), log)
		if err != nil {
			ln.Close()
			return err
		}
		defer restore()
	}
	adminLn, err := listenAdmin(cfg.Admin, cfg.AdminNonLoopback, "--admin-allow-non-loopback", log)
	if err != nil {
		ln.Close()
		return err
	}
	if adminLn != nil {
		log.Info("admin listening", "addr", adminLn.Addr().String(), "pprof", cfg.AdminPprof)
	}
	err = serveWithAdmin(ctx, adminLn, agentAdmin(a, reg, cfg.AdminPprof, log), func(ctx context.Context) error {
		return a.Serve(ctx, ln)
	})
	if exit != nil {
		exit.Close(cfg.StopOnExit)
	}
	return err
}

// agentAdmin is the admin configuration of an agent: its metrics, its
// readiness (link up) and its status report.
func agentAdmin(a *agent.Agent, reg *prometheus.Registry, pprof bool, log *slog.Logger) admin.Config {
	return admin.Config{
		Gatherer: reg,
		Ready:    a.Ready,
		Status:   func() any { return a.Report() },
		Pprof:    pprof,
		Logger:   log,
	}
}

// newAgent builds an agent from a validated configuration, with its
// metrics registered on reg; exit is its exit on demand, nil for a static
// one. With IAM on it starts the token source, which the returned func
// closes once Serve has returned; ctx bounds the credential check.
func newAgent(ctx context.Context, cfg agentConfig, exit *onDemand, log *slog.Logger, reg prometheus.Registerer) (a *agent.Agent, closeIAM func(), err error) {
	closeIAM = func() {}
	cert, key, ca, _ := cfg.files().resolve(pki.ClientCertFile, pki.ClientKeyFile)
	tlsCfg, err := pki.ClientConfig(cert, key, ca, cfg.ServerName)
	if err != nil {
		return nil, closeIAM, err
	}
	dialer, err := cfg.upstreamDialer()
	if err != nil {
		return nil, closeIAM, err
	}
	direct, err := route.Parse(cfg.Network.Direct)
	if err != nil {
		return nil, closeIAM, err
	}
	tcfg := tunnel.ClientConfig{
		Links:            cfg.Links,
		Conn:             tunnel.Config{PingInterval: cfg.PingInterval, PingTimeout: cfg.PingTimeout},
		DialTimeout:      cfg.DialTimeout,
		WaitTimeout:      cfg.LinkWait,
		NetDial:          dialer.DialContext,
		ExplainHandshake: explainHandshake(ca),
	}
	if cfg.Server != "" {
		if r, err := dialer.Route(cfg.Server); err == nil && r != "direct" {
			log.Info("reaching the exit "+r, "exit", cfg.Server)
		}
	}
	if exit != nil {
		// A connection that wakes the exit waits for the whole wake.
		tcfg.WaitTimeout = max(cfg.LinkWait, cfg.WakeTimeout+cfg.DialTimeout)
	}
	var iam string
	if src := agentTokens(ctx, cfg.IAM, dialer, log); src != nil {
		tcfg.Header = bearerHeader(src)
		closeIAM = func() { src.Close() }
		iam = cfg.IAM.describe()
	}
	m := metrics.NewAgent(reg, func() metrics.AgentSnapshot { return a.Snapshot() })
	var lc *lifecycle.Exit
	if exit != nil {
		lc = exit.Exit
	}
	fastPorts, _ := cfg.fastOpenPorts() // checked by Validate
	a, err = agent.New(agent.Config{
		Exit:            cfg.Server,
		Lifecycle:       lc,
		WakeOnStart:     cfg.WakeOnStart,
		TLS:             tlsCfg,
		Tunnel:          tcfg,
		HeaderTimeout:   cfg.HeaderTimeout,
		IdleTimeout:     cfg.IdleTimeout,
		SOCKSTimeout:    cfg.HeaderTimeout,
		ShutdownTimeout: cfg.ShutdownTimeout,
		MaxConnections:  cfg.MaxConnections,
		DisableFastOpen: !cfg.FastOpen,
		FastOpenPorts:   fastPorts,
		IAM:             iam,
		Direct:          direct,
		Observer:        m,
		Logger:          log,
	})
	if err != nil {
		closeIAM()
		return nil, func() {}, err
	}
	return a, closeIAM, nil
}
