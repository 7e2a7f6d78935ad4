// Package supervisor runs a program and starts it again when it crashes,
// with a growing pause between crashes in a row, and writes what it prints
// to a log, whole lines at a time. 'fluidity service run' is one: the
// agent it starts at login is restarted after a crash on every system,
// including Windows, whose Task Scheduler restarts nothing that exits.
//
// When the supervisor ends, so does the program: it is asked to stop
// (SIGTERM; on Windows it is ended at once), killed if it takes longer
// than StopTimeout, and on Linux and Windows the system ends it even if
// the supervisor itself is killed (a parent-death signal; a job object).
package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"
)

// Config says what to run. Path is required.
type Config struct {
	// Path is the program; Args its arguments (without the program name).
	Path string
	Args []string
	// Env is its environment; nil is the supervisor's.
	Env []string
	// Output receives what the program writes to stdout and stderr, whole
	// lines at a time. Nil discards it.
	Output io.Writer
	// MinBackoff is the pause before a restart after a crash; each crash
	// in a row doubles it, up to MaxBackoff. If zero, 1s and 1m.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter is how long a run must last for its crash to start the
	// pauses again from MinBackoff. If zero, 1m.
	StableAfter time.Duration
	// StopTimeout is how long the program may take to stop once asked
	// before it is killed. If zero, 15s.
	StopTimeout time.Duration
	// Logger receives the supervisor's own lines (starts, exits, restarts).
	// Nil discards them.
	Logger *slog.Logger
	// OnChange, if set, is told the state after every start and exit.
	OnChange func(State)
}

// State is what the supervisor knows of its program.
type State struct {
	PID        int       `json:"pid,omitempty"`         // the running program's; 0 while none runs
	Started    time.Time `json:"started,omitzero"`      // when the running program started
	Restarts   int       `json:"restarts"`              // restarts after a crash so far
	LastExit   string    `json:"last_exit,omitempty"`   // how the last run ended, such as "exit status 1"
	LastExitAt time.Time `json:"last_exit_at,omitzero"` // when it ended
	NextStart  time.Time `json:"next_start,omitzero"`   // when a crashed program starts again; zero if none is due
}

// Run runs the program until ctx ends, starting it again after each crash
// (an exit with a status other than 0). It returns nil when ctx ends or the
// program exits with status 0, and an error if the program cannot be
// started at all.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Path == "" {
		return errors.New("supervisor: no program to run")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = time.Minute
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 15 * time.Second
	}
	if cfg.Output == nil {
		cfg.Output = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func(State) {}
	}
	j, err := newJob()
	if err != nil {
		return fmt.Errorf("supervisor: %w", err)
	}
	defer j.close()
	r := &runner{cfg: cfg, job: j}
	return r.loop(ctx)
}

// runner is one Run's state, owned by loop.
type runner struct {
	cfg   Config
	job   *job
	state State
	delay time.Duration // the pause before the next restart; 0 before the first crash
}

func (r *runner) loop(ctx context.Context) error {
	log := r.cfg.Logger
	for {
		started := time.Now()
		err := r.runOnce(ctx)
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			log.Info("program exited with status 0; not restarting", "program", r.cfg.Path)
			return nil
		case !errors.As(err, &ee):
			// It did not start: a missing program or a bad directory does
			// not get better by trying again.
			return fmt.Errorf("supervisor: %w", err)
		}
		r.delay = nextDelay(r.delay, time.Since(started), r.cfg)
		r.state.Restarts++
		r.state.NextStart = time.Now().Add(r.delay)
		r.cfg.OnChange(r.state)
		log.Warn("program crashed; restarting", "program", r.cfg.Path, "exit", err.Error(), "after", r.delay.String())
		t := time.NewTimer(r.delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// nextDelay is the pause before a restart after a run of ranFor, given the
// previous pause.
func nextDelay(prev, ranFor time.Duration, cfg Config) time.Duration {
	if prev == 0 || ranFor >= cfg.StableAfter {
		return cfg.MinBackoff
	}
	return min(2*prev, cfg.MaxBackoff)
}

// runOnce starts the program and waits for it; when ctx ends first, it
// asks the program to stop and kills it after StopTimeout. It returns
// cmd.Wait's error (an *exec.ExitError for a status other than 0) or the
// start's.
func (r *runner) runOnce(ctx context.Context) error {
	out := &lineWriter{w: r.cfg.Output}
	defer out.flush()
	cmd := exec.Command(r.cfg.Path, r.cfg.Args...)
	cmd.Env = r.cfg.Env
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild holding the output pipe must not hold Wait.
	cmd.WaitDelay = r.cfg.StopTimeout
	configure(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	if err := r.job.add(cmd.Process); err != nil {
		r.cfg.Logger.Warn("program not tied to the supervisor's lifetime", "err", err)
	}
	r.state.PID, r.state.Started, r.state.NextStart = cmd.Process.Pid, time.Now(), time.Time{}
	r.cfg.OnChange(r.state)
	r.cfg.Logger.Info("program started", "program", r.cfg.Path, "pid", cmd.Process.Pid)

	// Every way below receives from done, so the waiter has ended by the
	// time runOnce returns.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		if ierr := interrupt(cmd.Process); ierr != nil {
			cmd.Process.Kill()
		}
		t := time.NewTimer(r.cfg.StopTimeout)
		select {
		case err = <-done:
			t.Stop()
		case <-t.C:
			r.cfg.Logger.Warn("program did not stop in time; killing it", "program", r.cfg.Path, "timeout", r.cfg.StopTimeout.String())
			cmd.Process.Kill()
			err = <-done
		}
	}
	exit := "exit status 0"
	if err != nil {
		exit = err.Error()
	}
	r.state.PID, r.state.Started = 0, time.Time{}
	r.state.LastExit, r.state.LastExitAt = exit, time.Now()
	r.cfg.OnChange(r.state)
	r.cfg.Logger.Info("program exited", "program", r.cfg.Path, "exit", exit)
	return err
}

// lineWriter passes whole lines to w; a line longer than 64 KiB is passed
// in pieces. exec.Cmd calls Write from one goroutine at a time when Stdout
// and Stderr are the same writer.
type lineWriter struct {
	w   io.Writer
	buf []byte // a partial line
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.buf = append(l.buf, p...)
			if len(l.buf) >= 64<<10 {
				l.flush()
			}
			break
		}
		if len(l.buf) > 0 {
			l.buf = append(l.buf, p[:i+1]...)
			l.w.Write(l.buf)
			l.buf = l.buf[:0]
		} else {
			l.w.Write(p[:i+1])
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush writes a partial line, ended with a newline.
func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.w.Write(append(l.buf, '\n'))
		l.buf = l.buf[:0]
	}
}
