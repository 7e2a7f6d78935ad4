package exit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/egress"
	"fluidity/internal/pki"
	"fluidity/internal/proxystatus"
	"fluidity/internal/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	srv  *Server
	addr string
	dir  string
	logs *syncBuffer
	echo string // address of a TCP echo server
}

// startExit runs an exit server on loopback with fresh certificates and an
// egress policy that allows loopback (for the echo target) unless strict.
func startExit(t *testing.T, strict bool, tweak func(*Config)) *fixture {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	tlsCfg, err := pki.ServerConfig(filepath.Join(dir, pki.ServerCertFile), filepath.Join(dir, pki.ServerKeyFile), filepath.Join(dir, pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := egress.New(egress.Config{AllowPrivate: !strict})
	if err != nil {
		t.Fatal(err)
	}
	d := &egress.Dialer{Policy: policy, Timeout: 2 * time.Second}
	logs := &syncBuffer{}
	cfg := Config{TLS: tlsCfg, Dial: d.DialContext, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo := startEcho(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	f := &fixture{srv: srv, addr: ln.Addr().String(), dir: dir, logs: logs, echo: echo}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return f
}

func startEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

func (f *fixture) clientTLS(t *testing.T, protos ...string) *tls.Config {
	t.Helper()
	cfg, err := pki.ClientConfig(filepath.Join(f.dir, pki.ClientCertFile), filepath.Join(f.dir, pki.ClientKeyFile), filepath.Join(f.dir, pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = protos
	return cfg
}

// h2Client is net/http's client, speaking only HTTP/2, dialing the exit
// with the fixture's client certificate.
func (f *fixture) h2Client(t *testing.T) *http.Transport {
	cfg := f.clientTLS(t, "h2")
	tr := &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&tls.Dialer{Config: cfg}).DialContext(ctx, network, f.addr)
		},
		ForceAttemptHTTP2: true,
		Protocols:         new(http.Protocols),
	}
	tr.Protocols.SetHTTP2(true)
	return tr
}

func TestHTTP2ConnectFromAnIndependentClient(t *testing.T) {
	f := startExit(t, false, nil)
	// The standard library's HTTP/2 client, not ours: the exit is a
	// standard CONNECT proxy.
	tr := f.h2Client(t)
	defer tr.CloseIdleConnections()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodConnect, "https://"+f.addr, pr)
	req.Host = f.echo
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s, want HTTP/2", resp.Proto)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	go func() {
		pw.Write([]byte("hello over h2"))
		pw.Close() // END_STREAM: the echo target sees EOF and closes
	}()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "hello over h2" {
		t.Fatalf("echo got %q, %v", got, err)
	}
}

func TestHTTP2RefusalCarriesReason(t *testing.T) {
	f := startExit(t, true, nil) // default policy: loopback refused
	tr := f.h2Client(t)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodConnect, "https://"+f.addr, nil)
	req.Host = f.echo
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	typ, details := proxystatus.Parse(resp.Header.Get("Proxy-Status"))
	if typ != "destination_ip_prohibited" || !strings.Contains(details, "127.0.0.1") || !strings.Contains(string(body), "loopback") {
		t.Fatalf("Proxy-Status %q / %q, body %q", typ, details, body)
	}
	waitLog(t, f.logs, `target=`+f.echo)
}

func TestHTTP1Connect(t *testing.T) {
	f := startExit(t, false, nil)
	c, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Send the request and the first tunnel bytes in one write.
	if _, err := io.WriteString(c, "CONNECT "+f.echo+" HTTP/1.1\r\nHost: "+f.echo+"\r\n\r\nearly bytes"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("response %v, %v", resp, err)
	}
	c.CloseWrite()
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "early bytes" {
		t.Fatalf("echo got %q, %v", got, err)
	}
}

