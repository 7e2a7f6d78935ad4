package upstream

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Authentication modes (Dialer.Auth).
const (
	// AuthAuto answers what the proxy asks for: Negotiate or NTLM with the
	// logged-in user's credentials through SSPI when there is no password
	// (Windows only), else NTLM or Basic with the configured credentials.
	// Nothing is sent before the proxy asks.
	AuthAuto = "auto"
	// AuthBasic sends Basic credentials with the first CONNECT, saving the
	// round trip of a 407.
	AuthBasic = "basic"
	// AuthNTLM starts NTLM with the configured credentials at once.
	AuthNTLM = "ntlm"
	// AuthSSPI uses the logged-in user's credentials through SSPI,
	// Negotiate or NTLM as the proxy asks (Windows only).
	AuthSSPI = "sspi"
	// AuthNone never answers a 407.
	AuthNone = "none"
)

// maxRounds bounds the CONNECTs of one dial: an NTLM exchange takes two,
// plus one to learn what the proxy wants, plus one after a closed
// connection.
const maxRounds = 4

// maxErrorBody is how much of a proxy's error page is read.
const maxErrorBody = 16 << 10

// Dialer dials TCP connections, through an HTTP proxy where ProxyFor says
// so. A zero Dialer dials directly.
type Dialer struct {
	// ProxyFor returns the proxy for a target host:port, or nil to dial it
	// directly. If nil, every target is dialed directly.
	ProxyFor func(target string) (*url.URL, error)
	// Auth is one of the Auth modes; "" means AuthAuto.
	Auth string
	// Username and Password, if set, are the credentials to answer with;
	// otherwise those in the proxy URL's user info are used.
	Username, Password string
	// Forward dials TCP to the proxy, or to a target directly. If nil, a
	// net.Dialer is used.
	Forward func(ctx context.Context, network, addr string) (net.Conn, error)
	// UserAgent, if set, is sent with each CONNECT.
	UserAgent string

	// newSSPI starts an SSPI exchange; nil means the OS's (sspi_*.go).
	// Tests replace it.
	newSSPI func(pkg, target string) (sspiSession, error)
}

// Route describes how the Dialer reaches target, for logs and for
// doctor: "direct" or "via upstream proxy HOST:PORT". It never includes
// credentials.
func (d *Dialer) Route(target string) (string, error) {
	u, err := d.proxyFor(target)
	if err != nil {
		return "", err
	}
	if u == nil {
		return "direct", nil
	}
	return "via upstream proxy " + u.Host, nil
}

func (d *Dialer) proxyFor(target string) (*url.URL, error) {
	if d == nil || d.ProxyFor == nil {
		return nil, nil
	}
	u, err := d.ProxyFor(target)
	if err != nil {
		return nil, fmt.Errorf("upstream proxy for %s: %w", target, err)
	}
	return u, nil
}

