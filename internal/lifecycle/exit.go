package lifecycle

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"fluidity/internal/controlapi"
)

// Config configures an Exit. Backend is required.
type Config struct {
	Backend Backend
	// WakeTimeout bounds a wake, from the first request to the exit being
	// ready. A Fargate task takes 30–90 s to start. If zero, 3m is used.
	WakeTimeout time.Duration
	// PollWait is how long one query may wait for a starting exit. If
	// zero, controlapi.MaxWait is used.
	PollWait time.Duration
	// ProgressEvery is how often a wake logs that it is still waiting. If
	// zero, 5s is used.
	ProgressEvery time.Duration
	// Usage, if set, records the exit's hours.
	Usage *Usage
	// Logger receives the wake's progress and the exit's changes. Nil
	// discards.
	Logger *slog.Logger
}

// State is where the agent believes its exit is.
type State string

const (
	StateAsleep State = "asleep" // no exit runs (or none is known to)
	StateWaking State = "waking" // a wake is in progress
	StateReady  State = "ready"  // the exit runs at Address
)

// Status is a snapshot of an Exit, for the agent's status.
type Status struct {
	State   State     `json:"state"`
	Since   time.Time `json:"since"`
	Task    string    `json:"task,omitempty"`
	Address string    `json:"address,omitempty"`
	// TaskStatus is the task's ECS status when last seen.
	TaskStatus string `json:"task_status,omitempty"`
	// Reason is why the exit is asleep: how it stopped, or why waking it
	// failed.
	Reason string `json:"reason,omitempty"`
	// LastWake is how long the last successful wake took.
	LastWake time.Duration `json:"last_wake_ns,omitempty"`
	// Usage is this month's exit hours and their estimated cost.
	Usage *MonthUsage `json:"usage,omitempty"`
}

// Exit finds, wakes and watches an exit through a Backend. It implements
// the tunnel's Locator. It is safe for concurrent use.
type Exit struct {
	cfg Config // immutable after New
	log *slog.Logger

	mu sync.Mutex // guards st
	st Status
}

