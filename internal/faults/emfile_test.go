package faults

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// adminClient reads a process's admin endpoints over one kept-alive
// connection, opened while the process still has file descriptors to
// spare, so /readyz can be read while it has none.
type adminClient struct {
	addr string
	c    *http.Client
}

func newAdminClient(t *testing.T, addr string) *adminClient {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, IdleConnTimeout: time.Minute}
	t.Cleanup(tr.CloseIdleConnections)
	a := &adminClient{addr: addr, c: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
	if code, body := a.readyz(t); code != http.StatusOK {
		t.Fatalf("/readyz answered %d %q before the test began", code, body)
	}
	return a
}

func (a *adminClient) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := a.c.Get("http://" + a.addr + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// waitReadyz polls /readyz until it answers code with a body holding want,
// and fails after timeout.
func (a *adminClient) waitReadyz(t *testing.T, code int, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, body := a.readyz(t)
		if got == code && strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz answered %d %q; want %d with %q within %v", got, body, code, want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// burst opens n TCP connections to addr that send nothing, and returns a
// func that closes them.
func burst(t *testing.T, addr string, n int) (closeAll func()) {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	closeAll = func() {
		for _, c := range conns {
			c.Close()
		}
		conns = nil
	}
	t.Cleanup(closeAll)
	for range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d of the burst: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	return closeAll
}

// TestAcceptRidesOutRunningOutOfFiles runs the exit and the agent with a
// limit of 40 open files and sends each a burst of 100 connections that say
// nothing. Each must run out of file descriptors, keep running, report not
// ready with the reason while accepting fails, log the run of failures once
// with a count, and take new connections again by itself once the burst is
// gone.
func TestAcceptRidesOutRunningOutOfFiles(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	origin := newOrigin(t)
	originAddr := strings.TrimPrefix(origin.URL, "http://")
	limited := procs
	limited.OpenFiles = 40
	const conns = 100
	const failing = "too many open files"

	t.Run("the exit", func(t *testing.T) {
		t.Parallel()
		exit, exitAddr := limited.StartExit(t, certs, "--handshake-timeout", "1m")
		admin := newAdminClient(t, exit.Admin())
		closeAll := burst(t, exitAddr, conns)
		body := admin.waitReadyz(t, http.StatusServiceUnavailable, failing, 5*time.Second)
		t.Logf("while out of files: /readyz: %s", strings.TrimSpace(body))
		if !strings.Contains(body, "accepting connections on "+exitAddr) {
			t.Errorf("/readyz does not say that accepting on %s fails: %q", exitAddr, body)
		}
		closeAll()
		admin.waitReadyz(t, http.StatusOK, "ready", 5*time.Second)
		if exit.Exited() {
			t.Fatalf("the exit ended:\n%s", exit.Stderr())
		}

		// A new client connection is accepted and served.
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, exitTLS(t, certs, false, "http/1.1"))
		if err != nil {
			t.Fatalf("a new connection after the burst: %v", err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nGET /hello HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", originAddr, originAddr, originAddr)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT after the burst: %v %v", resp, err)
		}
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET through the tunnel after the burst: %v", err)
		}
		got, _ := io.ReadAll(resp.Body)
		if string(got) != "hello\n" {
			t.Fatalf("GET through the tunnel after the burst: %q", got)
		}
		checkRunLogged(t, exit)
	})

	t.Run("the agent", func(t *testing.T) {
		t.Parallel()
		_, exitAddr := procs.StartExit(t, certs)
		agent, proxy := limited.StartAgent(t, certs, exitAddr, "--header-timeout", "1m")
		proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
		admin := newAdminClient(t, agent.Admin())
		closeAll := burst(t, proxy, conns)
		body := admin.waitReadyz(t, http.StatusServiceUnavailable, failing, 5*time.Second)
		t.Logf("while out of files: /readyz: %s", strings.TrimSpace(body))
		closeAll()
		admin.waitReadyz(t, http.StatusOK, "ready", 5*time.Second)
		if agent.Exited() {
			t.Fatalf("the agent ended:\n%s", agent.Stderr())
		}
		c, err := dialConnect(proxy, originAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("a new client after the burst: %v", err)
		}
		c.Close()
		checkRunLogged(t, agent)
	})
}

// checkRunLogged checks that p logged the run of accept failures once when
// it began and once, with the count, when it ended.
func checkRunLogged(t *testing.T, p *proctest.Proc) {
	t.Helper()
	if !p.WaitLog("accepting again after a run of accept failures", 1, 10*time.Second) {
		t.Fatalf("%s did not log the end of the run of accept failures:\n%s", p.Name(), p.Stderr())
	}
	if n := p.LogCount("accepting connections fails"); n != 1 {
		t.Errorf("%s logged the start of a run of accept failures %d times; want once", p.Name(), n)
	}
	line := lastLine(p, "accepting again after")
	t.Logf("%s: %s", p.Name(), line)
	if !strings.Contains(line, "failures=") {
		t.Errorf("the end of the run does not say how many attempts failed: %s", line)
	}
}
