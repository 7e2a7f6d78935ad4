package upstream

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeProxy is a CONNECT proxy for tests: handle decides each request's
// answer; a 200 relays to the target.
type fakeProxy struct {
	ln     net.Listener
	handle func(r *http.Request, round int) (status int, header http.Header, body string)
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   []http.Header // Proxy-Authorization etc. of each request
	conns  int
}

func newFakeProxy(t *testing.T, handle func(r *http.Request, round int) (int, http.Header, string)) *fakeProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakeProxy{ln: ln, handle: handle}
	p.wg.Add(1)
	go p.acceptLoop()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *fakeProxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.serve(c)
		}()
	}
}

func (p *fakeProxy) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for round := 0; ; round++ {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.seen = append(p.seen, r.Header.Clone())
		p.mu.Unlock()
		status, h, body := p.handle(r, round)
		resp := &http.Response{StatusCode: status, ProtoMajor: 1, ProtoMinor: 1, Header: h,
			Body: io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body))}
		if h == nil {
			resp.Header = http.Header{}
		}
		if status == 200 {
			resp.Body, resp.ContentLength = nil, -1
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			// Echo: the "target".
			io.Copy(c, br)
			return
		}
		resp.Write(c)
		if resp.Header.Get("Connection") == "close" {
			return
		}
	}
}

func (p *fakeProxy) url(user string) *url.URL {
	u := &url.URL{Scheme: "http", Host: p.ln.Addr().String()}
	if user != "" {
		u.User = url.User(user)
	}
	return u
}

func fixed(u *url.URL) func(string) (*url.URL, error) {
	return func(string) (*url.URL, error) { return u, nil }
}

func dialEcho(t *testing.T, d *Dialer) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", "exit.example:8443")
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo through the proxy: %q, %v", buf, err)
	}
	return nil
}

func basicProxy(user, pass string) func(r *http.Request, round int) (int, http.Header, string) {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	return func(r *http.Request, round int) (int, http.Header, string) {
		if r.Method != http.MethodConnect || r.Host != "exit.example:8443" {
			return 400, nil, "bad request"
		}
		if r.Header.Get("Proxy-Authorization") != want {
			return 407, http.Header{"Proxy-Authenticate": {`Basic realm="Corp"`}}, "auth required"
		}
		return 200, nil, ""
	}
}

func TestBasicAnswersTheChallenge(t *testing.T) {
	p := newFakeProxy(t, basicProxy("alice", "s3cret"))
	u := p.url("")
	u.User = url.UserPassword("alice", "s3cret")
	if err := dialEcho(t, &Dialer{ProxyFor: fixed(u)}); err != nil {
		t.Fatal(err)
	}
	if n := len(p.seen); n != 2 || p.seen[0].Get("Proxy-Authorization") != "" {
		t.Errorf("auto mode sent %d requests, the first with %q; want a bare CONNECT, then Basic", n, p.seen[0].Get("Proxy-Authorization"))
	}
}

func TestBasicModeSendsCredentialsAtOnce(t *testing.T) {
	p := newFakeProxy(t, basicProxy("alice", "s3cret"))
	if err := dialEcho(t, &Dialer{ProxyFor: fixed(p.url("alice")), Auth: AuthBasic, Password: "s3cret"}); err != nil {
		t.Fatal(err)
	}
	if len(p.seen) != 1 {
		t.Errorf("basic mode took %d requests, want 1", len(p.seen))
	}
}

func TestWrongPasswordNamesTheSchemeAndNeverThePassword(t *testing.T) {
	p := newFakeProxy(t, basicProxy("alice", "s3cret"))
	err := dialEcho(t, &Dialer{ProxyFor: fixed(p.url("alice")), Password: "hunter2-wrong"})
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *AuthError", err)
	}
	msg := err.Error()
	for _, want := range []string{"407", `Basic realm="Corp"`, `"alice"`, "check the user name and password"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "hunter2") {
		t.Errorf("error %q shows the password", msg)
	}
}

func TestNoCredentialsSaysWhatTheProxyAsksFor(t *testing.T) {
	p := newFakeProxy(t, basicProxy("alice", "s3cret"))
	err := dialEcho(t, &Dialer{ProxyFor: fixed(p.url(""))})
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Sent != "" || !strings.Contains(err.Error(), "give credentials") {
		t.Fatalf("got %v, want an *AuthError asking for credentials", err)
	}
}

func TestNegotiateWithoutSSPISaysItIsWindowsOnly(t *testing.T) {
	if sspiAvailable {
		t.Skip("SSPI is available here")
	}
	p := newFakeProxy(t, func(*http.Request, int) (int, http.Header, string) {
		return 407, http.Header{"Proxy-Authenticate": {"Negotiate", "NTLM"}}, ""
	})
	err := dialEcho(t, &Dialer{ProxyFor: fixed(p.url(""))})
	if err == nil || !strings.Contains(err.Error(), "Windows only") || !strings.Contains(err.Error(), "it asks for Negotiate; NTLM") {
		t.Fatalf("got %v", err)
	}
}

