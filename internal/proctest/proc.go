package proctest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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

// logLimit is how much of each output stream a Proc keeps: enough for the
// log lines tests wait for, bounded for processes that log without end.
const logLimit = 8 << 20

// syncBuffer is a bytes.Buffer safe for a writer and concurrent readers. It
// keeps the first logLimit bytes and drops the rest.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < logLimit {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A Proc is a fluidity process started by a test.
type Proc struct {
	name   string     // immutable after construction
	args   []string   // immutable after construction
	cmd    *exec.Cmd  // immutable after construction
	admin  string     // admin listener address, "" if none; set before the Proc is returned
	stdout syncBuffer // written by the process
	stderr syncBuffer // written by the process

	done chan struct{} // closed by the waiter once the process has ended
	err  error         // Wait's result; read after done is closed
}

// Start starts the fluidity binary with args and the environment Env. The
// process is killed when the test ends, and its output is logged if the
// test failed.
func Start(t testing.TB, name string, args ...string) *Proc {
	t.Helper()
	return Launcher{}.Start(t, name, args...)
}

func start(t testing.TB, name, path string, env []string, args []string) *Proc {
	t.Helper()
	p := &Proc{name: name, args: args, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go p.wait()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("%s (fluidity %s) stdout:\n%s\n%s stderr:\n%s", name, strings.Join(args, " "), tail(p.Stdout()), name, tail(p.Stderr()))
		}
	})
	return p
}

// wait waits for the process and closes done.
func (p *Proc) wait() {
	p.err = p.cmd.Wait()
	close(p.done)
}

// tail is the last 64 KiB of s, enough of a log to see why a test failed.
func tail(s string) string {
	if len(s) > 64<<10 {
		return "…" + s[len(s)-64<<10:]
	}
	return s
}

// Name is the name the test gave the process.
func (p *Proc) Name() string { return p.name }

// Args are the arguments the process was started with.
func (p *Proc) Args() []string { return p.args }

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Admin is the address of the process's admin listener, or "" if it was
// started without one.
func (p *Proc) Admin() string { return p.admin }

// Stdout is what the process has written to stdout so far (up to 8 MiB).
func (p *Proc) Stdout() string { return p.stdout.String() }

// Stderr is what the process has logged so far (up to 8 MiB).
func (p *Proc) Stderr() string { return p.stderr.String() }

// Kill ends the process with SIGKILL, if it is still running, and waits for
// it.
func (p *Proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
}

// Done is closed when the process has ended.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the process's exit status once it has ended (-1 for a
// signal), and -1 while it runs.
func (p *Proc) ExitCode() int {
	if !p.Exited() {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Signal sends sig to the process.
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %s: %v", p.name, err)
	}
}

// WaitExit waits up to d for the process to end and returns its exit code.
func (p *Proc) WaitExit(t testing.TB, d time.Duration) int {
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

// LogCount is how many times s occurs in the process's stderr.
func (p *Proc) LogCount(s string) int { return strings.Count(p.stderr.String(), s) }

// WaitLog polls the process's stderr until it holds s at least n times. It
// returns false if the process ends first or timeout passes.
func (p *Proc) WaitLog(s string, n int, timeout time.Duration) bool {
	return p.WaitCount(func(log string) int { return strings.Count(log, s) }, n, timeout)
}

// WaitCount is WaitLog for what count finds in the log (such as LinkUps).
func (p *Proc) WaitCount(count func(log string) int, n int, timeout time.Duration) bool {
	return waitCount(p.stderr.String, count, n, timeout, p.Exited)
}

// WaitStdout polls the process's stdout until it holds s. It returns false
// if the process ends first or timeout passes. Stdout and stderr are read
// separately, so a line on one says nothing about the other.
func (p *Proc) WaitStdout(s string, timeout time.Duration) bool {
	return waitCount(p.stdout.String, func(out string) int { return strings.Count(out, s) }, 1, timeout, p.Exited)
}

func waitCount(text func() string, count func(string) int, n int, timeout time.Duration, exited func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if count(text()) >= n {
			return true
		}
		if exited() || time.Now().After(deadline) {
			// One last look: the line may have come with the exit.
			return count(text()) >= n
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RSS is the process's resident set size (VmRSS) in bytes, from /proc.
func (p *Proc) RSS(t testing.TB) int64 {
	t.Helper()
	return p.status(t, "VmRSS:")
}

// HWM is the peak of the process's resident set size (VmHWM) in bytes, from
// /proc.
func (p *Proc) HWM(t testing.TB) int64 {
	t.Helper()
	return p.status(t, "VmHWM:")
}

// status reads the figure in kB named key from /proc/PID/status, in bytes.
func (p *Proc) status(t testing.TB, key string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.Pid()), "status"))
	if err != nil {
		t.Fatalf("%s: read memory figures: %v", p.name, err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == key && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	t.Fatalf("%s: no %s in /proc/%d/status", p.name, strings.TrimSuffix(key, ":"), p.Pid())
	return 0
}

// OpenFiles is the number of file descriptors the process holds, from /proc.
func (p *Proc) OpenFiles(t testing.TB) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(p.Pid()), "fd"))
	if err != nil {
		t.Fatalf("%s: list open files: %v", p.name, err)
	}
	return len(ents)
}

// Goroutines reads go_goroutines from the process's admin listener. ok is
// false when the process has no admin listener.
func (p *Proc) Goroutines(t testing.TB) (n int, ok bool) {
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

// MiB formats n bytes in mebibytes, as "12.3 MiB".
func MiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Metric reads one series from the process's admin listener, named with
// its labels as the text format writes them, for example
// fluidity_exit_stream_results_total{reason="ok"}. A series not exposed
// reads as 0. The process must have an admin listener.
func (p *Proc) Metric(t testing.TB, series string) float64 {
	t.Helper()
	if p.admin == "" {
		t.Fatalf("%s has no admin listener to read %s from", p.name, series)
	}
	v, err := scrape(p.admin, series)
	if err != nil {
		if strings.Contains(err.Error(), "not exposed") {
			return 0
		}
		t.Fatalf("%s: %v", p.name, err)
	}
	return v
}
