package e2e

import (
	"syscall"
	"testing"
	"time"
)

// TestExitStopsWithinShutdownTimeout stops an exit with SIGINT while an
// agent holds a keep-alive connection to an origin through it (an open but
// idle stream): the exit must be gone once its shutdown timeout is up.
func TestExitStopsWithinShutdownTimeout(t *testing.T) {
	tp := startPair(t, "--allow-private", "--shutdown-timeout", "1s")
	origin := newOrigin(t)
	mustCurl(t, curlOpts{}, "-x", "http://"+tp.agentAddr, origin.URL+"/hello")
	if n := origin.open.Load(); n != 1 {
		t.Fatalf("origin has %d open connections after one request, want 1 kept alive by the agent", n)
	}
	stopAt := time.Now()
	tp.exit.Signal(t, syscall.SIGINT)
	if code := tp.exit.WaitExit(t, 4*time.Second); code != 0 {
		t.Fatalf("exit exited with status %d after SIGINT, want 0", code)
	}
	t.Logf("exit stopped %v after SIGINT with an idle stream open (shutdown timeout 1s)", time.Since(stopAt).Round(time.Millisecond))
}

// TestExitReleasesTargetsWhenAgentDies kills an agent that holds an idle
// keep-alive connection to an origin: the exit must close its connection to
// the origin rather than keep it until the origin gives up.
func TestExitReleasesTargetsWhenAgentDies(t *testing.T) {
	tp := startPair(t)
	origin := newOrigin(t)
	mustCurl(t, curlOpts{}, "-x", "http://"+tp.agentAddr, origin.URL+"/hello")
	if n := origin.open.Load(); n != 1 {
		t.Fatalf("origin has %d open connections after one request, want 1 kept alive by the agent", n)
	}
	killed := time.Now()
	tp.agent.Kill()
	for origin.open.Load() > 0 {
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("the exit still holds its connection to the origin 5s after the agent died")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("the exit closed its connection to the origin %v after the agent died", time.Since(killed).Round(time.Millisecond))
	if !tp.exit.WaitLog("msg=stream", 1, 5*time.Second) {
		t.Errorf("the exit did not log the stream's end")
	}
}
