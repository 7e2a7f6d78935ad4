package faults

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// exitTLS is the TLS configuration of a client of the exit that presents
// the client certificate in certs and speaks the given ALPN protocols. With
// noCert it presents no certificate.
func exitTLS(t *testing.T, certs string, noCert bool, protos ...string) *tls.Config {
	t.Helper()
	f := func(n string) string { return filepath.Join(certs, n) }
	cfg, err := pki.ClientConfig(f(pki.ClientCertFile), f(pki.ClientKeyFile), f(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.Clone()
	cfg.NextProtos = protos
	if noCert {
		cfg.Certificates = nil
		cfg.GetClientCertificate = nil
	}
	return cfg
}

// slowClient is a connection that sends prefix one byte every gap and
// then keeps sending filler, as a slowloris does, while a reader waits for
// the server to end the connection.
type slowClient struct {
	start time.Time
	ended chan struct{} // closed by the reader when the server ends the connection
	took  time.Duration // set before ended is closed
	err   error         // why the read ended; set before ended is closed
}

// slowloris dials with dial and feeds the connection as a slowloris would.
// The clock starts before the dial, so the time measured is never shorter
// than the server's (whose deadline starts at its accept or later). The
// reader gives up after limit, which then counts as a hang. The connection
// is closed when the test ends.
func slowloris(t *testing.T, dial func() net.Conn, prefix string, gap, limit time.Duration) *slowClient {
	s := &slowClient{start: time.Now(), ended: make(chan struct{})}
	c := dial()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		c.Close()
		wg.Wait()
	})
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.SetReadDeadline(s.start.Add(limit))
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		s.took = time.Since(s.start)
		s.err = err
		close(s.ended)
	}()
	go func() {
		defer wg.Done()
		msg := prefix + strings.Repeat("x", 1<<20)
		for i := 0; i < len(msg); i++ {
			select {
			case <-s.ended:
				return
			case <-time.After(gap):
			}
			if _, err := c.Write([]byte{msg[i]}); err != nil {
				return
			}
		}
	}()
	return s
}

// check waits for the server to cut the slow client off, and fails unless
// that happened between min and max after the connection began.
func (s *slowClient) check(t *testing.T, what string, lo, hi time.Duration) {
	t.Helper()
	<-s.ended
	if errors.Is(s.err, os.ErrDeadlineExceeded) {
		t.Errorf("%s: still connected after %v: not cut off", what, s.took.Round(time.Millisecond))
		return
	}
	if s.took < lo || s.took > hi {
		t.Errorf("%s: cut off after %v, want between %v and %v", what, s.took.Round(time.Millisecond), lo, hi)
	}
}