func (d *Dialer) forward(ctx context.Context, network, addr string) (net.Conn, error) {
	if d != nil && d.Forward != nil {
		return d.Forward(ctx, network, addr)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// DialContext connects to addr, through the proxy ProxyFor names for it.
// ctx bounds the whole dial, CONNECT and authentication included; the
// connection it returns outlives ctx.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	proxy, err := d.proxyFor(addr)
	if err != nil {
		return nil, err
	}
	if proxy == nil {
		return d.forward(ctx, network, addr)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("upstream proxy %s: cannot carry %s", proxy.Host, network)
	}
	return d.connect(ctx, proxy, addr)
}

// exchange is one dial's progress through the proxy's authentication.
type exchange struct {
	d       *Dialer
	proxy   *url.URL
	target  string
	mode    string
	user    string
	pass    string
	scheme  string      // the scheme being answered: "", "Basic", "NTLM", "Negotiate"
	sspi    sspiSession // open while an SSPI exchange goes on
	sentPWD bool        // whether configured credentials were sent
}

func (d *Dialer) connect(ctx context.Context, proxy *url.URL, target string) (net.Conn, error) {
	ex := &exchange{d: d, proxy: proxy, target: target, mode: d.Auth}
	if ex.mode == "" {
		ex.mode = AuthAuto
	}
	ex.user, ex.pass = d.Username, d.Password
	if ex.user == "" && proxy.User != nil {
		ex.user = proxy.User.Username()
	}
	if ex.pass == "" && proxy.User != nil {
		ex.pass, _ = proxy.User.Password()
	}
	defer ex.closeSSPI()
	switch ex.mode {
	case AuthBasic:
		if ex.user == "" {
			return nil, fmt.Errorf("upstream proxy %s: basic authentication needs a user name (http://USER@%s)", proxy.Host, proxy.Host)
		}
		ex.scheme = "Basic"
	case AuthNTLM:
		if ex.user == "" {
			return nil, fmt.Errorf("upstream proxy %s: ntlm authentication needs a user name (http://DOMAIN%%5CUSER@%s)", proxy.Host, proxy.Host)
		}
		ex.scheme = "NTLM"
	case AuthSSPI:
		ex.scheme = "Negotiate"
	case AuthAuto, AuthNone:
	default:
		return nil, fmt.Errorf("upstream proxy auth %q is not auto, basic, ntlm, sspi or none", ex.mode)
	}

	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var token string // the Proxy-Authorization value for the next CONNECT
	var err error
	if ex.scheme != "" {
		if token, err = ex.answer(nil); err != nil {
			return nil, err
		}
	}
	for round := 0; round < maxRounds; round++ {
		if conn == nil {
			if conn, err = ex.dialProxy(ctx); err != nil {
				return nil, err
			}
			br = bufio.NewReader(conn)
		}
		resp, err := ex.roundTrip(ctx, conn, br, token)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode < 300:
			c := conn
			conn = nil
			if n := br.Buffered(); n > 0 {
				early, _ := br.Peek(n)
				return &prefixConn{Conn: c, prefix: append([]byte(nil), early...)}, nil
			}
			return c, nil
		case resp.StatusCode == http.StatusProxyAuthRequired:
			offered := ParseChallenges(resp.Header.Values("Proxy-Authenticate"))
			// The 407's body must be read before the connection is used
			// again; a connection-oriented scheme (NTLM, Negotiate) needs
			// the same connection for its next message.
			reusable := drain(resp) && !resp.Close
			token, err = ex.next(offered)
			if err != nil {
				return nil, err
			}
			if !reusable {
				conn.Close()
				conn = nil
				if ex.connectionBound() {
					// The proxy dropped the connection its challenge
					// belongs to: start the exchange again on a new one.
					ex.closeSSPI()
					ex.sentPWD = false
					if token, err = ex.answer(nil); err != nil {
						return nil, err
					}
				}
			}
		default:
			return nil, refused(proxy.Host, target, resp)
		}
	}
	return nil, fmt.Errorf("upstream proxy %s: authentication did not finish after %d requests", proxy.Host, maxRounds)
}

// dialProxy opens a connection to the proxy (TLS for an https:// proxy).
func (ex *exchange) dialProxy(ctx context.Context) (net.Conn, error) {
	host := ex.proxy.Host
	if ex.proxy.Port() == "" {
		port := "80"
		if ex.proxy.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(ex.proxy.Hostname(), port)
	}
	conn, err := ex.d.forward(ctx, "tcp", host)
	if err != nil {
		return nil, &DialError{Proxy: ex.proxy.Host, Err: err}
	}
	if ex.proxy.Scheme == "https" {
		tc := tls.Client(conn, &tls.Config{ServerName: ex.proxy.Hostname(), MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, &DialError{Proxy: ex.proxy.Host, Err: fmt.Errorf("tls handshake: %w", err)}
		}
		conn = tc
	}
	return conn, nil
}

// roundTrip sends one CONNECT and reads the proxy's answer head, within
// ctx.
func (ex *exchange) roundTrip(ctx context.Context, conn net.Conn, br *bufio.Reader, auth string) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := &http.Request{
		Method: http.MethodConnect,
		URL:    &url.URL{Opaque: ex.target},
		Host:   ex.target,
		Header: http.Header{},
	}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	if ex.d.UserAgent != "" {
		req.Header.Set("User-Agent", ex.d.UserAgent)
	}
	// Keep the connection for the next message of an exchange.
	req.Header.Set("Proxy-Connection", "Keep-Alive")
	if err := req.Write(conn); err != nil {
		return nil, ex.ioError(ctx, "send CONNECT", err)
	}
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, ex.ioError(ctx, "read its answer to CONNECT", err)
	}
	if !stop() {
		return nil, ex.ioError(ctx, "read its answer to CONNECT", ctx.Err())
	}
	conn.SetDeadline(time.Time{})
	return resp, nil
}

func (ex *exchange) ioError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return fmt.Errorf("upstream proxy %s: %s: %w", ex.proxy.Host, what, err)
}

// connectionBound reports whether the scheme in progress ties its messages
// to one connection.
func (ex *exchange) connectionBound() bool {
	return ex.scheme == "NTLM" || ex.scheme == "Negotiate"
}

