package cli

import (
	"fmt"
	"net/http"
	"time"

	"fluidity/internal/pki"
	"fluidity/internal/route"
	"fluidity/internal/upstream"
)

// NetworkConfig is how the agent reaches the network from inside a
// corporate one: the upstream proxy it dials the exit (and the AWS control
// plane) through, and the split-routing rules of what goes direct. The
// agent, 'fluidity doctor', 'wake' and 'stop' share it.
type NetworkConfig struct {
	UpstreamProxy             string   `yaml:"upstream_proxy" help:"HTTP proxy to reach the exit through: http://[USER@]HOST:PORT; empty: HTTPS_PROXY and NO_PROXY from the environment; none: connect directly"`
	UpstreamProxyAuth         string   `yaml:"upstream_proxy_auth" help:"how to sign in to the upstream proxy: auto (what it asks for), basic, ntlm, sspi (Windows: the logged-in user, no password), none"`
	UpstreamProxyUser         string   `yaml:"upstream_proxy_user" help:"user name for the upstream proxy (DOMAIN\\user for NTLM); overrides the one in the URL"`
	UpstreamProxyPassword     string   `yaml:"upstream_proxy_password" flag:"-" help:"password for the upstream proxy (file or FLUIDITY_UPSTREAM_PROXY_PASSWORD only, never a flag)"`
	UpstreamProxyPasswordFile string   `yaml:"upstream_proxy_password_file" help:"file whose first line is the upstream proxy's password"`
	Direct                    []string `yaml:"direct" help:"split routing: hosts (intranet.example.com), domains (.corp.example.com), addresses and ranges (10.0.0.0/8), <local> (names without a dot) that are dialed directly, not through the exit; also served as a PAC file at http://LISTEN/proxy.pac"`
}

func defaultNetworkConfig() NetworkConfig {
	return NetworkConfig{UpstreamProxyAuth: upstream.AuthAuto}
}

// validate checks the keys without reading files.
func (c *NetworkConfig) validate() error {
	switch c.UpstreamProxy {
	case "", "none":
	default:
		if _, err := upstream.ParseProxyURL(c.UpstreamProxy); err != nil {
			return fmt.Errorf("upstream_proxy: %w", err)
		}
	}
	switch c.UpstreamProxyAuth {
	case upstream.AuthAuto, upstream.AuthBasic, upstream.AuthNTLM, upstream.AuthSSPI, upstream.AuthNone:
	default:
		return fmt.Errorf("upstream_proxy_auth: %q is not auto, basic, ntlm, sspi or none", c.UpstreamProxyAuth)
	}
	if _, err := route.Parse(c.Direct); err != nil {
		return err
	}
	return nil
}

// dialer builds the upstream dialer; environ is the environment to read
// HTTPS_PROXY and NO_PROXY from.
func (c *NetworkConfig) dialer(environ []string) (*upstream.Dialer, error) {
	d, err := upstream.New(upstream.Config{
		Proxy: c.UpstreamProxy, Auth: c.UpstreamProxyAuth, User: c.UpstreamProxyUser,
		Password: c.UpstreamProxyPassword, PasswordFile: c.UpstreamProxyPasswordFile, Environ: environ,
	})
	if err != nil {
		return nil, err
	}
	d.UserAgent = "fluidity/" + Version()
	return d, nil
}

// httpClient is an HTTP client whose connections go through d, for the
// control plane's function URL.
func httpClient(d *upstream.Dialer) *http.Client {
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil, // d applies the proxy settings
			DialContext:         d.DialContext,
			ForceAttemptHTTP2:   true,
			TLSHandshakeTimeout: 10 * time.Second,
			IdleConnTimeout:     90 * time.Second,
		},
	}
}

// explainHandshake names TLS interception and a wrong CA in the error of
// a failed handshake with the exit, given the CA file the agent trusts.
func explainHandshake(caFile string) func(addr string, err error) error {
	var names []string
	if cas, err := pki.LoadCACertificates(caFile); err == nil {
		for _, c := range cas {
			names = append(names, c.Subject.CommonName)
		}
	}
	return func(addr string, err error) error { return pki.ExplainServerCertificate(err, addr, names...) }
}
