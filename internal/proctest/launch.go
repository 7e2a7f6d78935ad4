package proctest

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Lines the processes log, which tests wait for.
const (
	ExitReady  = "exit server listening" // the exit server accepts links
	AgentReady = "agent listening"       // the agent (or 'fluidity up') accepts clients
	LinkUp     = "tunnel link up"        // a link of the agent's pool to the exit is up (see LinkUps)
	LinkLost   = "tunnel link lost"      // a link of the agent's pool to the exit ended
)

// readyWithin is how long a process may take to log that it is ready.
const readyWithin = 10 * time.Second

// A Launcher starts fluidity processes with settings shared by a test
// package. The zero Launcher is valid; the package-level Start functions
// use it.
type Launcher struct {
	// Env is the environment of the processes. If nil, Env() is used.
	Env []string

	// Admin gives every exit and agent an admin listener on a free
	// loopback port (never the default port, which parallel tests would
	// fight over), when the binary has an --admin flag for the command.
	// Proc.Admin and Proc.Goroutines then read it.
	Admin bool

	// ExitFlags are flags every exit gets ahead of a test's own, such as
	// --allow-private.
	ExitFlags []string

	// Path is the program to run. If empty, Binary() is used; a link to
	// it under another name runs it as that name (AWS Lambda runs a
	// binary named bootstrap).
	Path string

	// OpenFiles, if not zero, is the processes' limit on open files, soft
	// and hard (ulimit -n), so that a test can make one run out of file
	// descriptors. The process is started through /bin/sh, which sets the
	// limit and execs it (the process keeps the shell's ID).
	OpenFiles int
}

func (l Launcher) env() []string {
	if l.Env == nil {
		return Env()
	}
	return l.Env
}

// withAdmin puts an admin listener on a free port in front of args, when l
// asks for one and the binary has one for cmd, and returns its address (""
// if none). Otherwise the admin listener is off, so that no test process
// takes the default port from a user's own agent (a test's args may still
// set one).
func (l Launcher) withAdmin(t testing.TB, cmd string, args []string) (string, []string) {
	t.Helper()
	if !HasFlag(cmd, "admin") {
		return "", args
	}
	if !l.Admin {
		return "", append([]string{"--admin", ""}, args...)
	}
	addr := FreeAddr(t)
	return addr, append([]string{"--admin", addr}, args...)
}

// Start starts the fluidity binary with args. The process is killed when the
// test ends, and its output is logged if the test failed.
func (l Launcher) Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	path := l.Path
	if path == "" {
		path = bin
	}
	if l.OpenFiles > 0 {
		// A Go program raises its soft limit to the hard one at start, so
		// both are set.
		args = append([]string{"-c", `ulimit -n "$0" && exec "$@"`, strconv.Itoa(l.OpenFiles), path}, args...)
		path = "/bin/sh"
	}
	return start(t, name, path, l.env(), args)
}

// StartReady starts fluidity with the arguments args gives for a free
// loopback address and waits until the process logs ready; it retries with
// a new address when the port turned out to be taken. It returns the process
// and its address.
func (l Launcher) StartReady(t testing.TB, name, ready string, args func(addr string) []string) (*Proc, string) {
	t.Helper()
	return l.startReady(t, name, ready, "", args)
}

func (l Launcher) startReady(t testing.TB, name, ready, admin string, args func(addr string) []string) (*Proc, string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := FreeAddr(t)
		p := l.Start(t, name, args(addr)...)
		p.admin = admin
		if p.WaitLog(ready, 1, readyWithin) {
			return p, addr
		}
		p.Kill()
		if attempt < 5 && strings.Contains(p.Stderr(), "address already in use") {
			continue
		}
		t.Fatalf("%s did not log %q:\n%s", name, ready, p.Stderr())
	}
}

// ExitArgs are the arguments of an exit listening on addr with the
// certificates in certs, l.ExitFlags and extra.
func (l Launcher) ExitArgs(certs, addr string, extra ...string) []string {
	args := []string{"server", "--listen", addr, "--certs", certs}
	args = append(args, l.ExitFlags...)
	args = append(args, "--log-level", "debug")
	return append(args, extra...)
}

