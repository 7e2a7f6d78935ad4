package exit

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"fluidity/internal/metrics"
	"fluidity/internal/pki"
)

// recorder is an Observer that counts what it is told.
type recorder struct {
	mu         sync.Mutex
	handshakes map[string]int
	refused    map[string]int
	opened     int
	closed     int
	revoked    int
	results    map[string]int
}

func newRecorder() *recorder {
	return &recorder{handshakes: map[string]int{}, refused: map[string]int{}, results: map[string]int{}}
}

func (r *recorder) HandshakeFailed(reason string) { r.mu.Lock(); r.handshakes[reason]++; r.mu.Unlock() }
func (r *recorder) LinkRefused(reason string)     { r.mu.Lock(); r.refused[reason]++; r.mu.Unlock() }
func (r *recorder) LinkOpened()                   { r.mu.Lock(); r.opened++; r.mu.Unlock() }
func (r *recorder) LinkRevoked()                  { r.mu.Lock(); r.revoked++; r.mu.Unlock() }
func (r *recorder) LinkClosed()                   { r.mu.Lock(); r.closed++; r.mu.Unlock() }
func (r *recorder) StreamStarted(time.Duration)   {}
func (r *recorder) StreamEnded(_, reason string, _ bool, _, _ int64) {
	r.mu.Lock()
	r.results[reason]++
	r.mu.Unlock()
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *recorder) openedIs(n int) func() bool {
	return func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.opened == n }
}

func TestLinksPerClientOverTheLimitAreRefusedWithTheReason(t *testing.T) {
	rec := newRecorder()
	f := startExit(t, false, func(c *Config) { c.MaxLinksPerClient = 1; c.Observer = rec })
	first, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, "the first link to be admitted", rec.openedIs(1))

	second, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(5 * time.Second))
	fr := http2.NewFramer(nil, second)
	var away *http2.GoAwayFrame
	for away == nil {
		frame, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v; want GOAWAY", err)
		}
		away, _ = frame.(*http2.GoAwayFrame)
	}
	if away.ErrCode != http2.ErrCodeEnhanceYourCalm || !strings.Contains(string(away.DebugData()), "max_links_per_client") {
		t.Fatalf("GOAWAY %v %q: want ENHANCE_YOUR_CALM naming max_links_per_client", away.ErrCode, away.DebugData())
	}
	rec.mu.Lock()
	refused := rec.refused[metrics.LinkRefusedMaxPerClient]
	rec.mu.Unlock()
	if refused != 1 {
		t.Fatalf("refusals counted: %d, want 1", refused)
	}
	if !strings.Contains(f.logs.String(), "link refused") {
		t.Fatalf("no log line for the refusal:\n%s", f.logs)
	}

	// Once the first link is gone, the client may connect again.
	first.Close()
	waitFor(t, "the first link to be released", func() bool { rec.mu.Lock(); defer rec.mu.Unlock(); return rec.closed == 1 })
	third, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	waitFor(t, "a new link to be admitted", rec.openedIs(2))
}

func TestTotalLinksOverTheLimitGet503(t *testing.T) {
	rec := newRecorder()
	f := startExit(t, false, func(c *Config) { c.MaxLinks = 1; c.Observer = rec })
	first, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	waitFor(t, "the first connection to be admitted", rec.openedIs(1))

	second, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "http/1.1"))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(5 * time.Second))
	second.Write([]byte("CONNECT " + f.echo + " HTTP/1.1\r\nHost: " + f.echo + "\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(second), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(resp.Header.Get("Proxy-Status"), "connection_limit_reached") ||
		!strings.Contains(resp.Header.Get("Proxy-Status"), "max_links") {
		t.Fatalf("got %d %q: want 503 with connection_limit_reached naming max_links", resp.StatusCode, resp.Header.Get("Proxy-Status"))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.refused[metrics.LinkRefusedMaxLinks] != 1 {
		t.Fatalf("refusals: %v", rec.refused)
	}
}

func TestHandshakeFailuresAreReported(t *testing.T) {
	rec := newRecorder()
	f := startExit(t, false, func(c *Config) { c.Observer = rec })
	cfg := f.clientTLS(t, "h2")
	cfg.Certificates = nil
	cfg.GetClientCertificate = nil
	c, err := tls.Dial("tcp", f.addr, cfg)
	if err == nil {
		// TLS 1.3: the refusal arrives after the client's handshake.
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was served")
	}
	waitFor(t, "the failure to be reported", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.handshakes["no client certificate"] == 1
	})
}

// openTunnel opens an HTTP/1.1 CONNECT tunnel to target with cfg and returns
// the connection and the exit's answer.
func openTunnel(t *testing.T, addr, target string, cfg *tls.Config) (*tls.Conn, *http.Response) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"))
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	return c, resp
}

