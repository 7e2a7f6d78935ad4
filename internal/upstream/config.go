package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"golang.org/x/net/http/httpproxy"
)

// Config says which proxy to use and how to sign in to it, as the agent's
// configuration gives it. A zero Config takes the proxy from the
// environment.
type Config struct {
	// Proxy is "" to take the proxy from the environment (HTTPS_PROXY and
	// NO_PROXY, or their lower-case forms), "none" to dial directly, or the
	// proxy's URL, http://[USER@]HOST:PORT (https:// for a proxy spoken to
	// over TLS; a bare HOST:PORT means http://), used for every target.
	Proxy string
	// Auth is one of the Auth modes; "" means AuthAuto.
	Auth string
	// User overrides the user name in the URL. A Windows domain is written
	// DOMAIN\user (in a URL, DOMAIN%5Cuser) or user@domain.
	User string
	// Password, or the first line of the file PasswordFile, overrides the
	// password in the URL.
	Password     string
	PasswordFile string
	// Environ is the environment to read, in os.Environ form; nil means
	// the process's.
	Environ []string
}

// ErrBadProxyURL is wrapped by the error of a proxy URL that cannot be used.
var ErrBadProxyURL = errors.New("bad upstream proxy URL")

// ParseProxyURL parses a proxy URL. Its errors never repeat the URL, which
// may hold a password.
func ParseProxyURL(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes its input, password and all.
		return nil, fmt.Errorf("%w: it does not parse as http://[USER@]HOST:PORT", ErrBadProxyURL)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("%w: scheme %q: only http:// and https:// proxies are supported", ErrBadProxyURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%w: no host (example: http://proxy.example.com:3128)", ErrBadProxyURL)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return nil, fmt.Errorf("%w: port %q is not a number", ErrBadProxyURL, p)
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%w: a proxy URL has no path or query (example: http://proxy.example.com:3128)", ErrBadProxyURL)
	}
	return u, nil
}

// New builds the Dialer cfg describes.
func New(cfg Config) (*Dialer, error) {
	d := &Dialer{Auth: cfg.Auth, Username: cfg.User, Password: cfg.Password}
	switch d.Auth {
	case "", AuthAuto, AuthBasic, AuthNTLM, AuthSSPI, AuthNone:
	default:
		return nil, fmt.Errorf("upstream_proxy_auth: %q is not auto, basic, ntlm, sspi or none", d.Auth)
	}
	if d.Auth == AuthSSPI && !sspiAvailable {
		return nil, fmt.Errorf("upstream_proxy_auth: sspi: %s", sspiUnavailable)
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("upstream_proxy_password_file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		d.Password = strings.TrimRight(line, "\r")
		if d.Password == "" {
			return nil, fmt.Errorf("upstream_proxy_password_file: %s is empty", cfg.PasswordFile)
		}
	}
	switch cfg.Proxy {
	case "none":
		return d, nil
	case "":
		env := cfg.Environ
		if env == nil {
			env = os.Environ()
		}
		pc := httpproxy.Config{HTTPSProxy: getenv(env, "HTTPS_PROXY"), NoProxy: getenv(env, "NO_PROXY")}
		if pc.HTTPSProxy == "" {
			return d, nil
		}
		if _, err := ParseProxyURL(pc.HTTPSProxy); err != nil {
			return nil, fmt.Errorf("HTTPS_PROXY: %w", err)
		}
		f := pc.ProxyFunc()
		d.ProxyFor = func(target string) (*url.URL, error) {
			return f(&url.URL{Scheme: "https", Host: target})
		}
	default:
		u, err := ParseProxyURL(cfg.Proxy)
		if err != nil {
			return nil, fmt.Errorf("upstream_proxy: %w", err)
		}
		d.ProxyFor = func(string) (*url.URL, error) { return u, nil }
	}
	return d, nil
}

// getenv returns the variable name, or its lower-case form, from env.
func getenv(env []string, name string) string {
	lower := strings.ToLower(name)
	var v string
	for _, kv := range env {
		k, val, _ := strings.Cut(kv, "=")
		switch k {
		case name:
			if val != "" {
				return val
			}
		case lower:
			v = val
		}
	}
	return v
}
