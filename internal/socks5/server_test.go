package socks5

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/net/proxy"
)

// logSink collects JSON log lines from concurrent writers.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(l.buf.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// onlyLine returns the single log line, failing unless there is exactly one.
func (l *logSink) onlyLine(t *testing.T) map[string]any {
	t.Helper()
	lines := l.lines(t)
	if len(lines) != 1 {
		t.Fatalf("%d log lines, want exactly 1: %v", len(lines), lines)
	}
	return lines[0]
}

// serveTCP runs handle for every connection to a new loopback listener
// until the test ends.
func serveTCP(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	return serveOn(t, "127.0.0.1:0", handle)
}

// serveTCP6 is serveTCP on the IPv6 loopback address.
func serveTCP6(t *testing.T, handle func(net.Conn)) net.Listener {
	t.Helper()
	return serveOn(t, "[::1]:0", handle)
}

func serveOn(t *testing.T, addr string, handle func(net.Conn)) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln
}

// echo copies a connection back to itself until the client stops sending.
func echo(c net.Conn) { io.Copy(c, c) }

// answerAfterEOF reads until the client half-closes, then answers.
func answerAfterEOF(c net.Conn) {
	data, _ := io.ReadAll(c)
	fmt.Fprintf(c, "got %d bytes: %s", len(data), data)
}

// testProxy is a Server on a loopback listener.
type testProxy struct {
	addr   string
	logs   *logSink
	cancel context.CancelFunc // cancels the ctx of every ServeConn

	mu     sync.Mutex
	dialed []string // targets passed to Dial; guarded by mu

	ln net.Listener
	wg sync.WaitGroup
}

// startProxy serves s. If s.Dial is nil and routes is not, it installs a
// Dial that records the target and connects to routes[target] or, failing
// that, to the target itself.
func startProxy(t *testing.T, s *Server, routes map[string]string) *testProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &testProxy{addr: ln.Addr().String(), logs: &logSink{}, cancel: cancel, ln: ln}
	s.Logger = slog.New(slog.NewJSONHandler(p.logs, nil))
	if s.Dial == nil && routes != nil {
		s.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			p.mu.Lock()
			p.dialed = append(p.dialed, addr)
			p.mu.Unlock()
			if to, ok := routes[addr]; ok {
				addr = to
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				s.ServeConn(ctx, c)
			}()
		}
	}()
	t.Cleanup(func() {
		cancel()
		p.wait()
	})
	return p
}

// wait stops accepting and waits for every connection to be served.
func (p *testProxy) wait() {
	p.ln.Close()
	p.wg.Wait()
}

func (p *testProxy) targets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.dialed)
}

func dialProxy(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A safety net against a hung test, not a timing assertion.
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return c.(*net.TCPConn)
}

func TestServeConnRelaysBothWaysWithHalfClose(t *testing.T) {
	target := serveTCP(t, answerAfterEOF)
	p := startProxy(t, &Server{}, map[string]string{"count.test:80": target.Addr().String()})

	c := dialProxy(t, p.addr)
	// Greeting, request and data in one write: the data must reach the
	// target, not be eaten by the request parser.
	if _, err := c.Write(cat(greeting, req(1, 3, domain("count.test"), 80), []byte("hello"))); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	const answer = "got 5 bytes: hello"
	if len(got) < 12 || !bytes.Equal(got[:2], selectNone) || !bytes.Equal(got[2:6], []byte{5, 0, 0, 1}) {
		t.Fatalf("got % x, want a method selection and a success reply", got)
	}
	if string(got[12:]) != answer {
		t.Errorf("after the target saw EOF it answered %q, want %q", got[12:], answer)
	}
	if d := p.targets(); !slices.Equal(d, []string{"count.test:80"}) {
		t.Errorf("dialed %q, want the name unresolved", d)
	}

	p.wait()
	line := p.logs.onlyLine(t)
	want := map[string]any{
		"client": c.LocalAddr().String(),
		"target": "count.test:80",
		"up":     float64(len("hello")),
		"down":   float64(len(answer)),
		"result": "ok",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if d, _ := line["duration"].(float64); d <= 0 {
		t.Errorf("log duration = %v", line["duration"])
	}
}

func TestServeConnWithAnIndependentClient(t *testing.T) {
	target := serveTCP(t, echo)
	p := startProxy(t, &Server{}, map[string]string{"echo.test:7": target.Addr().String()})

	d, err := proxy.SOCKS5("tcp", p.addr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	cd := d.(proxy.ContextDialer)

	cases := []struct{ name, addr string }{
		{"a domain name", "echo.test:7"},
		{"an IPv4 literal", target.Addr().String()},
	}
	if ln6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln6.Close() // only to learn that IPv6 loopback works
		cases = append(cases, struct{ name, addr string }{"an IPv6 literal", serveTCP6(t, echo).Addr().String()})
	}
	var addrs []string
	for _, tc := range cases {
		addrs = append(addrs, tc.addr)
		t.Run(tc.name+" is relayed", func(t *testing.T) {
			c, err := cd.DialContext(context.Background(), "tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			for _, msg := range []string{"ping", "a second message"} {
				if _, err := io.WriteString(c, msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, len(msg))
				if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
					t.Fatalf("echo %q: %q, %v", msg, buf, err)
				}
			}
		})
	}
	if got := p.targets(); !slices.Equal(got, addrs) {
		t.Errorf("dialed %q, want %q as the client wrote them", got, addrs)
	}
}

func TestServeConnAnswersDialFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error // nil: Server.Dial is nil
		want Reply
	}{
		{"a refusal by policy is not allowed", &dialError{403, "destination_ip_prohibited"}, NotAllowed},
		{"a DNS failure is host unreachable", &dialError{502, "dns_error"}, HostUnreachable},
		{"a refused connection is connection refused", &dialError{502, "connection_refused"}, ConnectionRefused},
		{"a timeout is TTL expired", &dialError{504, "connection_timeout"}, TTLExpired},
		{"a tunnel down is a general failure", &dialError{503, "destination_unavailable"}, GeneralFailure},
		{"a missing Dial is a general failure", nil, GeneralFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{}
			if tt.err != nil {
				s.Dial = func(context.Context, string, string) (net.Conn, error) { return nil, tt.err }
			}
			p := startProxy(t, s, nil)
			c := dialProxy(t, p.addr)
			if _, err := c.Write(cat(greeting, req(1, 3, domain("example.com"), 443))); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(c)
			if want := cat(selectNone, failure(tt.want)); !bytes.Equal(got, want) {
				t.Errorf("got % x, want % x", got, want)
			}
			p.wait()
			line := p.logs.onlyLine(t)
			if line["result"] != tt.want.String() || line["target"] != "example.com:443" || line["error"] == nil {
				t.Errorf("log %v, want result %q with the target and the error", line, tt.want)
			}
		})
	}
}

func TestServeConnRefusesBadRequests(t *testing.T) {
	p := startProxy(t, &Server{}, map[string]string{})
	c := dialProxy(t, p.addr)
	if _, err := c.Write(cat(greeting, req(3, 1, []byte{0, 0, 0, 0}, 0))); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	if want := cat(selectNone, failure(CommandNotSupported)); !bytes.Equal(got, want) {
		t.Errorf("UDP ASSOCIATE answered % x, want % x", got, want)
	}
	p.wait()
	if len(p.targets()) != 0 {
		t.Errorf("dialed %q for a refused request", p.targets())
	}
	if line := p.logs.onlyLine(t); line["result"] != "handshake failed" {
		t.Errorf("log %v", line)
	}
}