// StartExit starts an exit server on a free loopback port and waits until
// it listens. It returns the process and its address.
func (l Launcher) StartExit(t testing.TB, certs string, extra ...string) (*Proc, string) {
	t.Helper()
	admin, extra := l.withAdmin(t, "server", extra)
	return l.startReady(t, "exit", ExitReady, admin, func(addr string) []string {
		return l.ExitArgs(certs, addr, extra...)
	})
}

// StartExitAt starts an exit server on addr, which the caller has chosen
// (an agent already points at it), and waits until it listens.
func (l Launcher) StartExitAt(t testing.TB, certs, addr string, extra ...string) *Proc {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		admin, extra := l.withAdmin(t, "server", extra)
		p := l.Start(t, "exit", l.ExitArgs(certs, addr, extra...)...)
		p.admin = admin
		if p.WaitLog(ExitReady, 1, readyWithin) {
			return p
		}
		p.Kill()
		// The port of a killed exit is free again at once; this only
		// guards against a slow release.
		if time.Now().Before(deadline) && strings.Contains(p.Stderr(), "address already in use") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.Fatalf("exit did not start on %s:\n%s", addr, p.Stderr())
	}
}

// StartAgent starts an agent on a free loopback port, connected to the exit
// at exitAddr, and waits until it listens (not for the link). It returns the
// process and its address.
func (l Launcher) StartAgent(t testing.TB, certs, exitAddr string, extra ...string) (*Proc, string) {
	t.Helper()
	admin, extra := l.withAdmin(t, "agent", extra)
	return l.startReady(t, "agent", AgentReady, admin, func(addr string) []string {
		return append([]string{"agent", "--listen", addr, "--server", exitAddr, "--certs", certs, "--log-level", "debug"}, extra...)
	})
}

// StartReady is Launcher.StartReady with the zero Launcher.
func StartReady(t testing.TB, name, ready string, args func(addr string) []string) (*Proc, string) {
	t.Helper()
	return Launcher{}.StartReady(t, name, ready, args)
}

// StartExit is Launcher.StartExit with the zero Launcher.
func StartExit(t testing.TB, certs string, extra ...string) (*Proc, string) {
	t.Helper()
	return Launcher{}.StartExit(t, certs, extra...)
}

// StartExitAt is Launcher.StartExitAt with the zero Launcher.
func StartExitAt(t testing.TB, certs, addr string, extra ...string) *Proc {
	t.Helper()
	return Launcher{}.StartExitAt(t, certs, addr, extra...)
}

// StartAgent is Launcher.StartAgent with the zero Launcher.
func StartAgent(t testing.TB, certs, exitAddr string, extra ...string) (*Proc, string) {
	t.Helper()
	return Launcher{}.StartAgent(t, certs, exitAddr, extra...)
}

// WaitLinkUp waits up to timeout until the first link of the agent's pool
// has come up n times: at start, then once per reconnection.
func WaitLinkUp(t testing.TB, agent *Proc, n int, timeout time.Duration) {
	t.Helper()
	if !agent.WaitCount(LinkUps, n, timeout) {
		t.Fatalf("the agent's link to the exit did not come up (link %d) within %v", n, timeout)
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago.
// Another process may take it before it is used, so callers retry.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// CertsInit runs 'fluidity certs init' into a new temporary directory and
// returns it.
func CertsInit(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	cmd := exec.Command(bin, "certs", "init", "--dir", dir)
	cmd.Env = Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fluidity certs init: %v\n%s", err, out)
	}
	return dir
}

// LinkUps counts in an agent's log the times the first link of its pool,
// which finds the exit, came up: once at start and once per reconnection,
// however many links the pool has.
func LinkUps(log string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, LinkUp) && strings.Contains(line, " link=0 ") {
			n++
		}
	}
	return n
}
