package faults

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// waitMetric waits up to d for the process's series to read want.
func waitMetric(t *testing.T, p *proctest.Proc, series string, want float64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		v := p.Metric(t, series)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v after %v, want %v", series, v, d, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Issue 4: a stream whose target never answers and whose client has gone
// is released: by the stream idle timeout, or at once when the link it
// came on goes; the open-stream and open-link gauges return to zero, so
// the exit's count of streams (which decides when an exit on AWS stops) is
// exact.
func TestLeakedSlotsAreReleased(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	target := silentTarget(t)
	l := proctest.Launcher{Admin: true}

	t.Run("HTTP/2: idle stream after its client half-closed", func(t *testing.T) {
		exit, exitAddr := l.StartExit(t, certs, "--allow-private", "--stream-idle-timeout", "1s")
		_, agentAddr := proctest.StartAgent(t, certs, exitAddr)
		for range 3 {
			c := halfClosedTo(t, agentAddr, target.Addr(), false)
			c.Close()
		}
		waitMetric(t, exit, "fluidity_exit_streams_open", 3, 5*time.Second)
		waitMetric(t, exit, "fluidity_exit_streams_open", 0, 5*time.Second)
		if n := exit.Metric(t, `fluidity_exit_stream_results_total{reason="timeout"}`); n != 3 {
			t.Errorf("%v streams ended with reason timeout, want 3", n)
		}
	})

	t.Run("HTTP/2: the agent is killed", func(t *testing.T) {
		exit, exitAddr := l.StartExit(t, certs, "--allow-private")
		agent, agentAddr := proctest.StartAgent(t, certs, exitAddr)
		halfClosedTo(t, agentAddr, target.Addr(), false)
		halfClosedTo(t, agentAddr, target.Addr(), true)
		waitMetric(t, exit, "fluidity_exit_streams_open", 2, 5*time.Second)
		agent.Kill()
		waitMetric(t, exit, "fluidity_exit_streams_open", 0, 5*time.Second)
		waitMetric(t, exit, "fluidity_exit_links_open", 0, 5*time.Second)
	})

	t.Run("HTTP/1.1: idle tunnel after its client left", func(t *testing.T) {
		exit, exitAddr := l.StartExit(t, certs, "--allow-private", "--stream-idle-timeout", "1s")
		for range 3 {
			leaveH1(t, exitAddr, certs, target.Addr())
		}
		waitMetric(t, exit, "fluidity_exit_links_open", 0, 5*time.Second)
		waitMetric(t, exit, "fluidity_exit_streams_open", 0, 5*time.Second)
	})

	t.Run("links freed this way let the next client in", func(t *testing.T) {
		_, exitAddr := l.StartExit(t, certs, "--allow-private", "--stream-idle-timeout", "500ms", "--max-links", "2")
		for range 2 {
			leaveH1(t, exitAddr, certs, target.Addr())
		}
		echo := newEcho(t)
		deadline := time.Now().Add(5 * time.Second)
		for {
			err := echoH1(t, exitAddr, certs, echo.Addr())
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("no client got in after the leaked tunnels timed out: %v", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// connectH1 opens an HTTP/1.1 CONNECT tunnel to target straight through
// the exit, as curl --proxy https://… does.
func connectH1(t *testing.T, exitAddr, certs, target string) (*tls.Conn, error) {
	tc, err := tls.Dial("tcp", exitAddr, exitTLS(t, certs, false, "http/1.1"))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(tc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(tc), &http.Request{Method: http.MethodConnect})
	tc.SetReadDeadline(time.Time{})
	if err != nil {
		tc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		tc.Close()
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	return tc, nil
}

// leaveH1 opens an HTTP/1.1 tunnel, sends a request and leaves.
func leaveH1(t *testing.T, exitAddr, certs, target string) {
	t.Helper()
	tc, err := connectH1(t, exitAddr, certs, target)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "a request, then the client goes\n")
	tc.CloseWrite()
	tc.NetConn().Close()
}

// echoH1 makes one round trip to an echo target over HTTP/1.1 CONNECT.
func echoH1(t *testing.T, exitAddr, certs, echo string) error {
	tc, err := connectH1(t, exitAddr, certs, echo)
	if err != nil {
		return err
	}
	defer tc.Close()
	return echoRoundTrip(tc, "in\n", 3*time.Second)
}
