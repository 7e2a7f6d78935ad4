package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// binaries are built once per test binary, into binDir.
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// build compiles fluidity and benchtool (once) and returns their paths.
func build(tb testing.TB) (fluidity, benchtool string) {
	tb.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "fluidity-bench-")
		if buildErr != nil {
			return
		}
		goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
		if err != nil {
			buildErr = fmt.Errorf("find the go command: %w", err)
			return
		}
		for _, pkg := range []string{"fluidity/cmd/fluidity", "fluidity/internal/bench/benchtool"} {
			out, err := exec.Command(goTool, "build", "-o", binDir, pkg).CombinedOutput()
			if err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
		dir := filepath.Join(binDir, "certs")
		out, err := exec.Command(filepath.Join(binDir, "fluidity"), "certs", "init", "--dir", dir).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("fluidity certs init: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		tb.Fatal(buildErr)
	}
	return filepath.Join(binDir, "fluidity"), filepath.Join(binDir, "benchtool")
}

func certsDir() string { return filepath.Join(binDir, "certs") }

// cleanEnv is the environment without FLUIDITY_* settings, so a
// developer's configuration cannot change what is measured.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLUIDITY_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer collects a process's stderr for the failure message.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 {
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a long-running process of a benchmark: origin, exit or agent.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *syncBuffer
	exited chan struct{} // closed by the waiter when the process ends
	err    error         // set before exited is closed
}

// startProc starts bin and stops it when tb ends. If reply is set, its
// stdout can be read with readJSON; otherwise it is discarded.
func startProc(tb testing.TB, name string, reply bool, bin string, args ...string) *proc {
	tb.Helper()
	return startProcEnv(tb, name, cleanEnv(), reply, bin, args...)
}

