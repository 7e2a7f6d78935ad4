package faults

import (
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// Issue 12: each result reason in the logs and metrics names its cause,
// and this test pins each to the case that causes it, on the exit and on
// the agent: a tunnel that ends normally is ok (even when half-closing
// towards a client that has gone fails), a reset is reset, an idle stream
// and a dial that does not finish are timeout, a closed port is refused,
// the egress policy is policy, and a SOCKS5 client that leaves before its
// reply is canceled, not a failed dial.
func TestResultReasonsNameTheirCause(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	l := proctest.Launcher{Admin: true}
	denied := proctest.NewTarget(t, func(c net.Conn) {})
	_, deniedPort, _ := net.SplitHostPort(denied.Addr())
	exit, exitAddr := l.StartExit(t, certs, "--allow-private", "--stream-idle-timeout", "1s",
		"--dial-timeout", "1s", "--egress-deny-ports", deniedPort)
	agent, agentAddr := l.StartAgent(t, certs, exitAddr)

	exitReason := func(r string) string { return `fluidity_exit_stream_results_total{reason="` + r + `"}` }
	agentReason := func(front, r string) string {
		return `fluidity_agent_stream_results_total{frontend="` + front + `",reason="` + r + `"}`
	}
	expect := func(t *testing.T, exitWant, agentWant string) {
		t.Helper()
		if exitWant != "" {
			waitMetric(t, exit, exitReason(exitWant), 1, 5*time.Second)
		}
		waitMetric(t, agent, agentReason("connect", agentWant), 1, 5*time.Second)
	}

	t.Run("a finished exchange is ok, though the client went first", func(t *testing.T) {
		// An HTTPS-like exchange: the client reads its answer and closes;
		// the target then sends a last record (TLS close_notify) and
		// closes. The client's host resets that record, so the agent's
		// half-close towards it fails: still a normal end.
		clientGone := make(chan struct{})
		target := proctest.NewTarget(t, func(c net.Conn) {
			buf := make([]byte, 7)
			io.ReadFull(c, buf)
			io.WriteString(c, "answer")
			<-clientGone
			io.WriteString(c, "close_notify")
			c.Close()
		})
		c, err := dialConnect(agentAddr, target.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "request")
		io.ReadFull(c, make([]byte, len("answer")))
		c.Close()
		close(clientGone)
		expect(t, "ok", "ok")
	})
	t.Run("a target's reset is reset", func(t *testing.T) {
		target := resetAfter(t, 64<<10, false)
		c, err := dialConnect(agentAddr, target.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "send\n")
		readEnd(c, 5*time.Second)
		expect(t, "reset", "reset")
	})
	t.Run("an idle stream is timeout", func(t *testing.T) {
		target := silentTarget(t)
		c, err := dialConnect(agentAddr, target.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "anyone there?\n")
		// The exit resets the stream it timed out; the agent passes the
		// abort on to the client.
		wantReset(t, "the client of an idle stream", readEnd(c, 10*time.Second))
		waitMetric(t, exit, exitReason("timeout"), 1, 5*time.Second)
		waitMetric(t, agent, agentReason("connect", "reset"), 2, 5*time.Second)
	})
	t.Run("a dial that does not finish is timeout", func(t *testing.T) {
		if _, err := dialConnect(agentAddr, synHole(t), 10*time.Second); err == nil {
			t.Fatal("a CONNECT to a port that never answers succeeded")
		}
		waitMetric(t, exit, exitReason("timeout"), 2, 5*time.Second)
		waitMetric(t, agent, agentReason("connect", "timeout"), 1, 5*time.Second)
	})
	t.Run("a closed port is refused", func(t *testing.T) {
		closed := proctest.FreeAddr(t)
		if _, err := dialConnect(agentAddr, closed, 5*time.Second); err == nil {
			t.Fatal("a CONNECT to a closed port succeeded")
		}
		expect(t, "refused", "refused")
	})
	t.Run("the egress policy is policy", func(t *testing.T) {
		if _, err := dialConnect(agentAddr, denied.Addr(), 5*time.Second); err == nil {
			t.Fatal("a CONNECT to a denied port succeeded")
		}
		expect(t, "policy", "policy")
	})
	if n := exit.Metric(t, exitReason("dial_failed")) + agent.Metric(t, agentReason("connect", "dial_failed")); n != 0 {
		t.Errorf("%v streams counted dial_failed, whose causes were all something else", n)
	}

	t.Run("a SOCKS5 client that leaves before its reply is canceled", func(t *testing.T) {
		// The agent holds the request while its exit is not there yet; the
		// client gives up meanwhile; then the exit comes and the dial
		// succeeds, but the client is gone.
		addr := proctest.FreeAddr(t)
		agent, agentAddr := l.StartAgent(t, certs, addr)
		echo := newEcho(t)
		c, err := net.Dial("tcp", agentAddr)
		if err != nil {
			t.Fatal(err)
		}
		host, portStr, _ := net.SplitHostPort(echo.Addr())
		port, _ := strconv.Atoi(portStr)
		req := append([]byte{5, 1, 0, 5, 1, 0, 1}, net.ParseIP(host).To4()...)
		c.Write(binary.BigEndian.AppendUint16(req, uint16(port)))
		io.ReadFull(c, make([]byte, 2)) // the method choice: the request is in
		reset(c)
		l.StartExitAt(t, certs, addr, "--allow-private")
		waitMetric(t, agent, agentReason("socks5", "canceled"), 1, 10*time.Second)
		if n := agent.Metric(t, agentReason("socks5", "dial_failed")); n != 0 {
			t.Errorf("%v SOCKS5 connections counted dial_failed", n)
		}
	})
}