// TestSlowloris sends request headers and handshakes a byte at a time, on
// the agent's port and on the exit's: each connection must be cut off at
// its deadline, and a crowd of them must not keep a normal request from
// succeeding.
func TestSlowloris(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs, "--handshake-timeout", "1s", "--header-timeout", "1s")
	agent, proxy := procs.StartAgent(t, certs, exitAddr, "--header-timeout", "1s")
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	origin := newOrigin(t)
	const gap = 100 * time.Millisecond
	// The deadline is 1s; it may run from the first byte (up to one gap
	// late), and the process needs a moment to notice. A CONNECT cut off
	// inside its request line gets no second header timeout from the
	// agent's HTTP server.
	lo, hi := 900*time.Millisecond, 1600*time.Millisecond
	if raceEnabled {
		hi += time.Second
	}

	dial := func(addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tlsDial := func(protos ...string) net.Conn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, exitTLS(t, certs, false, protos...))
		if err != nil {
			t.Fatalf("tls dial exit: %v", err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != protos[0] {
			t.Fatalf("negotiated %q, want %q", p, protos[0])
		}
		return c
	}
	origAuthority := strings.TrimPrefix(origin.URL, "http://")
	cases := []struct {
		name   string
		conn   func() net.Conn
		prefix string
	}{
		{"agent: a plain request header", func() net.Conn { return dial(proxy) },
			"GET " + origin.URL + "/hello HTTP/1.1\r\nHost: " + origAuthority + "\r\nX-Slow: "},
		{"agent: a CONNECT request header", func() net.Conn { return dial(proxy) },
			"CONNECT " + origAuthority + " HTTP/1.1\r\nHost: " + origAuthority + "\r\nX-Slow: "},
		// A greeting that offers 255 methods, sent one at a time.
		{"agent: a SOCKS5 negotiation", func() net.Conn { return dial(proxy) }, "\x05\xff"},
		{"agent: a client that sends nothing", func() net.Conn { return dial(proxy) }, ""},
		{"exit: a TLS handshake", func() net.Conn { return dial(exitAddr) },
			// A handshake record header announcing 512 bytes, which never come in time.
			"\x16\x03\x01\x02\x00\x01"},
		{"exit: an HTTP/1.1 CONNECT header after the handshake", func() net.Conn { return tlsDial("http/1.1") },
			"CONNECT " + origAuthority + " HTTP/1.1\r\nX-Slow: "},
	}
	t.Run("each kind", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name+" is cut off at the deadline", func(t *testing.T) {
				t.Parallel()
				g := gap
				if tc.prefix == "" {
					g = time.Hour // send nothing at all
				}
				slowloris(t, tc.conn, tc.prefix, g, 10*time.Second).check(t, tc.name, lo, hi)
			})
		}
	})
	if !exit.WaitLog(`reason=timeout`, 1, 5*time.Second) {
		t.Errorf("the exit did not log the handshake timeout")
	}

	t.Run("a crowd of slow clients does not block a normal request", func(t *testing.T) {
		const crowd = 200
		var clients []*slowClient
		for i := range crowd {
			tc := cases[i%len(cases)]
			if tc.prefix == "" || strings.Contains(tc.name, "after the handshake") && i >= len(cases) {
				// Keep the TLS dials few: they are slow under the race detector.
				tc = cases[0]
			}
			clients = append(clients, slowloris(t, tc.conn, tc.prefix, gap, 10*time.Second))
		}
		time.Sleep(300 * time.Millisecond) // all of them are in their headers now
		start := time.Now()
		c := proxyClient(t, proxy, 5*time.Second)
		body, err := get(t.Context(), c, origin.URL+"/hello")
		if err != nil || body != "hello\n" {
			t.Fatalf("request among %d slow clients: %q, %v", crowd, body, err)
		}
		took := time.Since(start)
		if took > time.Second {
			t.Errorf("a request among %d slow clients took %v", crowd, took)
		}
		t.Logf("a request among %d slow clients took %v", crowd, took.Round(time.Microsecond))
		for i, s := range clients {
			s.check(t, fmt.Sprintf("slow client %d", i), lo, hi+time.Second)
		}
	})

}

// TestOversizedHeaders sends request headers over the limit: the agent and
// the exit's HTTP/1.1 CONNECT must answer 431 and end the connection.
func TestOversizedHeaders(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs)
	agent, proxy := procs.StartAgent(t, certs, exitAddr)
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	origin := newOrigin(t)
	authority := strings.TrimPrefix(origin.URL, "http://")
	huge := strings.Repeat("a", 200<<10) // over the agent's 64 KiB and the exit's 16 KiB

	cases := []struct {
		name string
		dial func() net.Conn
		req  string
	}{
		{"agent: a plain request", func() net.Conn { return mustDial(t, proxy) },
			"GET " + origin.URL + "/hello HTTP/1.1\r\nHost: " + authority + "\r\nX-Big: " + huge + "\r\n\r\n"},
		{"agent: a CONNECT request", func() net.Conn { return mustDial(t, proxy) },
			"CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\nX-Big: " + huge + "\r\n\r\n"},
		{"exit: an HTTP/1.1 CONNECT request", func() net.Conn {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, exitTLS(t, certs, false, "http/1.1"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, "CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\nX-Big: " + huge + "\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" gets 431 and the connection ends", func(t *testing.T) {
			c := tc.dial()
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			// The server may answer and close before it has read it all.
			go io.WriteString(c, tc.req)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("read response: %v", err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("status %s, want 431", resp.Status)
			}
			start := time.Now()
			_, err = io.Copy(io.Discard, br)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the connection stayed open after the 431")
			}
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("the connection ended %v after the 431", took)
			}
		})
	}
	if exit.Exited() || agent.Exited() {
		t.Fatal("a process died")
	}
}

