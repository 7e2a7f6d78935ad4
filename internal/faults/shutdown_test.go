package faults

import (
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// silentTarget accepts connections and never writes or closes them until
// the test ends: a server that stays silent.
func silentTarget(t *testing.T) *proctest.Target {
	hold := make(chan struct{})
	tg := proctest.NewTarget(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
		<-hold
	})
	t.Cleanup(func() { close(hold) })
	return tg
}

// halfClosedTo opens a tunnel to target through the agent at proxy, over
// CONNECT or SOCKS5, sends a request and half-closes: the client waits for
// an answer that never comes.
func halfClosedTo(t *testing.T, proxy, target string, socks bool) net.Conn {
	t.Helper()
	var (
		c   net.Conn
		err error
	)
	if socks {
		c, err = dialSOCKS5(proxy, target, 10*time.Second)
	} else {
		c, err = dialConnect(proxy, target, 10*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "a request, then nothing more\n"); err != nil {
		t.Fatal(err)
	}
	if tc, ok := c.(*tunnelConn); ok {
		c = tc.Conn
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	return c
}

// Issue 11: shutdown drains for at most the shutdown timeout, then closes
// every stream and exits, even with a stream whose target never answers; a
// second signal exits at once. The same holds for the agent.
func TestShutdownNeverHangsOnASilentTarget(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	target := silentTarget(t)

	t.Run("the exit stops within its shutdown timeout", func(t *testing.T) {
		exit, exitAddr := proctest.StartExit(t, certs, "--allow-private", "--shutdown-timeout", "1s")
		_, agentAddr := proctest.StartAgent(t, certs, exitAddr)
		c := halfClosedTo(t, agentAddr, target.Addr(), false)
		start := time.Now()
		exit.Signal(t, syscall.SIGINT)
		exit.WaitExit(t, 6*time.Second)
		t.Logf("the exit stopped %v after SIGINT", time.Since(start).Round(time.Millisecond))
		// The client sees its tunnel end, and as an abort: the exit cut it.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); isTimeout(err) {
			t.Fatal("the client's tunnel outlived the exit")
		}
	})

	for _, socks := range []bool{false, true} {
		name := "the agent stops within its shutdown timeout (CONNECT)"
		if socks {
			name = "the agent stops within its shutdown timeout (SOCKS5)"
		}
		t.Run(name, func(t *testing.T) {
			_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
			agent, agentAddr := proctest.StartAgent(t, certs, exitAddr, "--shutdown-timeout", "1s")
			halfClosedTo(t, agentAddr, target.Addr(), socks)
			agent.Signal(t, syscall.SIGINT)
			agent.WaitExit(t, 6*time.Second)
		})
	}

	t.Run("a second signal exits at once", func(t *testing.T) {
		for _, which := range []string{"exit", "agent"} {
			exit, exitAddr := proctest.StartExit(t, certs, "--allow-private", "--shutdown-timeout", "1m")
			agent, agentAddr := proctest.StartAgent(t, certs, exitAddr, "--shutdown-timeout", "1m")
			// An open tunnel keeps both draining.
			c, err := dialConnect(agentAddr, target.Addr(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			p := exit
			if which == "agent" {
				p = agent
			}
			p.Signal(t, syscall.SIGINT)
			select {
			case <-p.Done():
				t.Fatalf("%s stopped at the first signal with a tunnel open and a minute to drain", which)
			case <-time.After(500 * time.Millisecond):
			}
			p.Signal(t, syscall.SIGINT)
			select {
			case <-p.Done():
			case <-time.After(3 * time.Second):
				t.Fatalf("%s still running 3s after a second signal", which)
			}
		}
	})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