// startProcEnv is startProc with the environment env.
func startProcEnv(tb testing.TB, name string, env []string, reply bool, bin string, args ...string) *proc {
	tb.Helper()
	p := &proc{name: name, cmd: exec.Command(bin, args...), stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	if reply {
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			tb.Fatal(err)
		}
		p.stdout = bufio.NewReader(out)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		// Wait closes stdout when the process ends; readJSON then fails,
		// which is the right outcome for a process that died.
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	tb.Cleanup(p.stop)
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process: stdin closed (benchtool), SIGTERM (fluidity),
// then SIGKILL if it has not exited within 15s.
func (p *proc) stop() {
	p.stdin.Close()
	select {
	case <-p.exited:
		return
	case <-time.After(200 * time.Millisecond):
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// readJSON reads the process's next stdout line into v.
func (p *proc) readJSON(tb testing.TB, v any) {
	tb.Helper()
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		line, err := p.stdout.ReadString('\n')
		ch <- result{line, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			tb.Fatalf("%s: reading its output: %v\nstderr:\n%s", p.name, r.err, p.stderr)
		}
		if err := json.Unmarshal([]byte(r.line), v); err != nil {
			tb.Fatalf("%s: output %q: %v", p.name, r.line, err)
		}
	case <-time.After(3 * time.Minute):
		tb.Fatalf("%s: no output after 3m\nstderr:\n%s", p.name, p.stderr)
	}
}

// checkAlive fails tb if the process has exited.
func (p *proc) checkAlive(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.exited:
		tb.Fatalf("%s exited: %v\nstderr:\n%s", p.name, p.err, p.stderr)
	default:
	}
}

// runClient runs a benchtool client to completion and decodes its JSON.
func runClient(tb testing.TB, v any, args ...string) {
	tb.Helper()
	_, tool := build(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tool, args...)
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("benchtool %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		tb.Fatalf("benchtool %s: output %q: %v", strings.Join(args, " "), out, err)
	}
}

// originAddrs mirrors benchtool's OriginAddrs.
type originAddrs struct {
	HTTP   string `json:"http"`
	Source string `json:"source"`
	TLS    string `json:"tls"`
	Hold   string `json:"hold"`
	HTTPS  string `json:"https"`
}

type bulkResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

func (r bulkResult) mibps() float64 { return float64(r.Bytes) / (1 << 20) / r.Seconds }

type latencyResult struct {
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_sec"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
}

// stack is one origin, one exit and one agent, freshly started.
type stack struct {
	origin      originAddrs
	agentAddr   string
	originProc  *proc
	exit, agent *proc
}

// stackOptions change how a stack's exit and agent run.
type stackOptions struct {
	exitArgs  []string // extra flags of the exit
	agentArgs []string // extra flags of the agent
	agentEnv  []string // the agent's environment, if not cleanEnv()
	// relay, if set, is given the exit's address and returns the address
	// the agent is to reach it at (an emulated path in front of it).
	relay func(exit string) string
	// originArgs, if set, gives more flags of the agent, which may name
	// the origin's ports.
	originArgs func(originAddrs) []string
}

// newStack starts an origin, a fluidity server and a fluidity agent, and
// waits until a CONNECT through the agent reaches the origin.
func newStack(tb testing.TB) *stack { return newStackWith(tb, stackOptions{}) }

// newStackWith is newStack with opts.
func newStackWith(tb testing.TB, opts stackOptions) *stack {
	tb.Helper()
	fluidity, tool := build(tb)
	s := &stack{}
	s.originProc = startProc(tb, "origin", true, tool, "origin")
	s.originProc.readJSON(tb, &s.origin)

	exitAddr := freeAddr(tb)
	s.exit = startProc(tb, "fluidity server", false, fluidity, append([]string{"server",
		"--listen", exitAddr, "--certs", certsDir(), "--allow-private",
		"--log-level", "warn", "--shutdown-timeout", "1s"}, opts.exitArgs...)...)
	waitListening(tb, s.exit, exitAddr)

	linkAddr := exitAddr
	if opts.relay != nil {
		linkAddr = opts.relay(exitAddr)
	}
	s.agentAddr, s.agent = s.startAgent(tb, opts, linkAddr)
	return s
}

// startAgent starts one more agent of the stack, reaching the exit at
// linkAddr, and waits until a CONNECT through it reaches the origin.
func (s *stack) startAgent(tb testing.TB, opts stackOptions, linkAddr string) (string, *proc) {
	tb.Helper()
	fluidity, _ := build(tb)
	addr := freeAddr(tb)
	env := opts.agentEnv
	if env == nil {
		env = cleanEnv()
	}
	agentArgs := opts.agentArgs
	if opts.originArgs != nil {
		agentArgs = append(slices.Clone(agentArgs), opts.originArgs(s.origin)...)
	}
	agent := startProcEnv(tb, "fluidity agent", env, false, fluidity, append([]string{"agent",
		"--listen", addr, "--server", linkAddr, "--certs", certsDir(),
		"--log-level", "warn", "--shutdown-timeout", "1s"}, agentArgs...)...)
	waitListening(tb, agent, addr)
	s.warmUp(tb, addr, agent)
	return addr, agent
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitListening(tb testing.TB, p *proc, addr string) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		p.checkAlive(tb)
		if time.Now().After(deadline) {
			tb.Fatalf("%s is not listening on %s after 20s: %v\nstderr:\n%s", p.name, addr, err, p.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// warmUp proves the path: CONNECT through the agent at addr, GET /small.
func (s *stack) warmUp(tb testing.TB, addr string, agent *proc) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := s.connectGet(addr)
		if err == nil {
			return
		}
		s.exit.checkAlive(tb)
		agent.checkAlive(tb)
		if time.Now().After(deadline) {
			tb.Fatalf("no CONNECT through the agent after 20s: %v\nagent:\n%s\nexit:\n%s", err, agent.stderr, s.exit.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *stack) connectGet(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", s.origin.HTTP, s.origin.HTTP)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CONNECT: %s", resp.Status)
	}
	fmt.Fprintf(c, "GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", s.origin.HTTP)
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /small: %s", resp.Status)
	}
	return nil
}

// cpuSeconds is the user plus system CPU time a process has used.
func cpuSeconds(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	rest := string(b[bytes.LastIndexByte(b, ')')+2:])
	f := strings.Fields(rest)
	utime, err1 := strconv.ParseFloat(f[14-3], 64)
	stime, err2 := strconv.ParseFloat(f[15-3], 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return (utime + stime) / clockTicks
}

// rssKB is a process's resident set size (VmRSS) in KiB.
func rssKB(tb testing.TB, pid int) float64 {
	tb.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				tb.Fatalf("/proc/%d/status: VmRSS %q", pid, v)
			}
			return kb
		}
	}
	tb.Fatalf("/proc/%d/status: no VmRSS", pid)
	return 0
}

// verdict says how a figure compares with its target.
func verdict(met bool) string {
	if met {
		return "met"
	}
	return "MISSED"
}