// mustDial connects to addr over TCP.
func mustDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNotTLSAndNoCertificate sends the exit bytes that are not TLS, and
// makes a TLS handshake with no client certificate and then holds the
// connection: both must be closed promptly, well within the handshake
// deadline, and logged with the reason.
func TestNotTLSAndNoCertificate(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs, "--handshake-timeout", "3s")

	t.Run("garbage instead of TLS is closed at once and logged", func(t *testing.T) {
		c := mustDial(t, exitAddr)
		defer c.Close()
		start := time.Now()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: fluidity-server\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, c)
		took := time.Since(start)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the connection stayed open")
		}
		if took > time.Second {
			t.Errorf("closed after %v, want at once", took)
		}
		if !exit.WaitLog(`reason="not TLS"`, 1, 2*time.Second) {
			t.Error(`the exit did not log reason="not TLS"`)
		}
	})

	t.Run("a client without a certificate is cut off and logged", func(t *testing.T) {
		// In TLS 1.3 the client's side of the handshake completes before
		// the server has seen its (missing) certificate: the client then
		// just holds the connection, waiting.
		start := time.Now()
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, exitTLS(t, certs, true, "h2"))
		if err != nil {
			t.Fatalf("handshake failed on the client's side already: %v", err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = io.Copy(io.Discard, c)
		took := time.Since(start)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the connection stayed open")
		}
		if took > 3*time.Second {
			t.Errorf("cut off after %v, beyond the 3s handshake deadline", took)
		}
		t.Logf("cut off after %v: %v", took.Round(time.Millisecond), err)
		if !exit.WaitLog(`reason="no client certificate"`, 1, 2*time.Second) {
			t.Error(`the exit did not log reason="no client certificate"`)
		}
	})
}

// TestStalledReader opens streams through the agent to a target that sends
// as fast as it can, and never reads them. Other traffic must keep
// flowing, and what the stalled streams pin in the agent and the exit is
// bounded by the stream window (4 MiB by default) per stream.
func TestStalledReader(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs)
	agent, proxy := procs.StartAgent(t, certs, exitAddr)
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	origin := newOrigin(t)
	blaster := newBlaster(t)
	echo := newEcho(t)
	waitRequest(t, proxy, origin.URL+"/hello", "hello\n", 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	a0, e0 := agent.RSS(t), exit.RSS(t)

	const stalled = 16
	for range stalled {
		c, err := dialConnect(proxy, blaster.Addr(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		// Read one byte to know data flows, then never again.
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
	}
	// Let every window and socket buffer fill up.
	a1, e1 := settledRSS(t, agent), settledRSS(t, exit)

	// Other traffic flows alongside: a page, a tunnel, a 32 MiB download.
	start := time.Now()
	c := proxyClient(t, proxy, 20*time.Second)
	if body, err := get(t.Context(), c, origin.URL+"/hello"); err != nil || body != "hello\n" {
		t.Fatalf("request beside %d stalled streams: %q, %v", stalled, body, err)
	}
	ec, err := dialConnect(proxy, echo.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("tunnel beside %d stalled streams: %v", stalled, err)
	}
	defer ec.Close()
	if err := echoRoundTrip(ec, "still flowing\n", 5*time.Second); err != nil {
		t.Fatalf("tunnel beside %d stalled streams: %v", stalled, err)
	}
	const big = 32 << 20
	body, err := get(t.Context(), c, fmt.Sprintf("%s/bytes?n=%d", origin.URL, big))
	if err != nil || len(body) != big {
		t.Fatalf("download beside %d stalled streams: %d bytes, %v", stalled, len(body), err)
	}
	t.Logf("beside %d stalled streams: a page, a tunnel round trip and a 32 MiB download took %v",
		stalled, time.Since(start).Round(time.Millisecond))

	perAgent := float64(a1-a0) / stalled
	perExit := float64(e1-e0) / stalled
	t.Logf("RSS with %d stalled streams: agent %s → %s (%.2f MiB per stream), exit %s → %s (%.2f MiB per stream)",
		stalled, proctest.MiB(a0), proctest.MiB(a1), perAgent/(1<<20), proctest.MiB(e0), proctest.MiB(e1), perExit/(1<<20))
	// One stalled stream pins at most its 4 MiB window in the agent, plus
	// buffers; the exit's relay holds only what it is writing.
	const window = 4 << 20
	if perAgent > window+1<<20 {
		t.Errorf("agent RSS grew %.2f MiB per stalled stream, beyond the 4 MiB stream window", perAgent/(1<<20))
	}
	if perExit > 1<<20 {
		t.Errorf("exit RSS grew %.2f MiB per stalled stream, want under 1 MiB", perExit/(1<<20))
	}
}

// goroutinesDownTo polls p's goroutine count until it is at most limit or
// deadline passes, and returns the last count.
func goroutinesDownTo(t *testing.T, p *proctest.Proc, limit int, deadline time.Time) int {
	t.Helper()
	for {
		g, _ := p.Goroutines(t)
		if g <= limit || time.Now().After(deadline) {
			return g
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settledRSS waits until the process's RSS stops growing (for up to 5s)
// and returns it.
func settledRSS(t *testing.T, p *proctest.Proc) int64 {
	t.Helper()
	last := p.RSS(t)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
		r := p.RSS(t)
		if r-last < 256<<10 {
			return r
		}
		last = r
	}
	return last
}