func TestRefusalCarriesTheProxysStatusAndPage(t *testing.T) {
	p := newFakeProxy(t, func(*http.Request, int) (int, http.Header, string) {
		return 403, http.Header{"X-Squid-Error": {"ERR_ACCESS_DENIED 0"}},
			"<html><head><title>ERROR: The requested URL could not be retrieved</title></head><body>denied</body></html>"
	})
	err := dialEcho(t, &Dialer{ProxyFor: fixed(p.url(""))})
	var re *RefusedError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("got %v, want a *RefusedError 403", err)
	}
	for _, want := range []string{"403 Forbidden", "ERR_ACCESS_DENIED", "could not be retrieved", "allow CONNECT to exit.example:8443"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestUnreachableProxyIsADialError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	err := dialEcho(t, &Dialer{ProxyFor: fixed(&url.URL{Scheme: "http", Host: addr})})
	var de *DialError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "cannot connect to it") {
		t.Fatalf("got %v, want a *DialError", err)
	}
}

// fakeSSPI returns tokens "t1", "t2", … and records the challenges.
type fakeSSPI struct {
	steps  int
	got    [][]byte
	closed bool
}

func (f *fakeSSPI) Step(c []byte) ([]byte, error) {
	f.got = append(f.got, c)
	f.steps++
	return []byte{'t', byte('0' + f.steps)}, nil
}
func (f *fakeSSPI) Close() { f.closed = true }

func TestSSPIExchangeOnOneConnection(t *testing.T) {
	tok := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	p := newFakeProxy(t, func(r *http.Request, round int) (int, http.Header, string) {
		switch r.Header.Get("Proxy-Authorization") {
		case "":
			return 407, http.Header{"Proxy-Authenticate": {"Negotiate", `Basic realm="x"`}}, "who are you"
		case "Negotiate " + tok("t1"):
			return 407, http.Header{"Proxy-Authenticate": {"Negotiate " + tok("challenge")}}, ""
		case "Negotiate " + tok("t2"):
			if round != 1 {
				return 400, nil, "the exchange moved to another connection"
			}
			return 200, nil, ""
		}
		return 400, nil, "unexpected"
	})
	f := &fakeSSPI{}
	d := &Dialer{ProxyFor: fixed(p.url("")), Auth: AuthSSPI,
		newSSPI: func(pkg, target string) (sspiSession, error) {
			if pkg != "Negotiate" || !strings.HasPrefix(target, "HTTP/127.0.0.1") {
				t.Errorf("newSSPI(%q, %q)", pkg, target)
			}
			return f, nil
		}}
	// AuthSSPI starts at once, with no bare CONNECT first.
	if err := dialEcho(t, d); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	conns := p.conns
	p.mu.Unlock()
	if !f.closed || string(f.got[1]) != "challenge" || conns != 1 {
		t.Errorf("closed %v, challenges %q, proxy connections %d", f.closed, f.got, conns)
	}
}

func TestNewFromEnvironmentHonoursNoProxy(t *testing.T) {
	d, err := New(Config{Environ: []string{"HTTPS_PROXY=http://proxy.corp:3128", "no_proxy=.internal,10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{
		"exit.example.com:8443": "via upstream proxy proxy.corp:3128",
		"git.internal:443":      "direct",
		"10.1.2.3:8443":         "direct",
		"127.0.0.1:8443":        "direct", // the environment's convention: loopback is never proxied
	} {
		if got, err := d.Route(target); err != nil || got != want {
			t.Errorf("Route(%s) = %q, %v; want %q", target, got, err, want)
		}
	}
}

func TestNewRefusesBadInputWithoutEchoingIt(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a socks URL", Config{Proxy: "socks5://u:pw-secret@h:1080"}, "only http:// and https://"},
		{"a bad port", Config{Proxy: "http://u:pw-secret@h:port"}, "does not parse"},
		{"a path", Config{Proxy: "http://u:pw-secret@h:3128/x"}, "no path"},
		{"no host", Config{Proxy: "http://:3128"}, "no host"},
		{"a bad environment", Config{Environ: []string{"HTTPS_PROXY=ftp://u:pw-secret@h"}}, "HTTPS_PROXY"},
		{"an unknown auth", Config{Auth: "kerberos"}, "not auto, basic"},
		{"a missing password file", Config{PasswordFile: "/nonexistent/pw"}, "upstream_proxy_password_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw-secret") {
				t.Errorf("error %q repeats the password", err)
			}
		})
	}
}
