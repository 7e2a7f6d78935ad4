package acceptloop

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scripted is a listener whose Accept returns what the test sends it.
type scripted struct {
	results chan error // nil: a connection; else that error
	closed  chan struct{}
	once    sync.Once
	calls   []time.Time // guarded by mu
	mu      sync.Mutex
}

func newScripted() *scripted {
	return &scripted{results: make(chan error), closed: make(chan struct{})}
}

func (s *scripted) Accept() (net.Conn, error) {
	s.mu.Lock()
	s.calls = append(s.calls, time.Now())
	s.mu.Unlock()
	select {
	case err := <-s.results:
		if err != nil {
			return nil, err
		}
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

func (s *scripted) Close() error   { s.once.Do(func() { close(s.closed) }); return nil }
func (s *scripted) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443} }

// emfile is the error accept(2) gives a process out of file descriptors.
var emfile = &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestAcceptRidesOutRunningOutOfFileDescriptors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted()
		logs := &syncBuffer{}
		l := New(s, slog.New(slog.NewTextHandler(logs, nil)))
		type result struct {
			c   net.Conn
			err error
		}
		accepted := make(chan result, 1)
		go func() {
			c, err := l.Accept()
			accepted <- result{c, err}
		}()

		const failures = 12
		for range failures {
			s.results <- emfile
			synctest.Wait()
			if err := l.Err(); err == nil || !errors.Is(err, syscall.EMFILE) || !strings.Contains(err.Error(), "127.0.0.1:8443") {
				t.Fatalf("while accepting fails, Err = %v; want one naming the address and EMFILE", err)
			}
		}
		s.results <- nil
		r := <-accepted
		if r.err != nil {
			t.Fatalf("Accept = %v after the failures; want the connection that came", r.err)
		}
		r.c.Close()
		if err := l.Err(); err != nil {
			t.Fatalf("after a success, Err = %v; want nil", err)
		}

		// The pauses between attempts: 5 ms doubling to 1 s.
		s.mu.Lock()
		calls := s.calls
		s.mu.Unlock()
		var got []time.Duration
		for i := 1; i < len(calls); i++ {
			got = append(got, calls[i].Sub(calls[i-1]))
		}
		want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pauses between attempts %v; want %v", got, want)
		}

		if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "too many open files") {
			t.Fatalf("after %d failures the log holds %d warnings; want the one that started the run, with the error:\n%s", failures, n, logs)
		}
		time.Sleep(quiet)
		synctest.Wait()
		if !strings.Contains(logs.String(), "failures=12") {
			t.Fatalf("no line with the count once accepting worked again:\n%s", logs)
		}
		l.Close()
	})
}

// A process out of file descriptors fails accept(2) before the kernel
// looks for a connection, so the last failure of a run may come when none
// is waiting: the retry then waits for one, and the listener must not be
// reported failing while it does (a readiness probe would say "not ready"
// until the next client happened to come).
func TestARetryWaitingForAConnectionIsNotFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted()
		logs := &syncBuffer{}
		l := New(s, slog.New(slog.NewTextHandler(logs, nil)))
		accepted := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if c != nil {
				c.Close()
			}
			accepted <- err
		}()
		s.results <- emfile
		synctest.Wait()
		if l.Err() == nil {
			t.Fatal("Err is nil during the pause after a failure")
		}
		time.Sleep(minDelay) // the pause ends; the retry waits for a connection
		synctest.Wait()
		if err := l.Err(); err != nil {
			t.Fatalf("while the retry waits for a connection, Err = %v; want nil", err)
		}
		if strings.Contains(logs.String(), "accepting again") {
			t.Fatalf("the run was logged as over before any accept worked:\n%s", logs)
		}
		s.results <- nil
		if err := <-accepted; err != nil {
			t.Fatalf("Accept = %v; want the connection that came", err)
		}
		time.Sleep(quiet)
		synctest.Wait()
		if !strings.Contains(logs.String(), "failures=1") {
			t.Fatalf("no line with the count once accepting worked again:\n%s", logs)
		}
		l.Close()
	})
}

func TestFailuresBetweenSuccessesAreOneRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted()
		logs := &syncBuffer{}
		l := New(s, slog.New(slog.NewTextHandler(logs, nil)))
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		for range 50 {
			s.results <- emfile
			s.results <- nil
		}
		synctest.Wait()
		if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
			t.Fatalf("50 failures between successes logged %d lines; want 1 until the run ends:\n%s", n, logs)
		}
		time.Sleep(quiet)
		synctest.Wait()
		if !strings.Contains(logs.String(), "failures=50") || strings.Count(logs.String(), "level=WARN") != 2 {
			t.Fatalf("the end of the run was not logged once with its count:\n%s", logs)
		}
		l.Close()
	})
}

func TestCloseEndsAPause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newScripted()
		l := New(s, nil)
		done := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			done <- err
		}()
		for range 10 {
			s.results <- emfile // the pause is now 1 s
		}
		start := time.Now()
		synctest.Wait()
		l.Close()
		if err := <-done; !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept = %v after Close; want net.ErrClosed", err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Accept returned %v after Close; want at once", d)
		}
	})
}

func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"out of file descriptors", emfile, true},
		{"out of file descriptors system-wide", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENFILE)}, true},
		{"out of buffers", &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.ENOBUFS)}, true},
		{"a deadline", &net.OpError{Op: "accept", Err: os.ErrDeadlineExceeded}, true},
		{"a closed listener", &net.OpError{Op: "accept", Err: net.ErrClosed}, false},
		{"anything else", errors.New("invalid argument"), false},
	} {
		t.Run(tc.name+" is temporary: "+fmt.Sprint(tc.want), func(t *testing.T) {
			if runtime.GOOS == "windows" && tc.name == "out of file descriptors system-wide" {
				t.Skip("Windows has no system-wide limit (ENFILE is Go's invented number there); its codes are in TestTemporaryOnWindows")
			}
			if got := Temporary(tc.err); got != tc.want {
				t.Fatalf("Temporary(%v) = %v", tc.err, got)
			}
		})
	}
}
