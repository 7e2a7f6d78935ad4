package ecse2e

import (
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

const idleStop = "exit server idle: stopping" // the exit's log line when it stops by itself

// TestUnusedExitStopsByItself starts an exit that no one uses: it must end,
// with status 0, once exit_when_unused is up.
func TestUnusedExitStopsByItself(t *testing.T) {
	t.Parallel()
	certs := proctest.CertsInit(t)
	started := time.Now()
	exit, _ := proctest.StartExit(t, certs, "--exit-when-idle", "1s", "--exit-when-unused", "2s")
	if code := exit.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("the idle exit ended with status %d, want 0:\n%s", code, exit.Stderr())
	}
	took := time.Since(started)
	logged := logTime(t, exit, idleStop).Sub(logTime(t, exit, proctest.ExitReady))
	t.Logf("an unused exit (exit_when_unused 2s) stopped %v after it was started; it logged the stop %v after it listened",
		took.Round(time.Millisecond), logged.Round(time.Millisecond))
	if took < 2*time.Second || took > 4*time.Second {
		t.Fatalf("the unused exit stopped %v after start, want 2s to 4s", took)
	}
	if !strings.Contains(exit.Stderr(), "exit_when_unused") || !strings.Contains(exit.Stderr(), "exit server stopping") {
		t.Fatalf("the exit did not log why it stopped:\n%s", exit.Stderr())
	}
}

// TestExitStopsOnceItsLastStreamCloses holds a stream open through an exit,
// silent, for well past exit_when_idle: the exit must keep running. Once the
// stream closes, the exit must stop exit_when_idle later.
func TestExitStopsOnceItsLastStreamCloses(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private", "--exit-when-idle", idle.String(), "--exit-when-unused", "30s")
	target := silentTarget(t)
	tunnel := openTunnel(t, certs, exitAddr, target.Addr())
	tunnel.Write([]byte("hello"))

	// A silent stream (think of an idle SSH session) is a stream in use.
	select {
	case <-exit.Done():
		t.Fatalf("the exit stopped with a stream open:\n%s", exit.Stderr())
	case <-time.After(4 * idle):
	}

	closed := time.Now()
	tunnel.Close()
	if code := exit.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("the idle exit ended with status %d, want 0:\n%s", code, exit.Stderr())
	}
	took := time.Since(closed)
	logged := logTime(t, exit, idleStop).Sub(logTime(t, exit, "stream"))
	t.Logf("with exit_when_idle %v the exit ended %v after its last stream was closed by the client; it logged the stop %v after the stream's end",
		idle, took.Round(time.Millisecond), logged.Round(time.Millisecond))
	if took < idle || took > idle+2*time.Second {
		t.Fatalf("the exit ended %v after its last stream closed, want %v to %v", took, idle, idle+2*time.Second)
	}
	if !strings.Contains(exit.Stderr(), "exit_when_idle") {
		t.Fatalf("the exit did not log why it stopped:\n%s", exit.Stderr())
	}
}
