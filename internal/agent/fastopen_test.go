package agent

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"fluidity/internal/metrics"
	"fluidity/internal/tunnel"
)

// results records the agent's Observer calls.
type results struct {
	mu      sync.Mutex
	reasons []string // frontend/reason
	done    chan struct{}
}

func (r *results) StreamOpened(time.Duration) {}
func (r *results) Result(frontend, reason string) {
	r.mu.Lock()
	r.reasons = append(r.reasons, frontend+"/"+reason)
	r.mu.Unlock()
	r.done <- struct{}{}
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitFor returns the log once it holds s: the hook that reports a result
// runs just before the line is written.
func (l *lockedBuffer) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.String(), s) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return l.String()
}

// refusedAddr is a loopback address where nothing listens.
func refusedAddr(t *testing.T) (addr, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = ln.Addr().String()
	ln.Close()
	_, port, _ = net.SplitHostPort(addr)
	return addr, port
}

func startFastPair(t *testing.T, port int) (string, *results, *lockedBuffer) {
	t.Helper()
	res := &results{done: make(chan struct{}, 4)}
	logs := &lockedBuffer{}
	agentAddr, a, _ := startPairWith(t, false, 5*time.Second, func(c *Config) {
		c.FastOpenPorts = []int{port}
		c.Observer = res
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	deadline := time.Now().Add(10 * time.Second)
	for a.Status().State != tunnel.StateUp {
		if time.Now().After(deadline) {
			t.Fatal("the link never came up")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return agentAddr, res, logs
}

// With fast open, a CONNECT to a refused target is answered 200 at once;
// the refusal then closes the client's connection, and the stream's log
// line and metrics say the target refused.
func TestFastOpenRefusedTargetClosesTheClientAndLogsWhy(t *testing.T) {
	target, port := refusedAddr(t)
	p, _ := net.LookupPort("tcp", port)
	agentAddr, res, logs := startFastPair(t, p)

	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\nclient hello")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("fast open answered %s, want 200 at once", resp.Status)
	}
	if b, err := br.ReadByte(); err == nil {
		t.Fatalf("read %q from a tunnel to a refused target; want the connection closed", b)
	}
	<-res.done
	res.mu.Lock()
	got := strings.Join(res.reasons, ",")
	res.mu.Unlock()
	if got != "connect/"+metrics.ReasonRefused {
		t.Errorf("results %q, want connect/%s", got, metrics.ReasonRefused)
	}
	if log := logs.waitFor(t, "reason="); !strings.Contains(log, "reason="+metrics.ReasonRefused) || !strings.Contains(strings.ToLower(log), "connection refused") {
		t.Errorf("the stream's log line does not say the target refused:\n%s", log)
	}
}

// The same over SOCKS5: success at once, then the connection closes, and
// the log says the target refused.
func TestFastOpenSOCKS5RefusedTargetClosesTheClientAndLogsWhy(t *testing.T) {
	target, port := refusedAddr(t)
	p, _ := net.LookupPort("tcp", port)
	agentAddr, res, logs := startFastPair(t, p)

	d, err := proxy.SOCKS5("tcp", agentAddr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatalf("SOCKS5 with fast open: %v; want success at once", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "client hello")
	if n, err := c.Read(make([]byte, 16)); err == nil {
		t.Fatalf("read %d bytes from a tunnel to a refused target; want the connection closed", n)
	}
	<-res.done
	res.mu.Lock()
	got := strings.Join(res.reasons, ",")
	res.mu.Unlock()
	if got != "socks5/"+metrics.ReasonRefused {
		t.Errorf("results %q, want socks5/%s", got, metrics.ReasonRefused)
	}
	if log := logs.waitFor(t, "reason="); !strings.Contains(log, "reason="+metrics.ReasonRefused) {
		t.Errorf("the connection's log line does not say the target refused:\n%s", log)
	}
}

// Fast open carries a connection whose client speaks first end to end.
func TestFastOpenCarriesTheClientsFirstBytes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := net.LookupPort("tcp", port)
	agentAddr, _, _ := startFastPair(t, p)
	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	target := ln.Addr().String()
	io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v, %v", resp, err)
	}
	io.WriteString(c, "echo me")
	b := make([]byte, len("echo me"))
	if _, err := io.ReadFull(br, b); err != nil || string(b) != "echo me" {
		t.Fatalf("echo: %q, %v", b, err)
	}
}
