package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a fluidity process started by a test.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdout syncBuffer
	stderr syncBuffer
	done   chan struct{} // closed once the process has been waited for
	err    error         // Wait's result; read after done is closed
}

// childEnv is the environment for child processes: the test's own, without
// FLUIDITY_* variables (which the commands would read as configuration) and
// without proxy variables (which curl would obey).
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if strings.HasPrefix(upper, "FLUIDITY_") || strings.HasSuffix(upper, "_PROXY") || upper == "CURL_HOME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// startProc starts fluidity with args. The process is killed when the test
// ends, and its output is logged if the test failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startProcEnv(t, name, childEnv(), args...)
}

// startProcEnv is startProc with the environment env.
func startProcEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{})}
	p.cmd = exec.Command(fluidityBin, args...)
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s (fluidity %s) stdout:\n%s\n%s stderr:\n%s", name, strings.Join(args, " "), p.stdout.String(), name, p.stderr.String())
		}
	})
	return p
}

// kill ends the process with SIGKILL, if it is still running, and waits for it.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitExit waits up to d for the process to end and returns its exit code.
func (p *proc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("%s still running %v after it was asked to stop", p.name, d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("%s: %v", p.name, p.err)
	}
	return 0
}

// waitLog polls the process's stderr until it holds s at least n times. It
// returns false if the process ends first or timeout passes.
func (p *proc) waitLog(s string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Count(p.stderr.String(), s) >= n {
			return true
		}
		if p.exited() || time.Now().After(deadline) {
			// One last look: the line may have come with the exit.
			return strings.Count(p.stderr.String(), s) >= n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memory reads the resident set size (VmRSS) and its peak (VmHWM), in
// bytes, from /proc.
func (p *proc) memory(t *testing.T) (rss, hwm int64) {
	t.Helper()
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "status"))
	if err != nil {
		t.Fatalf("%s: read memory figures: %v", p.name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || fields[2] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		}
	}
	if rss == 0 || hwm == 0 {
		t.Fatalf("%s: no VmRSS/VmHWM in /proc/%d/status", p.name, p.cmd.Process.Pid)
	}
	return rss, hwm
}

// freeAddr returns a loopback address whose port was free a moment ago.
// Another process may take it before it is used, so callers retry.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// certsInit runs 'fluidity certs init' into a new directory and returns it.
func certsInit(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	cmd := exec.Command(fluidityBin, "certs", "init", "--dir", dir)
	cmd.Env = childEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fluidity certs init: %v\n%s", err, out)
	}
	return dir
}

// startReady starts fluidity with the arguments args gives for a free
// loopback address and waits until the process logs ready; it retries with a
// new address when the port turned out to be taken. It returns the process
// and its address.
func startReady(t *testing.T, name, ready string, args func(addr string) []string) (*proc, string) {
	t.Helper()
	return startReadyEnv(t, name, ready, childEnv(), args)
}

// startReadyEnv is startReady with the environment env.
func startReadyEnv(t *testing.T, name, ready string, env []string, args func(addr string) []string) (*proc, string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		p := startProcEnv(t, name, env, args(addr)...)
		if p.waitLog(ready, 1, 10*time.Second) {
			return p, addr
		}
		p.kill()
		if attempt < 5 && strings.Contains(p.stderr.String(), "address already in use") {
			continue
		}
		t.Fatalf("%s did not log %q:\n%s", name, ready, p.stderr.String())
	}
}

const (
	exitReady  = "exit server listening"
	agentReady = "agent listening"
	linkUp     = "tunnel link up"
)

// exitArgs are the arguments of an exit listening on addr with the
// certificates in certs.
func exitArgs(certs, addr string, extra ...string) []string {
	return append([]string{"server", "--listen", addr, "--certs", certs, "--log-level", "debug"}, extra...)
}

// startExit starts an exit server on a free loopback port.
func startExit(t *testing.T, certs string, extra ...string) (*proc, string) {
	t.Helper()
	return startReady(t, "exit", exitReady, func(addr string) []string {
		return exitArgs(certs, addr, extra...)
	})
}

// startExitAt starts an exit server on addr, which the caller has chosen (an
// agent already points at it), and waits until it listens.
func startExitAt(t *testing.T, certs, addr string, extra ...string) *proc {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p := startProc(t, "exit", exitArgs(certs, addr, extra...)...)
		if p.waitLog(exitReady, 1, 10*time.Second) {
			return p
		}
		p.kill()
		// The port of a killed exit is free again at once; this only
		// guards against a slow release.
		if time.Now().Before(deadline) && strings.Contains(p.stderr.String(), "address already in use") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.Fatalf("exit did not start on %s:\n%s", addr, p.stderr.String())
	}
}

// startAgent starts an agent on a free loopback port, connected to the exit
// at exitAddr, and waits until it listens (not for the link).
func startAgent(t *testing.T, certs, exitAddr string, extra ...string) (*proc, string) {
	t.Helper()
	return startAgentEnv(t, certs, exitAddr, childEnv(), extra...)
}

// startAgentEnv is startAgent with the environment env.
func startAgentEnv(t *testing.T, certs, exitAddr string, env []string, extra ...string) (*proc, string) {
	t.Helper()
	return startReadyEnv(t, "agent", agentReady, env, func(addr string) []string {
		return append([]string{"agent", "--listen", addr, "--server", exitAddr, "--certs", certs, "--log-level", "debug"}, extra...)
	})
}

// waitLinkUp waits until the agent has logged its n-th link to the exit.
func waitLinkUp(t *testing.T, agent *proc, n int) {
	t.Helper()
	if !agent.waitLog(linkUp, n, 15*time.Second) {
		t.Fatalf("the agent's link to the exit did not come up")
	}
}

// tunnelPair is an exit and an agent connected to it.
type tunnelPair struct {
	certs     string
	exit      *proc
	exitAddr  string
	agent     *proc
	agentAddr string
}

// startPair starts an exit with exitExtra as extra flags (--allow-private
// if none are given) and an agent, and waits until the link is up.
func startPair(t *testing.T, exitExtra ...string) *tunnelPair {
	t.Helper()
	if exitExtra == nil {
		exitExtra = []string{"--allow-private"}
	}
	tp := &tunnelPair{certs: certsInit(t)}
	tp.exit, tp.exitAddr = startExit(t, tp.certs, exitExtra...)
	tp.agent, tp.agentAddr = startAgent(t, tp.certs, tp.exitAddr)
	waitLinkUp(t, tp.agent, 1)
	return tp
}

// reportMemory logs the memory figures of the processes and returns the
// peaks.
func reportMemory(t *testing.T, ps ...*proc) map[string]int64 {
	t.Helper()
	peaks := map[string]int64{}
	for _, p := range ps {
		rss, hwm := p.memory(t)
		t.Logf("%s memory: VmRSS %s, VmHWM (peak) %s", p.name, mib(rss), mib(hwm))
		peaks[p.name] = hwm
	}
	return peaks
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// signal sends sig to the process.
func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}