// next chooses the answer to a 407 with challenges offered.
func (ex *exchange) next(offered []Challenge) (string, error) {
	fail := func(reason string) error {
		e := &AuthError{Proxy: ex.proxy.Host, Offered: offered, Reason: reason}
		if ex.scheme != "" && (ex.sentPWD || ex.sspi != nil) {
			e.Sent = ex.scheme
			if ex.sentPWD {
				e.User = ex.user
			}
		}
		return e
	}
	if ex.scheme != "" {
		// In the middle of a connection-bound exchange, the proxy's
		// challenge carries the next token.
		if ex.connectionBound() && (ex.sspi != nil || !ex.sentPWD) {
			for _, c := range offered {
				if strings.EqualFold(c.Scheme, ex.scheme) && c.Data != "" {
					tok, err := base64.StdEncoding.DecodeString(c.Data)
					if err != nil {
						return "", fmt.Errorf("upstream proxy %s: its %s challenge is not base64: %w", ex.proxy.Host, ex.scheme, err)
					}
					return ex.answer(tok)
				}
			}
		}
		// The proxy refused what was sent (or dropped the exchange).
		return "", fail("")
	}
	if ex.mode == AuthNone {
		return "", fail("authentication is off (upstream_proxy_auth: none)")
	}
	// Auto: the first 407. Prefer what needs no stored password, then the
	// stronger schemes.
	has := func(s string) bool {
		for _, c := range offered {
			if strings.EqualFold(c.Scheme, s) {
				return true
			}
		}
		return false
	}
	switch {
	case ex.pass == "" && sspiAvailable && has("Negotiate"):
		ex.scheme = "Negotiate"
	case ex.pass == "" && sspiAvailable && has("NTLM"):
		ex.scheme = "NTLM"
	case ex.pass != "" && has("NTLM"):
		ex.scheme = "NTLM"
	case ex.pass != "" && has("Basic"):
		ex.scheme = "Basic"
	case ex.user != "" && ex.pass == "":
		return "", fail(fmt.Sprintf("no password for user %q: put it in upstream_proxy_password_file or FLUIDITY_UPSTREAM_PROXY_PASSWORD", ex.user))
	case ex.pass != "":
		return "", fail("Fluidity speaks Basic, NTLM and (on Windows) Negotiate, none of which it offers")
	case !sspiAvailable && (has("Negotiate") || has("NTLM")):
		return "", fail(sspiUnavailable + "; elsewhere give a user name and password (http://DOMAIN%5CUSER@proxy:port and upstream_proxy_password_file)")
	default:
		return "", fail("")
	}
	return ex.answer(nil)
}

// answer returns the Proxy-Authorization value for the scheme in progress,
// given the proxy's last token (nil to start).
func (ex *exchange) answer(challenge []byte) (string, error) {
	switch {
	case ex.scheme == "Basic":
		if ex.sentPWD {
			return "", &AuthError{Proxy: ex.proxy.Host, Sent: "Basic", User: ex.user}
		}
		ex.sentPWD = true
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(ex.user+":"+ex.pass)), nil
	case ex.scheme == "NTLM" && ex.pass != "":
		return ex.ntlm(challenge)
	default: // Negotiate, or NTLM without a password: SSPI
		if ex.sspi == nil {
			if challenge != nil {
				return "", fmt.Errorf("upstream proxy %s: %s challenge out of turn", ex.proxy.Host, ex.scheme)
			}
			newSSPI := ex.d.newSSPI
			if newSSPI == nil {
				newSSPI = newOSSSPI
			}
			s, err := newSSPI(ex.scheme, "HTTP/"+ex.proxy.Hostname())
			if err != nil {
				return "", fmt.Errorf("upstream proxy %s: %s: %w", ex.proxy.Host, ex.scheme, err)
			}
			ex.sspi = s
		}
		tok, err := ex.sspi.Step(challenge)
		if err != nil {
			return "", fmt.Errorf("upstream proxy %s: %s with the logged-in user's credentials: %w", ex.proxy.Host, ex.scheme, err)
		}
		return ex.scheme + " " + base64.StdEncoding.EncodeToString(tok), nil
	}
}

func (ex *exchange) closeSSPI() {
	if ex.sspi != nil {
		ex.sspi.Close()
		ex.sspi = nil
	}
}

// drain reads and closes a response's body so its connection can carry
// the next request; it reports whether the body ended within the limit.
func drain(resp *http.Response) bool {
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody+1))
	return err == nil && n <= maxErrorBody
}

// refused builds the error for a CONNECT the proxy answered with neither
// 2xx nor 407.
func refused(proxy, target string, resp *http.Response) error {
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var detail []string
	if code := resp.Header.Get("X-Squid-Error"); code != "" {
		detail = append(detail, code)
	}
	if g := pageGist(body); g != "" {
		detail = append(detail, g)
	}
	status := resp.Status
	if status == "" {
		status = fmt.Sprint(resp.StatusCode)
	}
	return &RefusedError{Proxy: proxy, Target: target, StatusCode: resp.StatusCode, Status: status, Detail: strings.Join(detail, ": ")}
}

// prefixConn is a net.Conn that first returns bytes the proxy sent after
// its answer, which were read with it.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// errNoSSPI is what the portable SSPI seam says.
var errNoSSPI = errors.New(sspiUnavailable)