func TestHTTP1Refusals(t *testing.T) {
	f := startExit(t, true, func(c *Config) { c.MaxHeaderBytes = 1024 })
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"a GET is not a CONNECT", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"an authority without a port is malformed", "CONNECT example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 400},
		{"a loopback target is refused by policy", "CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 403},
		{"an oversized header is refused", "CONNECT a:1 HTTP/1.1\r\nX: " + strings.Repeat("a", 2000) + "\r\n\r\n", 431},
		{"garbage is a bad request", "\x00\x01\x02 nonsense\r\n\r\n", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "http/1.1"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

func TestHandshakeDeadline(t *testing.T) {
	f := startExit(t, false, func(c *Config) { c.HandshakeTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1)) // a silent client: the server hangs up
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("silent connection held for %v", elapsed)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("server never closed a connection that sent nothing")
	}
	waitLog(t, f.logs, `reason=timeout`)
}

func TestRefusedCertificatesAreLoggedWithReason(t *testing.T) {
	f := startExit(t, false, nil)
	other := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: other}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cfg    func() *tls.Config
		reason string
	}{
		{"no client certificate", func() *tls.Config {
			cfg := f.clientTLS(t, "h2")
			cfg.Certificates = nil
			cfg.GetClientCertificate = nil
			return cfg
		}, `reason="no client certificate"`},
		{"a certificate from another CA", func() *tls.Config {
			cfg, err := pki.ClientConfig(filepath.Join(other, pki.ClientCertFile), filepath.Join(other, pki.ClientKeyFile), filepath.Join(f.dir, pki.CAFile), "")
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}, `reason="unknown certificate authority"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", f.addr, tc.cfg())
			if err == nil {
				// TLS 1.3: the refusal arrives on the first read.
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if err == nil {
				t.Fatal("connection was not refused")
			}
			waitLog(t, f.logs, tc.reason)
		})
	}
}

func waitLog(t *testing.T, logs *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log does not contain %q:\n%s", want, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// authErr is what an authorizer returns: a status and a reason.
type authErr struct{ status int }

func (e authErr) Error() string       { return "bearer token required" }
func (e authErr) StatusCode() int     { return e.status }
func (e authErr) ProxyStatus() string { return "http_request_denied" }

func TestAuthorizeRunsBeforeTheDial(t *testing.T) {
	f := startExit(t, false, func(c *Config) {
		c.Authorize = func(ctx context.Context, client string, h http.Header) (string, error) {
			switch h.Get("Proxy-Authorization") {
			case "Bearer good":
				return "arn:aws:iam::123456789012:role/agent", nil
			case "Bearer other":
				return "", authErr{http.StatusForbidden}
			}
			return "", authErr{http.StatusProxyAuthRequired}
		}
	})
	tr := f.h2Client(t)
	defer tr.CloseIdleConnections()
	connect := func(token string) *http.Response {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest(http.MethodConnect, "https://"+f.addr, pr)
		req.Host = f.echo
		if token != "" {
			req.Header.Set("Proxy-Authorization", "Bearer "+token)
		}
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		pw.Close()
		return resp
	}
	resp := connect("")
	resp.Body.Close()
	if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") == "" {
		t.Fatalf("no token: %d, Proxy-Authenticate %q", resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
	}
	resp = connect("other")
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused identity: %d, want 403", resp.StatusCode)
	}
	resp = connect("good")
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get(tunnel.IdentityHeader); got != "arn:aws:iam::123456789012:role/agent" {
		t.Fatalf("the 200 names identity %q, want the verified ARN", got)
	}
	waitLog(t, f.logs, `identity=arn:aws:iam::123456789012:role/agent`)

	// HTTP/1.1 CONNECT gets the same answer.
	c, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "CONNECT "+f.echo+" HTTP/1.1\r\n\r\n")
	r1, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r1.StatusCode != http.StatusProxyAuthRequired || r1.Header.Get("Proxy-Authenticate") == "" {
		t.Fatalf("HTTP/1.1 without token: %d %v", r1.StatusCode, r1.Header)
	}
}
