package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"fluidity/internal/sysproxy"
)

// systemProxy is the system whose proxy setting is changed; tests replace
// it.
var systemProxy = sysproxy.Default

// systemProxyOn points the system proxy at s, saved in stateDir, and
// returns the func that puts the previous setting back.
func systemProxyOn(ctx context.Context, s sysproxy.Setting, stateDir string, log *slog.Logger) (restore func(), err error) {
	sys := systemProxy()
	if err := sysproxy.On(ctx, sys, stateDir, s); err != nil {
		return nil, fmt.Errorf("%w (run without --system-proxy to leave the setting alone)", err)
	}
	log.Info("system proxy set; the previous setting comes back when the agent stops", "system", sys.Name(), "proxy", s.Server, "pac", s.PACURL)
	return func() {
		switch restored, err := restoreSystemProxy(ctx, sys, stateDir); {
		case err != nil:
			log.Error("system proxy not restored: run 'fluidity proxy off'", "err", err)
		case restored:
			log.Info("system proxy restored", "system", sys.Name())
		default:
			log.Info("system proxy already restored (by 'fluidity proxy off')", "system", sys.Name())
		}
	}, nil
}

// restoreSystemProxy puts back the setting saved in dir, if there is one
// (restored false: nothing was saved). It has its own time limit, as it
// runs when an agent stops: ctx may have ended.
func restoreSystemProxy(ctx context.Context, sys sysproxy.System, dir string) (restored bool, err error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err = sysproxy.Off(ctx, sys, dir)
	if errors.Is(err, sysproxy.ErrNothingSaved) {
		return false, nil
	}
	return err == nil, err
}

func runProxy(ctx context.Context, env Env, args []string) error {
	return runSubcommand(ctx, env, "proxy", []command{
		{"on", "point this user's system proxy at the agent (or a PAC URL), saving the current setting", runProxyOn},
		{"off", "put back the setting saved by 'proxy on' or 'agent --system-proxy'", runProxyOff},
		{"status", "say whether fluidity has changed the system proxy", runProxyStatus},
	}, args)
}

type proxyOnConfig struct {
	Proxy    string `yaml:"proxy" help:"the agent's address (HOST:PORT) to point the system proxy at"`
	PAC      string `yaml:"pac" help:"point the system proxy at this PAC URL instead (http://127.0.0.1:8080/proxy.pac)"`
	StateDir string `yaml:"state_dir" help:"where the previous setting is saved (default: fluidity in your config directory)"`
}

func (c *proxyOnConfig) Validate() error {
	if c.PAC != "" {
		c.Proxy = ""
	}
	return c.setting().Validate()
}

func (c *proxyOnConfig) setting() sysproxy.Setting {
	return sysproxy.Setting{Server: c.Proxy, PACURL: c.PAC}
}

type proxyOffConfig struct {
	StateDir string `yaml:"state_dir" help:"where the previous setting was saved (default: fluidity in your config directory)"`
}

func (c *proxyOffConfig) Validate() error { return nil }

func runProxyOn(ctx context.Context, env Env, args []string) error {
	cfg := proxyOnConfig{Proxy: "127.0.0.1:8080"}
	fs := newFlagSet(env, "proxy on", "proxy on [--proxy HOST:PORT | --pac URL]", `
Point this user's system proxy at the agent: WinINet's setting on Windows
(Edge, Chrome and most programs), every enabled network service on macOS,
GNOME's setting on Linux. The current setting is saved first, and 'fluidity
proxy off' puts it back. Loopback and your own exclusions are never proxied.
The agent keeps running on its own; 'fluidity agent --system-proxy' does
this at start and undoes it at exit.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	sys := systemProxy()
	s := cfg.setting()
	if err := sysproxy.On(ctx, sys, stateDir(cfg.StateDir), s); err != nil {
		return err
	}
	target := s.Server
	if s.PACURL != "" {
		target = "the PAC file " + s.PACURL
	}
	fmt.Fprintf(env.Stdout, "System proxy (%s) set to %s; 'fluidity proxy off' puts the previous setting back.\n", sys.Name(), target)
	if s.Server != "" {
		if c, err := net.DialTimeout("tcp", s.Server, time.Second); err != nil {
			fmt.Fprintf(env.Stdout, "Nothing answers on %s yet: start the agent ('fluidity agent' or 'fluidity up') or programs cannot connect.\n", s.Server)
		} else {
			c.Close()
		}
	}
	return nil
}

func runProxyOff(ctx context.Context, env Env, args []string) error {
	cfg := proxyOffConfig{}
	fs := newFlagSet(env, "proxy off", "proxy off", `
Put back the system proxy setting saved by 'fluidity proxy on' or 'fluidity
agent --system-proxy', for example after the agent was killed before it
could.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	sys := systemProxy()
	set, err := sysproxy.Off(ctx, sys, stateDir(cfg.StateDir))
	if errors.Is(err, sysproxy.ErrNothingSaved) {
		fmt.Fprintf(env.Stdout, "Nothing to do: %v.\n", err)
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "System proxy (%s) put back as it was before fluidity set it to %s%s.\n", sys.Name(), set.Server, set.PACURL)
	return nil
}

func runProxyStatus(ctx context.Context, env Env, args []string) error {
	cfg := proxyOffConfig{}
	fs := newFlagSet(env, "proxy status", "proxy status", `
Say whether fluidity has set the system proxy and not yet put it back.`)
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	set, err := sysproxy.Applied(stateDir(cfg.StateDir))
	switch {
	case errors.Is(err, sysproxy.ErrNothingSaved):
		fmt.Fprintf(env.Stdout, "The system proxy is as you set it: fluidity has not changed it.\n")
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintf(env.Stdout, "The system proxy points at %s%s (set by fluidity); 'fluidity proxy off' puts back the previous setting.\n", set.Server, set.PACURL)
	return nil
}
