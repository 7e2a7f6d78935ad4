package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"

	"fluidity/internal/agent"
	"fluidity/internal/metrics"
	"fluidity/internal/pki"
)

type upConfig struct {
	Listen       string           `yaml:"listen" help:"local proxy address (HTTP, CONNECT and SOCKS5 on one port)"`
	StateDir     string           `yaml:"state_dir" help:"where the local certificates are kept (default: fluidity in your config directory)"`
	AllowPrivate bool             `yaml:"allow_private" help:"let the local exit reach loopback, private and link-local addresses (services on this machine and your network); off by default, so a page loaded through the proxy cannot reach them"`
	Admin        string           `yaml:"admin" help:"admin listener (loopback) for metrics, health checks and 'fluidity status' (empty: off)"`
	AdminPprof   bool             `yaml:"admin_pprof" help:"serve Go profiling (net/http/pprof) under /debug/pprof/ on the admin listener"`
	Procs        int              `yaml:"procs" help:"threads running Go code at once (GOMAXPROCS; 0: one per CPU); a GOMAXPROCS environment variable takes precedence"`
	Log          serviceLogConfig `yaml:"log"`
}

func defaultUpConfig() upConfig {
	return upConfig{Listen: "127.0.0.1:8080", Admin: defaultAgentAdmin, Procs: defaultProcs, Log: defaultServiceLog()}
}

func (c *upConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %q is not host:port (example: 127.0.0.1:8080)", c.Listen)
	}
	if err := validateAdmin(c.Admin); err != nil {
		return err
	}
	if err := validateProcs(c.Procs); err != nil {
		return err
	}
	return c.Log.validate()
}

// stateDir is dir, the state_dir a command was given, or if it is empty
// the default: fluidity in the user's config directory.
func stateDir(dir string) string {
	if dir != "" {
		return dir
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ".fluidity"
	}
	return filepath.Join(dir, "fluidity")
}

func runUp(ctx context.Context, env Env, args []string) error {
	cfg := defaultUpConfig()
	fset := newFlagSet(env, "up", "up [--listen ADDR] [--state-dir DIR] [--allow-private]", `
Run Fluidity on this machine: an exit server on a loopback port and the
local proxy in front of it, in one process, with certificates made on the
first run. It shows the whole path working; for a real exit elsewhere, see
'fluidity server' and 'fluidity agent'. Like every exit, it refuses
loopback, private and link-local targets unless --allow-private is given.`)
	if _, err := parse(env, fset, &cfg, args); err != nil {
		return err
	}
	cfg.StateDir = stateDir(cfg.StateDir)
	log, flushLog := cfg.Log.logger(env.Stderr)
	defer flushLog()
	applyProcs(env, cfg.Procs, log)
	certDir := filepath.Join(cfg.StateDir, "certs")
	if err := ensureCerts(certDir); err != nil {
		return err
	}

	scfg := defaultServerConfig()
	scfg.Listen = "127.0.0.1:0"
	scfg.Certs = certDir
	scfg.AllowPrivate = cfg.AllowPrivate
	if err := scfg.Validate(); err != nil {
		return err
	}
	// One registry for both sides: their metric names differ.
	reg := metrics.NewRegistry()
	srv, closeIAM, err := newExit(scfg, log.With("side", "exit"), metrics.NewExit(reg, 0))
	if err != nil {
		return err
	}
	defer closeIAM() // a no-op: up has no IAM checks
	exitLn, err := net.Listen("tcp", scfg.Listen)
	if err != nil {
		return err
	}

	acfg := defaultAgentConfig()
	acfg.Listen = cfg.Listen
	acfg.Server = exitLn.Addr().String()
	acfg.Certs = certDir
	if err := acfg.Validate(); err != nil {
		exitLn.Close()
		return err
	}
	a, closeAgentIAM, err := newAgent(ctx, acfg, nil, log.With("side", "agent"), reg)
	if err != nil {
		exitLn.Close()
		return err
	}
	defer closeAgentIAM() // a no-op: up has no IAM identity
	agentLn, err := agent.Listen(acfg.Listen, false)
	if err != nil {
		exitLn.Close()
		return err
	}
	adminLn, err := listenAdmin(cfg.Admin, false, "--admin-allow-non-loopback on 'fluidity agent'", log)
	if err != nil {
		exitLn.Close()
		agentLn.Close()
		return err
	}

	proxy := agentLn.Addr().String()
	fmt.Fprintf(env.Stdout, `Fluidity is up: local proxy on %s, exit on %s.
HTTP, HTTPS (CONNECT) and SOCKS5 all use that one port. Try:
  curl -x http://%s https://example.com
  curl --socks5-hostname %s https://example.com
`, proxy, exitLn.Addr(), proxy, proxy)
	if adminLn != nil {
		statusCmd := "fluidity status"
		if a := adminLn.Addr().String(); a != defaultAgentAdmin {
			statusCmd += " --admin " + a
		}
		fmt.Fprintf(env.Stdout, "Admin (metrics, health, status) on http://%s; see the link with '%s'.\n", adminLn.Addr(), statusCmd)
	}
	if cfg.AllowPrivate {
		fmt.Fprintf(env.Stdout, "Private targets are allowed (--allow-private): anything loaded through the proxy can reach services on this machine and your network.\n")
	} else {
		fmt.Fprintf(env.Stdout, "Private targets (this machine, your network, cloud metadata) are refused; --allow-private lets them through.\n")
	}
	fmt.Fprintf(env.Stdout, "Certificates are in %s. Press Ctrl-C to stop.\n", certDir)

	var wg sync.WaitGroup
	var exitErr error
	exitCtx, stopExit := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() {
		defer wg.Done()
		exitErr = srv.Serve(exitCtx, exitLn)
	}()
	acfgAdmin := agentAdmin(a, reg, cfg.AdminPprof, log.With("side", "admin"))
	acfgAdmin.Ready = func() error {
		if err := a.Ready(); err != nil {
			return err
		}
		if err := srv.Ready(); err != nil {
			return fmt.Errorf("the local exit: %w", err)
		}
		return nil
	}
	agentErr := serveWithAdmin(ctx, adminLn, acfgAdmin, func(ctx context.Context) error {
		return a.Serve(ctx, agentLn)
	})
	stopExit() // after the agent has drained
	wg.Wait()
	return errors.Join(agentErr, exitErr)
}

// ensureCerts creates the local certificates on first run and reuses them
// afterwards.
func ensureCerts(dir string) error {
	_, err := os.Stat(filepath.Join(dir, pki.CAFile))
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return pki.Init(pki.InitOptions{Dir: dir})
}
