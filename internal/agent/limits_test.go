package agent

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"fluidity/internal/metrics"
	"fluidity/internal/tunnel"
)

var tunnelDialError403 = tunnel.DialError{Target: "x:1", Status: http.StatusForbidden, Type: "destination_ip_prohibited"}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
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

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// connectTunnel opens a CONNECT tunnel to target through the agent.
func connectTunnel(t *testing.T, agentAddr, target string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

func TestMaxConnectionsClosesTheExcessAndLogsIt(t *testing.T) {
	logs := &syncBuffer{}
	agentAddr, a, _ := startPairWith(t, false, 5*time.Second, func(c *Config) {
		c.MaxConnections = 2
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	origin := startOrigin(t)
	c1 := connectTunnel(t, agentAddr, origin)
	defer c1.Close()
	c2 := connectTunnel(t, agentAddr, origin)
	defer c2.Close()

	c3, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	c3.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	if _, err := c3.Read(make([]byte, 1)); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("third connection: read %v after %v, want it closed at once", err, time.Since(start))
	}
	if s := a.Snapshot(); s.ConnsRefused != 1 || s.ConnsOpen != 2 {
		t.Fatalf("snapshot %+v: want 1 refused, 2 open", s)
	}
	if !strings.Contains(logs.String(), "max_connections=2") {
		t.Fatalf("no log line naming max_connections:\n%s", logs)
	}

	// A slot frees when a client leaves, including one served by the HTTP
	// server (a forwarded request) rather than on the bare socket.
	c1.Close()
	waitFor(t, "the slot to be released", func() bool { return a.Snapshot().ConnsOpen == 1 })
	tr := &http.Transport{Proxy: http.ProxyURL(mustURL("http://" + agentAddr))}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + origin + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	tr.CloseIdleConnections()
	c2.Close()
	waitFor(t, "every slot to be released", func() bool { return a.Snapshot().ConnsOpen == 0 })
}

func TestStalledRequestBodyIsCutOff(t *testing.T) {
	agentAddr, _, _ := startPairWith(t, false, 5*time.Second, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	// An origin that reads the whole body before it answers.
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST http://"+ln.Addr().String()+"/ HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly ten b")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	io.Copy(io.Discard, c) // until the agent closes the connection
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("a stalled body held the connection %v with a 300ms idle timeout", elapsed)
	}
}

func TestResultReasons(t *testing.T) {
	for _, tc := range []struct {
		name                string
		err                 error
		bad, conn, canceled bool
		want                string
	}{
		{"success", nil, false, false, false, metrics.ReasonOK},
		{"a malformed request", errors.New("x"), true, false, false, metrics.ReasonBadRequest},
		{"a break after set-up", errors.New("x"), false, true, false, metrics.ReasonReset},
		{"an idle cut-off after set-up", os.ErrDeadlineExceeded, false, true, false, metrics.ReasonTimeout},
		{"a refusal by the exit's policy", &tunnelDialError403, false, false, false, metrics.ReasonPolicy},
		{"a target that refuses the connection", &tunnel.DialError{Status: 502, Type: "connection_refused"}, false, false, false, metrics.ReasonRefused},
		{"a target that does not answer", &tunnel.DialError{Status: 504, Type: "connection_timeout"}, false, false, false, metrics.ReasonTimeout},
		{"a name that does not resolve", &tunnel.DialError{Status: 502, Type: "dns_error"}, false, false, false, metrics.ReasonDialFailed},
		{"no link to the exit", &tunnel.DialError{Status: 503, Err: tunnel.ErrLinkDown}, false, false, false, metrics.ReasonLinkDown},
		{"an unreachable target", errors.New("x"), false, false, false, metrics.ReasonDialFailed},
		{"a client that left", nil, false, false, true, metrics.ReasonCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := resultReason(tc.err, tc.bad, tc.conn, tc.canceled); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
