package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"fluidity/internal/doctor"
	"fluidity/internal/lifecycle"
	"fluidity/internal/pki"
	"fluidity/internal/sysproxy"
	"fluidity/internal/upstream"
)

// doctorConfig is the agent's configuration, so doctor reads the same file
// and flags, and the target of its test request.
type doctorConfig struct {
	Agent  agentConfig `yaml:",inline"`
	Target string      `yaml:"doctor_target" help:"host:port that doctor's test request asks the exit to connect to"`
}

func (c *doctorConfig) Validate() error {
	if c.Target != "" {
		if _, port, err := net.SplitHostPort(c.Target); err != nil || port == "" {
			return fmt.Errorf("doctor_target: %q is not HOST:PORT (example: example.com:443)", c.Target)
		}
	}
	return c.Agent.Validate()
}

// errDoctorFailed makes the exit status non-zero when a step failed; the
// report has said why.
var errDoctorFailed = errors.New("doctor: a check failed (see above)")

func runDoctor(ctx context.Context, env Env, args []string) error {
	cfg := doctorConfig{Agent: defaultAgentConfig(), Target: "example.com:443"}
	fs := newFlagSet(env, "doctor", "doctor --server HOST:PORT --certs DIR [--json] (or --config agent.yaml)", `
Check, step by step, everything between this machine and a working tunnel,
and print a verdict for each step with the fix: the configuration and
certificates, the system and environment proxy settings, reaching the exit
directly and through the upstream proxy, TLS interception, the mutual TLS
handshake, the IAM credentials and token, the control plane, a test request
through the tunnel and the round-trip time. It reads the agent's
configuration: --config, or the same flags as 'fluidity agent'. The exit
status is 1 when a step failed.`)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parse(env, fs, &cfg, args); err != nil {
		return err
	}
	cfg.Agent.environ = env.Environ
	ac := cfg.Agent
	d, err := ac.upstreamDialer()
	if err != nil {
		return err
	}
	cert, key, ca, _ := ac.files().resolve(pki.ClientCertFile, pki.ClientKeyFile)
	dc := doctor.Config{
		CertFile: cert, KeyFile: key, CAFile: ca, ServerName: ac.ServerName,
		Exit: ac.Server, Dialer: d,
		ProxySettings: append(proxySettings(ac.Network, env.Environ), systemProxyLine(ctx, ac.systemProxySetting())...),
		Target:        cfg.Target, StepTimeout: ac.DialTimeout,
	}
	if ac.IAM.Enabled {
		iam := ac.IAM
		dc.Token = func(ctx context.Context) (string, error) {
			src, err := iam.source(ctx, d)
			if err != nil {
				return "", err
			}
			defer src.Close()
			return src.Token(ctx)
		}
	}
	if ac.Lifecycle == lifecycleAWS {
		dc.Locate = func(ctx context.Context) (string, error) {
			backend, err := controlBackend(ctx, ac)
			if err != nil {
				return "", err
			}
			exit, err := lifecycle.New(lifecycle.Config{Backend: backend})
			if err != nil {
				return "", err
			}
			return exit.Locate(ctx, false)
		}
	}
	rep := doctor.Run(ctx, dc)
	if *asJSON {
		err = rep.WriteJSON(env.Stdout)
	} else {
		err = rep.WriteText(env.Stdout)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return errDoctorFailed
	}
	return nil
}

// proxySettings describes the upstream proxy configuration and the proxy
// variables of the environment, never with credentials.
func proxySettings(n NetworkConfig, environ []string) []string {
	var lines []string
	switch n.UpstreamProxy {
	case "":
		lines = append(lines, "upstream_proxy not set: the environment's HTTPS_PROXY and NO_PROXY apply")
	case "none":
		lines = append(lines, "upstream_proxy none: the exit is dialed directly whatever the environment says")
	default:
		u, _ := upstream.ParseProxyURL(n.UpstreamProxy)
		lines = append(lines, fmt.Sprintf("upstream_proxy %s (auth %s)", redactURL(u), n.UpstreamProxyAuth))
	}
	for _, name := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"} {
		for _, kv := range environ {
			if k, v, _ := strings.Cut(kv, "="); k == name && v != "" {
				if strings.HasSuffix(strings.ToLower(name), "_proxy") && !strings.HasPrefix(strings.ToLower(name), "no") {
					if u, err := upstream.ParseProxyURL(v); err == nil {
						v = redactURL(u)
					} else {
						v = "(unparsable)"
					}
				}
				lines = append(lines, name+"="+v)
			}
		}
	}
	return lines
}

// systemProxyLine describes the system's proxy setting when one is set.
// The agent does not follow it (it reads upstream_proxy and the
// environment), so on a network where only that proxy gets out it is the
// value --upstream-proxy needs. own is what this agent sets it to.
func systemProxyLine(ctx context.Context, own sysproxy.Setting) []string {
	sys := systemProxy()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	desc, err := sysproxy.Current(ctx, sys)
	switch {
	case errors.Is(err, sysproxy.ErrUnsupported), err == nil && desc == "none":
		return nil
	case err != nil:
		return []string{fmt.Sprintf("system proxy (%s): cannot read it: %v", sys.Name(), err)}
	case own.Server != "" && strings.Contains(desc, own.Server), own.PACURL != "" && strings.Contains(desc, own.PACURL):
		return []string{fmt.Sprintf("system proxy (%s): %s, which is this agent", sys.Name(), desc)}
	}
	return []string{fmt.Sprintf("system proxy (%s): %s; the agent does not follow it: if only that proxy gets out, set --upstream-proxy to it", sys.Name(), desc)}
}

// redactURL is the URL without its password.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}