// otherClientTLS is the TLS configuration of a second client, "phone",
// issued by the fixture's CA.
func (f *fixture) otherClientTLS(t *testing.T) *tls.Config {
	t.Helper()
	certFile, keyFile, err := pki.IssueClient(f.dir, "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientConfig(certFile, keyFile, filepath.Join(f.dir, pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	return cfg
}

func TestHTTP1TunnelsPerClientOverTheLimitGet429(t *testing.T) {
	t.Run("per client certificate", func(t *testing.T) {
		rec := newRecorder()
		f := startExit(t, false, func(c *Config) { c.MaxTunnelsPerClient = 2; c.Observer = rec })
		laptop := f.clientTLS(t, "http/1.1")
		for i := range 2 {
			if _, resp := openTunnel(t, f.addr, f.echo, laptop); resp.StatusCode != http.StatusOK {
				t.Fatalf("tunnel %d: %s", i+1, resp.Status)
			}
		}
		third, resp := openTunnel(t, f.addr, f.echo, laptop)
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(resp.Header.Get("Proxy-Status"), "connection_limit_reached") ||
			!strings.Contains(resp.Header.Get("Proxy-Status"), "max_tunnels_per_client") {
			t.Fatalf("third tunnel: %d %q; want 429 with connection_limit_reached naming max_tunnels_per_client", resp.StatusCode, resp.Header.Get("Proxy-Status"))
		}
		third.Close()
		if _, resp := openTunnel(t, f.addr, f.echo, f.otherClientTLS(t)); resp.StatusCode != http.StatusOK {
			t.Fatalf("another client's tunnel: %s; want 200", resp.Status)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if rec.refused[metrics.LinkRefusedMaxTunnels] != 1 {
			t.Fatalf("refusals counted: %v", rec.refused)
		}
	})

	t.Run("per IAM identity, across certificates", func(t *testing.T) {
		f := startExit(t, false, func(c *Config) {
			c.MaxTunnelsPerClient = 1
			c.Authorize = func(context.Context, string, http.Header) (string, error) {
				return "arn:aws:iam::111122223333:role/shared", nil
			}
		})
		first, resp := openTunnel(t, f.addr, f.echo, f.clientTLS(t, "http/1.1"))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("first tunnel: %s", resp.Status)
		}
		_, resp = openTunnel(t, f.addr, f.echo, f.otherClientTLS(t))
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(resp.Header.Get("Proxy-Status"), "role/shared") {
			t.Fatalf("a second certificate with the same identity: %d %q; want 429 naming the identity", resp.StatusCode, resp.Header.Get("Proxy-Status"))
		}
		first.Close()
		waitFor(t, "the identity's tunnel to be released", func() bool {
			c, resp := openTunnel(t, f.addr, f.echo, f.otherClientTLS(t))
			c.Close()
			return resp.StatusCode == http.StatusOK
		})
	})
}

func TestRevokedClientsAreRefusedAndCutOff(t *testing.T) {
	rec := newRecorder()
	var revokedName atomic.Pointer[string]
	f := startExit(t, false, func(c *Config) {
		c.Observer = rec
		c.Revoked = func(chain []*x509.Certificate) error {
			if name := revokedName.Load(); name != nil && chain[0].Subject.CommonName == *name {
				return fmt.Errorf("client %q: %w", *name, pki.ErrRevoked)
			}
			return nil
		}
	})
	laptop := f.clientTLS(t, "http/1.1")
	tunnelConn, resp := openTunnel(t, f.addr, f.echo, laptop)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tunnel: %s", resp.Status)
	}
	link, err := tls.Dial("tcp", f.addr, f.clientTLS(t, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	waitFor(t, "both links to be admitted", rec.openedIs(2))
	phone := f.otherClientTLS(t)

	if n := f.srv.Recheck(); n != 0 {
		t.Fatalf("Recheck with nothing revoked closed %d links", n)
	}
	name := pki.DefaultClientName
	revokedName.Store(&name)
	if n := f.srv.Recheck(); n != 2 {
		t.Fatalf("Recheck after the revocation closed %d links; want 2", n)
	}
	for what, c := range map[string]*tls.Conn{"the HTTP/1.1 tunnel": tunnelConn, "the HTTP/2 link": link} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s is still open after its certificate was revoked", what)
		}
	}
	rec.mu.Lock()
	if rec.revoked != 2 {
		t.Errorf("links counted as cut off: %d; want 2", rec.revoked)
	}
	rec.mu.Unlock()
	if !strings.Contains(f.logs.String(), "link cut off: its client certificate is revoked") {
		t.Errorf("no log line for the cut-off:\n%s", f.logs)
	}

	// A new handshake with the revoked certificate fails; another
	// client's succeeds.
	c, err := tls.Dial("tcp", f.addr, laptop)
	if err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1)) // TLS 1.3: the refusal comes after the client's handshake
		c.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "bad certificate") {
		t.Fatalf("a revoked client's handshake: %v; want a bad_certificate alert", err)
	}
	waitFor(t, "the refusal to be counted", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.handshakes["certificate revoked"] == 1
	})
	if _, resp := openTunnel(t, f.addr, f.echo, phone); resp.StatusCode != http.StatusOK {
		t.Fatalf("another client: %s; want 200", resp.Status)
	}
}
