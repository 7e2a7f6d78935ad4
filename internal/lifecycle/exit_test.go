package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/controlapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// scriptBackend answers from a script: each Wake and Query call takes the
// next answer of its list (the last one repeats), and it records the calls.
type scriptBackend struct {
	mu      sync.Mutex
	wakes   []answer
	queries []answer
	wakeIDs []string
	waits   []time.Duration
	kills   int
	// block, if set, makes Query wait for the context's end (a query that
	// never comes back before the wake times out).
	block bool
}

type answer struct {
	st  controlapi.State
	err error
}

func next(list *[]answer) answer {
	a := (*list)[0]
	if len(*list) > 1 {
		*list = (*list)[1:]
	}
	return a
}

func (b *scriptBackend) Wake(ctx context.Context, id string) (controlapi.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.wakeIDs = append(b.wakeIDs, id)
	a := next(&b.wakes)
	return a.st, a.err
}

func (b *scriptBackend) Query(ctx context.Context, wait time.Duration) (controlapi.State, error) {
	b.mu.Lock()
	b.waits = append(b.waits, wait)
	block := b.block
	var a answer
	if !block {
		a = next(&b.queries)
	}
	b.mu.Unlock()
	if block {
		<-ctx.Done()
		return controlapi.State{}, ctx.Err()
	}
	if wait > 0 && a.st.State == controlapi.Starting {
		// A long poll of a task that stays starting takes its whole wait.
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return controlapi.State{}, ctx.Err()
		}
	}
	return a.st, a.err
}

func (b *scriptBackend) Kill(ctx context.Context) (controlapi.State, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.kills++
	return controlapi.State{State: controlapi.Stopped, Task: "t1", Reason: "stopped by its owner"}, nil
}

func (b *scriptBackend) calls() (wakeIDs []string, kills int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.wakeIDs...), b.kills
}

func starting(status string) answer {
	now := time.Now()
	return answer{st: controlapi.State{State: controlapi.Starting, Task: "t1", Status: status, CreatedAt: &now}}
}

func ready(addr string) answer {
	return answer{st: controlapi.State{State: controlapi.Ready, Task: "t1", Status: "RUNNING", Address: addr}}
}

func newExit(t *testing.T, b Backend, mod func(*Config)) *Exit {
	t.Helper()
	cfg := Config{Backend: b}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestWakeWaitsUntilReadyAndReportsTheAddress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &scriptBackend{
			wakes:   []answer{starting("PROVISIONING")},
			queries: []answer{starting("PENDING"), ready("203.0.113.7:8443")},
		}
		e := newExit(t, b, nil)
		start := time.Now()
		addr, err := e.Locate(context.Background(), true)
		if err != nil || addr != "203.0.113.7:8443" {
			t.Fatalf("Locate = %q, %v", addr, err)
		}
		// One long poll that came back starting after its whole wait, then
		// one that found it ready.
		if took := time.Since(start); took != controlapi.MaxWait {
			t.Fatalf("wake took %v, want one long poll of %v", took, controlapi.MaxWait)
		}
		st := e.Status()
		if st.State != StateReady || st.Address != addr || st.LastWake != controlapi.MaxWait {
			t.Fatalf("status %+v", st)
		}
		if ids, kills := b.calls(); len(ids) != 1 || kills != 0 {
			t.Fatalf("%d wakes, %d kills; want 1, 0", len(ids), kills)
		}
	})
}

func TestRetriedWakeKeepsItsID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		throttled := &controlapi.Error{Status: http.StatusTooManyRequests, Code: controlapi.CodeThrottled, Message: "slow down"}
		b := &scriptBackend{
			wakes:   []answer{{err: throttled}, {err: throttled}, ready("203.0.113.7:8443")},
			queries: []answer{ready("203.0.113.7:8443")},
		}
		e := newExit(t, b, nil)
		if _, err := e.Locate(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		ids, _ := b.calls()
		if len(ids) != 3 || ids[0] != ids[1] || ids[1] != ids[2] {
			t.Fatalf("wake IDs %q: retries of one wake must repeat its ID", ids)
		}
		if _, err := e.Locate(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		if ids2, _ := b.calls(); ids2[3] == ids[0] {
			t.Fatal("a new wake reused the previous wake's ID")
		}
	})
}

func TestWakeThatTimesOutStopsTheTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &scriptBackend{wakes: []answer{starting("PROVISIONING")}, queries: []answer{starting("PENDING")}}
		e := newExit(t, b, func(c *Config) { c.WakeTimeout = 2 * time.Minute })
		start := time.Now()
		_, err := e.Locate(context.Background(), true)
		if err == nil || !strings.Contains(err.Error(), "did not become ready within 2m0s (last status PENDING)") || !strings.Contains(err.Error(), "stopped it") {
			t.Fatalf("Locate: %v", err)
		}
		if took := time.Since(start); took != 2*time.Minute {
			t.Fatalf("gave up after %v, want the wake timeout", took)
		}
		if _, kills := b.calls(); kills != 1 {
			t.Fatalf("%d kills after a timed-out wake, want 1", kills)
		}
		if st := e.Status(); st.State != StateAsleep || !strings.Contains(st.Reason, "did not become ready") {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestWakeCancelledByTheAgentStopsTheTask(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &scriptBackend{wakes: []answer{starting("PENDING")}, block: true}
		e := newExit(t, b, nil)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(10*time.Second, cancel)
		_, err := e.Locate(ctx, true)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Locate: %v, want cancelled", err)
		}
		if _, kills := b.calls(); kills != 1 {
			t.Fatalf("%d kills after a cancelled wake, want 1", kills)
		}
	})
}

func TestTaskThatStopsWhileStartingIsAnErrorAndNeedsNoKill(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stopped := answer{st: controlapi.State{State: controlapi.Stopped, Task: "t1", Status: "STOPPED",
			Reason: "CannotPullContainerError: pull access denied"}}
		b := &scriptBackend{wakes: []answer{starting("PENDING")}, queries: []answer{stopped}}
		e := newExit(t, b, nil)
		_, err := e.Locate(context.Background(), true)
		if err == nil || !strings.Contains(err.Error(), "CannotPullContainerError") {
			t.Fatalf("Locate: %v", err)
		}
		if _, kills := b.calls(); kills != 0 {
			t.Fatalf("%d kills for a task that had stopped", kills)
		}
	})
}

func TestRefusedWakeIsReportedAsIs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		refused := &controlapi.Error{Status: http.StatusForbidden, Code: controlapi.CodeNotAllowed, Message: "arn:aws:iam::1:user/x may not use this exit"}
		b := &scriptBackend{wakes: []answer{{err: refused}}}
		e := newExit(t, b, nil)
		_, err := e.Locate(context.Background(), true)
		var ce *controlapi.Error
		if !errors.As(err, &ce) || ce.Code != controlapi.CodeNotAllowed {
			t.Fatalf("Locate: %v", err)
		}
		if ids, kills := b.calls(); len(ids) != 1 || kills != 0 {
			t.Fatalf("%d wakes and %d kills for a refusal; want 1, 0 (not retried, nothing to stop)", len(ids), kills)
		}
	})
}

func TestLookingWithoutWaking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := &scriptBackend{queries: []answer{{st: controlapi.State{State: controlapi.Stopped, Reason: "Essential container in task exited"}}}}
		e := newExit(t, b, nil)
		addr, err := e.Locate(context.Background(), false)
		if addr != "" || err != nil {
			t.Fatalf("Locate of a stopped exit = %q, %v; want asleep", addr, err)
		}
		if st := e.Status(); st.State != StateAsleep || st.Reason != "Essential container in task exited" {
			t.Fatalf("status %+v", st)
		}

		// Started elsewhere and still starting: wait for it, without a wake.
		b.queries = []answer{starting("PENDING"), ready("203.0.113.9:8443")}
		addr, err = e.Locate(context.Background(), false)
		if addr != "203.0.113.9:8443" || err != nil {
			t.Fatalf("Locate of a starting exit = %q, %v", addr, err)
		}
		if ids, _ := b.calls(); len(ids) != 0 {
			t.Fatalf("Locate without wake called Wake %d times", len(ids))
		}
	})
}

func TestWakeLogsProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		b := &scriptBackend{wakes: []answer{starting("PROVISIONING")},
			queries: []answer{starting("PENDING"), starting("PENDING"), starting("PENDING"), ready("203.0.113.7:8443")}}
		e := newExit(t, b, func(c *Config) { c.Logger = log; c.PollWait = 4 * time.Second })
		if _, err := e.Locate(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"waking exit… 5s", "waking exit… 10s", "status=PENDING", "exit ready"} {
			if !strings.Contains(buf.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, buf.String())
			}
		}
	})
}
