package httpproxy_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/httpproxy"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait in these tests so that a bug fails a test
// instead of hanging it.
const waitTimeout = 10 * time.Second

// dialFunc is the type of Handler.Dial.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// testProxy is a Handler served on loopback by a plain http.Server.
type testProxy struct {
	h       *httpproxy.Handler
	addr    string
	url     *url.URL
	accepts atomic.Int64 // client connections accepted
	dials   atomic.Int64 // calls to Dial
	logs    *logRecorder
}

// startProxy serves a Handler whose Dial is dial, or a plain net.Dialer
// when dial is nil, after passing it to each of configure. Everything is
// closed when the test ends.
func startProxy(t *testing.T, dial dialFunc, configure ...func(*httpproxy.Handler)) *testProxy {
	t.Helper()
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	p := &testProxy{logs: newLogRecorder()}
	p.h = &httpproxy.Handler{
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			p.dials.Add(1)
			return dial(ctx, network, addr)
		},
		Logger: slog.New(p.logs),
	}
	for _, f := range configure {
		f(p.h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.url = &url.URL{Scheme: "http", Host: p.addr}
	srv := &http.Server{Handler: p.h, ReadHeaderTimeout: waitTimeout}
	served := make(chan struct{}) // closed when Serve returns
	go func() {
		defer close(served)
		srv.Serve(&countingListener{Listener: ln, accepts: &p.accepts})
	}()
	t.Cleanup(func() {
		srv.Close()
		<-served
		if err := p.h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return p
}

// client returns an http.Client that uses the proxy and never follows
// redirects.
func (p *testProxy) client(t *testing.T) *http.Client {
	tr := &http.Transport{Proxy: http.ProxyURL(p.url), DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// rawConn opens a TCP connection to the proxy for hand-written requests.
func (p *testProxy) rawConn(t *testing.T) (*net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	return c.(*net.TCPConn), bufio.NewReader(c)
}

// rawRoundTrip writes a hand-written request and reads the response head.
func (p *testProxy) rawRoundTrip(t *testing.T, method, request string) (*http.Response, *net.TCPConn, *bufio.Reader) {
	t.Helper()
	c, br := p.rawConn(t)
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read response to %q: %v", request, err)
	}
	return res, c, br
}

// countingListener counts accepted connections.
type countingListener struct {
	net.Listener
	accepts *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepts.Add(1)
	}
	return c, err
}

// logRecorder is a slog.Handler that keeps each record's message and
// attributes.
type logRecorder struct {
	mu      sync.Mutex
	records []map[string]any // guarded by mu
	added   chan struct{}    // signaled after each record; never closed
}

func newLogRecorder() *logRecorder {
	return &logRecorder{added: make(chan struct{}, 1)}
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }

func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelInfo {
		return nil
	}
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Any()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, m)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return nil
}

// wait returns the records once there are n of them.
func (l *logRecorder) wait(t *testing.T, n int) []map[string]any {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		recs := append([]map[string]any(nil), l.records...)
		l.mu.Unlock()
		if len(recs) >= n {
			return recs
		}
		select {
		case <-l.added:
		case <-timeout.C:
			t.Fatalf("got %d log records, want %d: %v", len(recs), n, recs)
		}
	}
}

// checkLog asserts that a log record has the given attributes.
func checkLog(t *testing.T, rec map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got := rec[k]; got != v {
			t.Errorf("log %q = %v (%T), want %v (%T); record %v", k, got, got, v, v, rec)
		}
	}
	for _, k := range []string{"client", "target", "method", "status", "up", "down", "duration", "result"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("log record lacks %q: %v", k, rec)
		}
	}
}

// echoServer is a TCP server for CONNECT tests. With afterEOF, it reads
// until the client half-closes and only then sends everything back;
// otherwise it echoes as it reads. It closes each connection when done.
func echoServer(t *testing.T, afterEOF bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
				if !afterEOF {
					io.Copy(c, c)
					return
				}
				b, err := io.ReadAll(c)
				if err != nil {
					return
				}
				c.Write(b)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// policyError is what the tunnel returns when the exit's policy refuses a
// target.
type policyError struct{ msg string }

func (e policyError) Error() string       { return e.msg }
func (e policyError) StatusCode() int     { return http.StatusForbidden }
func (e policyError) ProxyStatus() string { return "destination_ip_prohibited" }

// statusError carries only a status.
type statusError struct {
	status int
	msg    string
}

func (e statusError) Error() string   { return e.msg }
func (e statusError) StatusCode() int { return e.status }

// failingDial returns a Dial that always fails with err.
func failingDial(err error) dialFunc {
	return func(context.Context, string, string) (net.Conn, error) { return nil, err }
}

// readBody reads and closes a response body.
func readBody(t *testing.T, res *http.Response) string {
	t.Helper()
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return string(b)
}

// containsAll reports the first of subs missing from s.
func missing(s string, subs ...string) string {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return sub
		}
	}
	return ""
}