func TestServeConnHandshakeTimeout(t *testing.T) {
	t.Run("a silent client is dropped after HandshakeTimeout", func(t *testing.T) {
		p := startProxy(t, &Server{HandshakeTimeout: 100 * time.Millisecond}, nil)
		c := dialProxy(t, p.addr)
		got, _ := io.ReadAll(c) // returns when the server closes
		if len(got) != 0 {
			t.Errorf("server wrote % x to a silent client", got)
		}
		p.wait()
		if line := p.logs.onlyLine(t); line["result"] != "handshake failed" {
			t.Errorf("log %v", line)
		}
	})

	t.Run("the deadline covers the whole negotiation and defaults to 10s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			s := &Server{Dial: func(context.Context, string, string) (net.Conn, error) {
				t.Error("dialed for an unfinished request")
				return nil, errors.New("unexpected")
			}}
			start := time.Now()
			done := make(chan struct{}) // closed when ServeConn returns
			go func() {
				s.ServeConn(context.Background(), server)
				close(done)
			}()
			// A slow client that makes progress: greeting at 9s.
			time.Sleep(9 * time.Second)
			if _, err := client.Write(greeting); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2)
			if _, err := io.ReadFull(client, buf); err != nil {
				t.Fatal(err)
			}
			<-done
			if got := time.Since(start); got != 10*time.Second {
				t.Errorf("dropped after %v, want 10s from the first byte", got)
			}
		})
	})

	t.Run("a slow dial is not cut by the handshake deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			client, server := net.Pipe()
			s := &Server{
				HandshakeTimeout: time.Second,
				Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
					time.Sleep(30 * time.Second) // an exit waking up
					a, b := net.Pipe()
					go func() {
						defer b.Close()
						echo(b)
					}()
					return a, nil
				},
			}
			done := make(chan struct{}) // closed when ServeConn returns
			go func() {
				s.ServeConn(context.Background(), server)
				close(done)
			}()
			go client.Write(cat(greeting, req(1, 3, domain("slow.test"), 443)))
			reply := make([]byte, 12)
			if _, err := io.ReadFull(client, reply); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(reply[:4], []byte{5, 0, 5, 0}) {
				t.Fatalf("reply % x, want success", reply)
			}
			// The relay outlives the handshake deadline by far.
			time.Sleep(time.Minute)
			go client.Write([]byte("late"))
			buf := make([]byte, 4)
			if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "late" {
				t.Fatalf("echo: %q, %v", buf, err)
			}
			client.Close()
			<-done
		})
	})
}

func TestServeConnCancelClosesTheClient(t *testing.T) {
	target := serveTCP(t, echo)
	p := startProxy(t, &Server{}, map[string]string{})
	c := dialProxy(t, p.addr)
	ap := netip.MustParseAddrPort(target.Addr().String())
	if _, err := c.Write(cat(greeting, req(1, 1, ap.Addr().AsSlice(), ap.Port()), []byte("x"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 13)
	if _, err := io.ReadFull(c, buf); err != nil || buf[3] != 0 || buf[12] != 'x' {
		t.Fatalf("relay not up: % x, %v", buf, err)
	}

	p.cancel()
	if n, err := c.Read(buf); err == nil {
		t.Fatalf("read %d bytes after cancel, want the connection closed", n)
	}
	p.wait()
	line := p.logs.onlyLine(t)
	if line["result"] != "canceled" || line["target"] != target.Addr().String() || line["up"] != float64(1) {
		t.Errorf("log %v", line)
	}
}

func TestBoundAddr(t *testing.T) {
	target := serveTCP(t, echo)
	c, err := net.Dial("tcp", target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, want := boundAddr(c).String(), c.LocalAddr().String(); got != want {
		t.Errorf("bound %s, want the local address %s", got, want)
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := boundAddr(a); got.IsValid() {
		t.Errorf("bound %s for a non-TCP connection, want none", got)
	}
}

func TestAClientThatLeavesBeforeItsReplyIsCanceledNotAFailedDial(t *testing.T) {
	target := serveTCP(t, echo)
	dialing := make(chan struct{})
	left := make(chan struct{})
	ended := make(chan Session, 1)
	s := &Server{
		// The dial succeeds, but only once the client has gone.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			close(dialing)
			<-left
			var d net.Dialer
			return d.DialContext(ctx, network, target.Addr().String())
		},
		Hooks: Hooks{Ended: func(s Session) string { ended <- s; return "" }},
	}
	p := startProxy(t, s, nil)
	c := dialProxy(t, p.addr)
	if _, err := c.Write(cat(greeting, req(1, 3, append([]byte{byte(len("a.test"))}, "a.test"...), 80))); err != nil {
		t.Fatal(err)
	}
	io.ReadFull(c, make([]byte, 2)) // the method reply
	<-dialing
	c.SetLinger(0)
	c.Close()
	close(left)
	got := <-ended
	if !got.Canceled || got.Connected || got.BadRequest {
		t.Fatalf("session %+v: want Canceled, not Connected nor BadRequest", got)
	}
	p.wait()
	if line := p.logs.onlyLine(t); line["result"] != "canceled" {
		t.Errorf("logged result %v, want canceled", line["result"])
	}
}
