package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// countingWriter counts what is written to it and discards it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// TestExitKilledMidDownload kills the exit with SIGKILL while curl downloads
// through the agent: curl must fail within seconds, not hang, and once the
// exit is back on the same port the agent reconnects by itself.
func TestExitKilledMidDownload(t *testing.T) {
	tp := startPair(t)
	origin := newOrigin(t)
	proxy := "http://" + tp.agentAddr

	// Two downloads of 1 GB at about 13 MB/s, far longer than the test
	// waits: one forwarded by the agent, one tunnelled with CONNECT (-p).
	url := origin.URL + "/stream?n=1000000000&delay=5ms"
	modes := [][]string{{"-x", proxy, url}, {"-p", "-x", proxy, url}}
	got := make([]*countingWriter, len(modes))
	done := make(chan curlResult, len(modes))
	for i, args := range modes {
		got[i] = &countingWriter{}
		go func() { done <- runCurl(t, curlOpts{stdout: got[i]}, args...) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, g := range got {
		for g.n.Load() < 1<<20 {
			if time.Now().After(deadline) {
				t.Fatalf("the downloads did not start (%d bytes after 10s)", g.n.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	killed := time.Now()
	tp.exit.Kill()
	for range modes {
		var res curlResult
		select {
		case res = <-done:
		case <-time.After(10*time.Second - time.Since(killed)):
			t.Fatalf("curl still running 10s after the exit was killed")
		}
		if res.code == 0 {
			t.Fatalf("curl reported success for a download cut short")
		}
		t.Logf("curl failed %v after the exit was killed, with exit %d: %s", time.Since(killed).Round(time.Millisecond), res.code, strings.TrimSpace(res.stderr))
	}

	restarted := time.Now()
	tp.exit = proctest.StartExitAt(t, tp.certs, tp.exitAddr, "--allow-private")
	var last curlResult
	for {
		last = runCurl(t, curlOpts{}, "-x", proxy, "--max-time", "5", origin.URL+"/hello")
		if last.code == 0 && last.stdout == "hello\n" {
			break
		}
		if time.Since(restarted) > 20*time.Second {
			t.Fatalf("no request succeeded within 20s of the exit's restart; last: exit %d %s %s", last.code, last.stderr, last.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("a request through the agent succeeded %v after the exit restarted", time.Since(restarted).Round(time.Millisecond))
}

// TestAgentStartedBeforeExit starts the agent while no exit is listening. A
// request waits for the link and succeeds once the exit starts within the
// link wait; with no exit at all the client gets 503 with the reason once
// the wait is over.
func TestAgentStartedBeforeExit(t *testing.T) {
	origin := newOrigin(t)

	t.Run("a request waits for the exit to start", func(t *testing.T) {
		certs := proctest.CertsInit(t)
		exitAddr := proctest.FreeAddr(t)
		agent, agentAddr := proctest.StartAgent(t, certs, exitAddr, "--link-wait", "20s")
		done := make(chan curlResult, 1)
		start := time.Now()
		go func() {
			done <- runCurl(t, curlOpts{}, "-x", "http://"+agentAddr, origin.URL+"/hello")
		}()
		select {
		case res := <-done:
			t.Fatalf("the request ended before any exit was running: exit %d %s %s", res.code, res.stderr, res.stdout)
		case <-time.After(500 * time.Millisecond):
		}
		proctest.StartExitAt(t, certs, exitAddr, "--allow-private")
		var res curlResult
		select {
		case res = <-done:
		case <-time.After(25 * time.Second):
			t.Fatal("the request still waits 25s after the exit started")
		}
		if res.code != 0 || res.stdout != "hello\n" {
			t.Fatalf("curl exit %d, output %q %s: want the page once the exit is up", res.code, res.stdout, res.stderr)
		}
		t.Logf("the request waited %v and succeeded", time.Since(start).Round(time.Millisecond))
		if !agent.WaitCount(proctest.LinkUps, 1, 0) {
			t.Error("the agent did not log the link coming up")
		}
	})

	t.Run("with no exit the client gets 503 after the link wait", func(t *testing.T) {
		certs := proctest.CertsInit(t)
		_, agentAddr := proctest.StartAgent(t, certs, proctest.FreeAddr(t), "--link-wait", "2s")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		res := runCurlCtx(ctx, t, curlOpts{}, "-x", "http://"+agentAddr, "-i", origin.URL+"/hello")
		if res.code != 0 {
			t.Fatalf("curl exit %d: %s", res.code, res.stderr)
		}
		status := strings.SplitN(res.stdout, "\r\n", 2)[0]
		if !strings.Contains(status, fmt.Sprint(http.StatusServiceUnavailable)) || !strings.Contains(res.stdout, "no link to the exit") {
			t.Fatalf("got %q, want 503 saying there is no link to the exit", res.stdout)
		}
		if res.duration > 3500*time.Millisecond {
			t.Fatalf("503 came after %v, want about the 2s link wait", res.duration)
		}
		t.Logf("503 after %v: %s", res.duration.Round(time.Millisecond), status)
	})
}

// TestCertificatesFromDifferentCAs pairs an agent and an exit whose
// certificates come from different 'certs init' runs: the client's 503 says
// the exit's certificate is from another CA than the agent's ca.crt, and
// the exit logs that the agent rejected its certificate.
func TestCertificatesFromDifferentCAs(t *testing.T) {
	origin := newOrigin(t)
	exit, exitAddr := proctest.StartExit(t, proctest.CertsInit(t), "--allow-private")
	_, agentAddr := proctest.StartAgent(t, proctest.CertsInit(t), exitAddr, "--link-wait", "1s")
	res := mustCurl(t, curlOpts{}, "-x", "http://"+agentAddr, "-i", origin.URL+"/hello")
	if !strings.HasPrefix(res.stdout, "HTTP/1.1 503") || !strings.Contains(res.stdout, "has a certificate from another CA") {
		t.Errorf("got %q, want 503 saying the exit's certificate is from another CA", res.stdout)
	}
	if !exit.WaitLog(`reason="client rejected server certificate"`, 1, 5*time.Second) {
		t.Errorf("the exit did not log that the agent rejected its certificate")
	}
}