// New checks cfg and returns an Exit, asleep.
func New(cfg Config) (*Exit, error) {
	if cfg.Backend == nil {
		return nil, errors.New("lifecycle: a backend is required")
	}
	if cfg.WakeTimeout == 0 {
		cfg.WakeTimeout = 3 * time.Minute
	}
	if cfg.PollWait == 0 {
		cfg.PollWait = controlapi.MaxWait
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Exit{cfg: cfg, log: cfg.Logger, st: Status{State: StateAsleep, Since: time.Now()}}, nil
}

// Status returns the exit's status and, with a usage record, this month's
// figures.
func (e *Exit) Status() Status {
	e.mu.Lock()
	st := e.st
	e.mu.Unlock()
	if u := e.cfg.Usage; u != nil {
		if st.State == StateReady {
			u.Alive(st.Task)
		}
		m := u.Month(time.Now())
		st.Usage = &m
	}
	return st
}

// Locate implements the tunnel's Locator: with wake it wakes the exit and
// waits until it is ready; without, it only asks, and reports "" when the
// exit is not running.
func (e *Exit) Locate(ctx context.Context, wake bool) (string, error) {
	if wake {
		return e.Wake(ctx)
	}
	st, err := e.cfg.Backend.Query(ctx, 0)
	if err != nil {
		e.setAsleep(st, err.Error())
		return "", err
	}
	e.observe(st)
	switch st.State {
	case controlapi.Ready:
		e.setReady(st, 0)
		return st.Address, nil
	case controlapi.Starting:
		// Someone else is waking it (fluidity wake, another machine):
		// wait for it as for a wake of our own.
		return e.finishWake(ctx, "", st, time.Now())
	}
	e.setAsleep(st, st.Reason)
	return "", nil
}

// Wake starts the exit if it is not running and waits until it is ready,
// for at most WakeTimeout. It returns the exit's address. If the wait
// fails after a task was started, the task is stopped.
func (e *Exit) Wake(ctx context.Context) (string, error) {
	start := time.Now()
	id, err := newWakeID()
	if err != nil {
		return "", err
	}
	e.setWaking(start)
	e.log.Info("waking the exit", "wake_id", id)
	wctx, cancel := context.WithTimeout(ctx, e.cfg.WakeTimeout)
	defer cancel()
	st, err := retry(wctx, func(ctx context.Context) (controlapi.State, error) { return e.cfg.Backend.Wake(ctx, id) })
	if err != nil {
		err = e.wakeFailed(ctx, wctx, st, err)
		e.setAsleep(st, err.Error())
		return "", err
	}
	e.observe(st)
	return e.finishWake(ctx, id, st, start)
}

// finishWake waits for a starting exit to become ready.
func (e *Exit) finishWake(ctx context.Context, id string, st controlapi.State, start time.Time) (string, error) {
	e.setWaking(start)
	wctx, cancel := context.WithTimeout(ctx, e.cfg.WakeTimeout-time.Since(start))
	defer cancel()
	stopProgress := e.progress(start)
	st, err := e.await(wctx, st)
	stopProgress()
	if err != nil {
		err = e.wakeFailed(ctx, wctx, st, err)
		e.setAsleep(st, err.Error())
		return "", err
	}
	took := time.Since(start)
	e.setReady(st, took)
	e.log.Info("exit ready", "address", st.Address, "task", st.Task, "took", took.Round(100*time.Millisecond), "wake_id", id)
	return st.Address, nil
}

// await queries until the exit is ready. A stopped exit is an error.
func (e *Exit) await(ctx context.Context, st controlapi.State) (controlapi.State, error) {
	for {
		switch st.State {
		case controlapi.Ready:
			return st, nil
		case controlapi.Stopped:
			return st, fmt.Errorf("the exit stopped while starting: %s", st.Reason)
		}
		e.setTaskStatus(st)
		next, err := retry(ctx, func(ctx context.Context) (controlapi.State, error) {
			return e.cfg.Backend.Query(ctx, e.cfg.PollWait)
		})
		if err != nil {
			return st, err
		}
		e.observe(next)
		st = next
	}
}

// wakeFailed turns the error that ended a wake into the one to report, and
// stops the task the wake started, if any: a failed wake must leave nothing
// running. wctx is the wake's context, ctx the caller's.
func (e *Exit) wakeFailed(ctx, wctx context.Context, st controlapi.State, err error) error {
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("waking the exit was cancelled: %w", ctx.Err())
	case wctx.Err() != nil:
		status := st.Status
		if status == "" {
			status = "unknown"
		}
		err = fmt.Errorf("the exit did not become ready within %v (last status %s)", e.cfg.WakeTimeout, status)
	}
	if st.Task == "" || st.State == controlapi.Stopped {
		return err
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, kerr := e.cfg.Backend.Kill(kctx); kerr != nil {
		e.log.Warn("stopping the exit after a failed wake failed; the control plane's sweep will stop it", "task", st.Task, "err", kerr)
		return fmt.Errorf("%w; stopping it failed too (%v), so the control plane's sweep will", err, kerr)
	}
	e.log.Info("stopped the exit after a failed wake, so it costs nothing", "task", st.Task)
	return fmt.Errorf("%w; stopped it, so it costs nothing", err)
}

// progress logs a line every ProgressEvery until the returned func is
// called, which waits for it to end.
func (e *Exit) progress(start time.Time) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(e.cfg.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				e.mu.Lock()
				status := e.st.TaskStatus
				e.mu.Unlock()
				e.log.Info(fmt.Sprintf("waking exit… %ds", int(time.Since(start).Seconds())), "status", status)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// retry calls f until it succeeds, fails for good, or ctx ends. Errors the
// control plane calls retryable (throttling, no answer) are retried with
// backoff.
func retry(ctx context.Context, f func(context.Context) (controlapi.State, error)) (controlapi.State, error) {
	delay := 500 * time.Millisecond
	for {
		st, err := f(ctx)
		var ce *controlapi.Error
		if err == nil || ctx.Err() != nil || !errors.As(err, &ce) || !ce.Retryable() {
			return st, err
		}
		t := time.NewTimer(delay/2 + rand.N(delay/2+1))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return st, err
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func newWakeID() (string, error) {
	var b [16]byte
	if _, err := crand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lifecycle: wake id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

func (e *Exit) observe(st controlapi.State) {
	if e.cfg.Usage != nil {
		e.cfg.Usage.Observe(st)
	}
}

func (e *Exit) setWaking(start time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.st.State != StateWaking {
		e.st = Status{State: StateWaking, Since: start, LastWake: e.st.LastWake}
	}
}

func (e *Exit) setTaskStatus(st controlapi.State) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.Task, e.st.TaskStatus = st.Task, st.Status
}

func (e *Exit) setReady(st controlapi.State, took time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if took == 0 {
		took = e.st.LastWake
	}
	since := e.st.Since
	if e.st.State != StateReady || e.st.Task != st.Task {
		since = time.Now()
	}
	e.st = Status{State: StateReady, Since: since, Task: st.Task, Address: st.Address, TaskStatus: st.Status, LastWake: took}
}

func (e *Exit) setAsleep(st controlapi.State, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	since := e.st.Since
	if e.st.State != StateAsleep {
		since = time.Now()
	}
	e.st = Status{State: StateAsleep, Since: since, Task: st.Task, TaskStatus: st.Status, Reason: reason, LastWake: e.st.LastWake}
}
