package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// The test binary doubles as the supervised program: SUPERVISOR_TEST_CHILD
// says how it behaves.
func TestMain(m *testing.M) {
	if mode := os.Getenv("SUPERVISOR_TEST_CHILD"); mode != "" {
		child(mode)
		return
	}
	goleak.VerifyTestMain(m)
}

func child(mode string) {
	switch mode {
	case "crash":
		fmt.Println("child run")
		fmt.Fprint(os.Stderr, "a partial line without newline")
		os.Exit(3)
	case "clean":
		fmt.Println("child done")
		os.Exit(0)
	case "serve", "stubborn":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		fmt.Printf("serving pid=%d\n", os.Getpid())
		for range sig {
			if mode == "serve" {
				fmt.Println("stopping on SIGTERM")
				os.Exit(0)
			}
			fmt.Println("ignoring SIGTERM")
		}
	case "supervise":
		// A supervisor of a serving child, to be killed by the test.
		Run(context.Background(), Config{Path: os.Args[0], Env: childEnv("serve"), Output: os.Stdout})
	}
	os.Exit(9)
}

func childEnv(mode string) []string {
	return append(os.Environ(), "SUPERVISOR_TEST_CHILD="+mode)
}

// output is a Config.Output that tests can wait on.
type output struct {
	mu      sync.Mutex
	text    strings.Builder // guarded by mu
	writes  []string        // guarded by mu
	changed chan struct{}   // closed and replaced on each write; guarded by mu
}

func newOutput() *output { return &output{changed: make(chan struct{})} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.text.Write(p)
	o.writes = append(o.writes, string(p))
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.text.String()
}

// waitFor waits until s has been written n times.
func (o *output) waitFor(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		o.mu.Lock()
		got, changed := strings.Count(o.text.String(), s), o.changed
		o.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("%q written %d times, want %d; output:\n%s", s, got, n, o.String())
		}
	}
}

// states collects what OnChange is told.
type states struct {
	mu   sync.Mutex
	list []State // guarded by mu
}

func (s *states) add(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, st)
}

func (s *states) last() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list[len(s.list)-1]
}

func TestACrashingProgramIsRestartedAndItsOutputKept(t *testing.T) {
	out, st := newOutput(), &states{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Path: os.Args[0], Env: childEnv("crash"), Output: out,
			MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, OnChange: st.add})
	}()
	out.waitFor(t, "child run\n", 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after its context ended, want nil", err)
	}
	// The state after the second crash, which came before the third run
	// (the third may have been stopped since).
	st.mu.Lock()
	var second State
	for _, s := range st.list {
		if s.Restarts == 2 && !s.NextStart.IsZero() {
			second = s
		}
	}
	st.mu.Unlock()
	if second.LastExit != "exit status 3" || second.PID != 0 {
		t.Errorf("state after the second crash = %+v, want 2 restarts, exit status 3 and a next start", second)
	}
	// Every write is whole lines; a partial last line gets its newline.
	out.mu.Lock()
	defer out.mu.Unlock()
	for _, w := range out.writes {
		if !strings.HasSuffix(w, "\n") {
			t.Errorf("a write to the log is not whole lines: %q", w)
		}
	}
	if !strings.Contains(out.text.String(), "a partial line without newline\n") {
		t.Errorf("the program's stderr is not in the log:\n%s", out.text.String())
	}
}

func TestAProgramThatExitsCleanlyIsNotRestarted(t *testing.T) {
	out, st := newOutput(), &states{}
	if err := Run(context.Background(), Config{Path: os.Args[0], Env: childEnv("clean"), Output: out, OnChange: st.add}); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if n := strings.Count(out.String(), "child done"); n != 1 {
		t.Errorf("the program ran %d times, want once", n)
	}
	if last := st.last(); last.Restarts != 0 || last.LastExit != "exit status 0" || last.PID != 0 {
		t.Errorf("state = %+v, want no restarts, exit status 0 and no PID", last)
	}
}

func TestAProgramThatCannotStartIsAnError(t *testing.T) {
	err := Run(context.Background(), Config{Path: os.Args[0] + "-missing"})
	if err == nil || !strings.Contains(err.Error(), "-missing") {
		t.Fatalf("Run of a missing program = %v, want an error naming it", err)
	}
}

func TestStoppingEndsTheProgram(t *testing.T) {
	out, st := newOutput(), &states{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Path: os.Args[0], Env: childEnv("serve"), Output: out, OnChange: st.add, StopTimeout: 10 * time.Second})
	}()
	out.waitFor(t, "serving pid=", 1)
	if st.last().PID == 0 {
		t.Error("the running program's PID is not in the state")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if runtime.GOOS != "windows" && !strings.Contains(out.String(), "stopping on SIGTERM") {
		t.Errorf("the program was not asked to stop with SIGTERM:\n%s", out.String())
	}
	if last := st.last(); last.PID != 0 || last.Restarts != 0 {
		t.Errorf("state after stop = %+v, want no PID and no restart", last)
	}
}

func TestAProgramThatIgnoresTheStopIsKilled(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("on Windows the program is ended at once; there is no signal to ignore")
	}
	out := newOutput()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Path: os.Args[0], Env: childEnv("stubborn"), Output: out, StopTimeout: 100 * time.Millisecond})
	}()
	out.waitFor(t, "serving pid=", 1)
	cancel()
	out.waitFor(t, "ignoring SIGTERM", 1)
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
}

func TestTheProgramEndsWhenTheSupervisorIsKilled(t *testing.T) {
	if runtime.GOOS != "linux" && runtime.GOOS != "windows" {
		t.Skip("only Linux (a parent-death signal) and Windows (a job object) tie the program to a killed supervisor; launchd ends the process group")
	}
	sup := exec.Command(os.Args[0])
	sup.Env = childEnv("supervise")
	stdout, err := sup.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		sup.Process.Kill()
		sup.Wait()
		t.Fatalf("the supervised program printed nothing: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "serving pid=")))
	if err != nil {
		t.Fatalf("supervised program printed %q", line)
	}
	sup.Process.Kill()
	sup.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the supervised program (pid %d) still runs 10s after its supervisor was killed", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPausesGrowForCrashesInARowAndStartAgainAfterAStableRun(t *testing.T) {
	cfg := Config{MinBackoff: time.Second, MaxBackoff: 5 * time.Second, StableAfter: time.Minute}
	var got []time.Duration
	d := time.Duration(0)
	for _, ranFor := range []time.Duration{0, time.Second, time.Second, time.Second, time.Second, 2 * time.Minute, time.Second} {
		d = nextDelay(d, ranFor, cfg)
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second, time.Second, 2 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pauses = %v, want %v", got, want)
	}
}
