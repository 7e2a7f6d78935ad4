package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers. It
// keeps the first 8 MiB, enough for the log lines the tests wait for.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 8<<20 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a fluidity process started by a test.
type proc struct {
	name   string
	args   []string
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan struct{} // closed once the process has been waited for
	admin  string        // admin listener address, if started with one
}

// startProc starts fluidity with args. The process is killed when the test
// ends, and its output is logged if the test failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, args: args, done: make(chan struct{})}
	p.cmd = exec.Command(fluidityBin, args...)
	p.cmd.Env = childEnv()
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			out := p.stderr.String()
			if len(out) > 64<<10 {
				out = "…" + out[len(out)-64<<10:]
			}
			t.Logf("%s (fluidity %s) stderr:\n%s", name, strings.Join(args, " "), out)
		}
	})
	return p
}

// kill ends the process with SIGKILL, if it is still running, and waits.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// logCount is how many times s occurs in the process's stderr.
func (p *proc) logCount(s string) int { return strings.Count(p.stderr.String(), s) }

// waitLog polls stderr until it holds s at least n times. It returns false
// if the process ends first or timeout passes.
func (p *proc) waitLog(s string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if p.logCount(s) >= n {
			return true
		}
		if p.exited() || time.Now().After(deadline) {
			return p.logCount(s) >= n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rss is the process's resident set size in bytes, from /proc.
func (p *proc) rss(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.pid()), "status"))
	if err != nil {
		t.Fatalf("%s: read memory figures: %v", p.name, err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	t.Fatalf("%s: no VmRSS in /proc/%d/status", p.name, p.pid())
	return 0
}

// openFiles is the number of file descriptors the process holds: one per
// client connection, stream target and link, plus a few of its own.
func (p *proc) openFiles(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(p.pid()), "fd"))
	if err != nil {
		t.Fatalf("%s: list open files: %v", p.name, err)
	}
	return len(ents)
}

// goroutines reads go_goroutines from the process's admin listener. ok is
// false when the process has no admin listener.
func (p *proc) goroutines(t testing.TB) (n int, ok bool) {
	t.Helper()
	if p.admin == "" {
		return 0, false
	}
	v, err := scrape(p.admin, "go_goroutines")
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	return int(v), true
}

// scrape fetches /metrics from the admin listener at addr and returns the
// value of the unlabelled metric name.
func scrape(addr, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}}).Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return metricValue(resp.Body, name)
}

// metricValue finds the sample of the unlabelled metric name in Prometheus
// text exposition format.
func metricValue(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %q: %w", name, line, err)
		}
		return v, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("metric %s not exposed", name)
}

// hasFlag reports whether 'fluidity cmd --help' lists flag.
func hasFlag(t testing.TB, cmd, flag string) bool {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	out, ok := helpText[cmd]
	if !ok {
		c := exec.Command(fluidityBin, cmd, "--help")
		c.Env = childEnv()
		out, _ = c.CombinedOutput()
		helpText[cmd] = out
	}
	return bytes.Contains(out, []byte("\n  -"+flag+" ")) || bytes.Contains(out, []byte("\n  -"+flag+"\n"))
}

var (
	helpMu   sync.Mutex
	helpText = map[string][]byte{} // guarded by helpMu: 'fluidity CMD --help' by CMD
)

// withAdmin puts an admin listener on a free port in front of args, when
// the binary has one for cmd, and returns its address ("" if none).
func withAdmin(t testing.TB, cmd string, args []string) (string, []string) {
	t.Helper()
	if !hasFlag(t, cmd, "admin") {
		return "", args
	}
	addr := freeAddr(t)
	return addr, append([]string{"--admin", addr}, args...)
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
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

const (
	exitReady  = "exit server listening"
	agentReady = "agent listening"
	linkUp     = "tunnel link up"
	linkLost   = "tunnel link lost"
)

// startReady starts fluidity with the arguments args gives for a free
// loopback address and waits until it logs ready, retrying with a new
// address when the port was taken.
func startReady(t *testing.T, name, ready string, args func(addr string) []string) (*proc, string) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		addr := freeAddr(t)
		p := startProc(t, name, args(addr)...)
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

func exitArgs(certs, addr string, extra ...string) []string {
	return append([]string{"server", "--listen", addr, "--certs", certs, "--allow-private", "--log-level", "debug"}, extra...)
}

// startExit starts an exit server on a free loopback port, with an admin
// listener when the binary has one.
func startExit(t *testing.T, certs string, extra ...string) (*proc, string) {
	t.Helper()
	admin, extra := withAdmin(t, "server", extra)
	p, addr := startReady(t, "exit", exitReady, func(addr string) []string { return exitArgs(certs, addr, extra...) })
	p.admin = admin
	return p, addr
}

// startExitAt starts an exit server on addr, which an agent already points
// at, and waits until it listens.
func startExitAt(t *testing.T, certs, addr string, extra ...string) *proc {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		admin, extra := withAdmin(t, "server", extra)
		p := startProc(t, "exit", exitArgs(certs, addr, extra...)...)
		p.admin = admin
		if p.waitLog(exitReady, 1, 10*time.Second) {
			return p
		}
		p.kill()
		if time.Now().Before(deadline) && strings.Contains(p.stderr.String(), "address already in use") {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		t.Fatalf("exit did not start on %s:\n%s", addr, p.stderr.String())
	}
}

// startAgent starts an agent on a free loopback port, connected to the exit
// at exitAddr, and waits until it listens (not for the link). It gets an
// admin listener on a free port when the binary has one (never the default
// port, which parallel tests would fight over).
func startAgent(t *testing.T, certs, exitAddr string, extra ...string) (*proc, string) {
	t.Helper()
	admin, extra := withAdmin(t, "agent", extra)
	p, addr := startReady(t, "agent", agentReady, func(addr string) []string {
		return append([]string{"agent", "--listen", addr, "--server", exitAddr, "--certs", certs, "--log-level", "debug"}, extra...)
	})
	p.admin = admin
	return p, addr
}

// waitLinkUp waits until the agent has logged its n-th link to the exit.
func waitLinkUp(t *testing.T, agent *proc, n int, timeout time.Duration) {
	t.Helper()
	if !agent.waitLog(linkUp, n, timeout) {
		t.Fatalf("the agent's link to the exit did not come up (link %d) within %v", n, timeout)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
