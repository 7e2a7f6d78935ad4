// Package acceptloop keeps a listener accepting through temporary
// failures, as net/http.Server.Serve does: when the process runs out of
// file descriptors (EMFILE, ENFILE), or the kernel of buffers, Accept waits
// (5 ms, doubling up to 1 s) and tries again, instead of returning an error
// that would end the server's accept loop for good.
//
// A run of failures is logged twice, not once per failure: when it starts,
// with the error, and when accepting has worked again for a while, with the
// number of failures and how long they lasted. While accepting fails, Err
// says so, for a readiness probe.
package acceptloop

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"fluidity/internal/sockio"
)

// Backoff between attempts after a temporary failure, as net/http's.
const (
	minDelay = 5 * time.Millisecond
	maxDelay = time.Second
)

// quiet is how long accepting must work after the last failure before a
// run of failures counts as over. Under steady file-descriptor pressure,
// accepts succeed and fail in turn; they are one run, not many.
const quiet = 5 * time.Second

// A Listener is a net.Listener whose Accept rides out temporary failures.
// It is safe for concurrent use.
type Listener struct {
	net.Listener // immutable after New

	log       *slog.Logger  // immutable after New
	done      chan struct{} // closed by Close
	closeOnce sync.Once

	mu      sync.Mutex
	run     *failureRun // guarded by mu; the current run of failures, nil if none
	failing bool        // guarded by mu; the last attempt failed
}

// failureRun is a run of failed accepts: from its first failure until
// accepting has worked for quiet.
type failureRun struct {
	since    time.Time   // the first failure
	last     time.Time   // the latest failure
	failures int         // failed attempts
	err      error       // the latest failure
	end      *time.Timer // ends the run quiet after a success; nil until one
}

// New wraps ln. log receives the start and the end of each run of
// failures; nil discards them.
func New(ln net.Listener, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{Listener: ln, log: log, done: make(chan struct{})}
}

// Accept waits for and returns the next connection. A temporary failure is
// retried after a pause, 5 ms at first, doubling to 1 s; Accept returns an
// error only when the listener is closed or fails for good.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.succeeded()
			return c, nil
		}
		if !Temporary(err) {
			return nil, err
		}
		select {
		case <-l.done:
			return nil, err
		default:
		}
		l.failed(err)
		delay = min(max(2*delay, minDelay), maxDelay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return nil, net.ErrClosed
		}
		l.retrying()
	}
}

// retrying records that the pause after a failure is over. Accept tries
// again, and may now wait for a connection to come: out of file
// descriptors, accept(2) fails before it looks for one, so a failure says
// nothing of connections waiting, and a listener that waits is not failing
// (Err is nil) until an attempt fails again. The run of failures goes on
// until accepting has worked for quiet.
func (l *Listener) retrying() {
	l.mu.Lock()
	l.failing = false
	l.mu.Unlock()
}

// Close closes the listener: an Accept waiting, or pausing after a
// failure, returns at once. A run of failures still open is logged as
// over.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() {
		close(l.done)
		l.mu.Lock()
		r := l.run
		l.run, l.failing = nil, false
		if r != nil && r.end != nil {
			r.end.Stop()
		}
		l.mu.Unlock()
		if r != nil {
			l.logEnd(r, "listener closed")
		}
	})
	return err
}

// Err describes the failure accepting connections now: nil while accepting
// works, including after a run of failures has ended with a success.
func (l *Listener) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.failing || l.run == nil {
		return nil
	}
	return fmt.Errorf("accepting connections on %s fails since %s (%d failed attempts, retrying): %w",
		l.Addr(), l.run.since.Format(time.RFC3339), l.run.failures, l.run.err)
}

// failed records a failed attempt, and logs the start of a run.
func (l *Listener) failed(err error) {
	now := time.Now()
	l.mu.Lock()
	l.failing = true
	r := l.run
	started := r == nil
	if started {
		r = &failureRun{since: now}
		l.run = r
	}
	r.failures++
	r.last, r.err = now, err
	if r.end != nil {
		r.end.Stop()
		r.end = nil
	}
	l.mu.Unlock()
	if started {
		l.log.Warn("accepting connections fails: retrying with backoff until it works again; raise the open files limit (ulimit -n) if this is the cause",
			"addr", l.Addr().String(), "err", err)
	}
}

// succeeded records a successful accept: the end of a run of failures is
// scheduled quiet after it, unless another failure comes first.
func (l *Listener) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = false
	if r := l.run; r != nil && r.end == nil {
		r.end = time.AfterFunc(quiet, func() { l.endRun(r) })
	}
}

// endRun ends run r, if it is still the current run and no failure has
// come since the success that scheduled its end.
func (l *Listener) endRun(r *failureRun) {
	l.mu.Lock()
	if l.run != r || l.failing {
		l.mu.Unlock()
		return
	}
	l.run = nil
	l.mu.Unlock()
	l.logEnd(r, "accepting again")
}

func (l *Listener) logEnd(r *failureRun, msg string) {
	l.log.Warn(msg+" after a run of accept failures", "addr", l.Addr().String(), "failures", r.failures,
		"for", r.last.Sub(r.since).Round(time.Millisecond), "since", r.since.Format(time.RFC3339), "last_err", r.err)
}

// Temporary reports whether err, from Accept, is worth retrying: running
// out of file descriptors, socket buffers or memory, an interrupted call, a
// timeout. A closed listener is not.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	// syscall.Errno says EMFILE, ENFILE, EINTR, EAGAIN and ETIMEDOUT are;
	// net.OpError passes the question on.
	var t interface{ Temporary() bool }
	if errors.As(err, &t) && t.Temporary() {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// sockio knows Windows' codes for running out, which syscall.Errno
	// does not count as temporary.
	return sockio.OutOfSockets(err) || errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}
