package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// testExit is an exit on a loopback listener that answers every CONNECT
// with 200 and echoes the stream.
type testExit struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func startTestExit(t *testing.T, srvTLS *tls.Config) *testExit {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &testExit{ln: ln}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			x.mu.Lock()
			x.conns = append(x.conns, raw)
			x.mu.Unlock()
			x.wg.Add(1)
			go func() {
				defer x.wg.Done()
				tc := tls.Server(raw, srvTLS)
				if tc.Handshake() != nil {
					raw.Close()
					return
				}
				Serve(context.Background(), tc, Config{}, func(ctx context.Context, req *Request, s *Stream) {
					if s.Accept() == nil {
						io.Copy(s, s)
					}
					s.Close()
				})
			}()
		}
	}()
	t.Cleanup(x.stop)
	return x
}

func (x *testExit) addr() string { return x.ln.Addr().String() }

// stop closes the listener and every link, as an exit that went away.
func (x *testExit) stop() {
	x.ln.Close()
	x.mu.Lock()
	for _, c := range x.conns {
		c.Close()
	}
	x.mu.Unlock()
	x.wg.Wait()
}

// testLocator answers Locate from a script the test changes.
type testLocator struct {
	mu    sync.Mutex
	calls []bool // the wake argument of each call
	addr  string // "" means asleep when not woken
	woken string // what a wake returns; "" means waking fails
	err   error  // the error a failed wake returns
}

func (l *testLocator) Locate(ctx context.Context, wake bool) (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, wake)
	switch {
	case l.addr != "":
		return l.addr, nil
	case !wake:
		return "", nil
	case l.woken == "":
		return "", l.err
	}
	l.addr = l.woken
	return l.addr, nil
}

func (l *testLocator) set(f func(l *testLocator)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(l)
}

func (l *testLocator) callLog() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]bool(nil), l.calls...)
}

func runClient(t *testing.T, cfg ClientConfig) *Client {
	t.Helper()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// echo dials through c and checks that a message comes back.
func echo(t *testing.T, c *Client) {
	t.Helper()
	openEcho(t, c).Close()
}

func TestLocatedExitIsWokenByTheFirstDialOnly(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	x := startTestExit(t, srvTLS)
	loc := &testLocator{woken: x.addr()}
	c := runClient(t, ClientConfig{Locator: loc, TLS: cliTLS})

	time.Sleep(200 * time.Millisecond) // Run has every chance to connect early; it must not
	if st := c.Status(); st.State != StateAsleep || len(loc.callLog()) != 0 {
		t.Fatalf("before any Dial: state %s, %d Locate calls; want asleep and none", st.State, len(loc.callLog()))
	}
	echo(t, c)
	if calls := loc.callLog(); len(calls) != 1 || !calls[0] {
		t.Fatalf("Locate calls %v, want one that wakes", calls)
	}
	if st := c.Status(); st.State != StateUp || st.Addr != x.addr() {
		t.Fatalf("status %+v, want up at %s", st, x.addr())
	}
}

func TestWakeOnStartConnectsBeforeAnyDial(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	x := startTestExit(t, srvTLS)
	loc := &testLocator{woken: x.addr()}
	c := runClient(t, ClientConfig{Locator: loc, TLS: cliTLS, WakeOnStart: true})
	waitFor(t, "the link to come up", func() bool { return c.Status().State == StateUp })
	if calls := loc.callLog(); len(calls) != 1 || !calls[0] {
		t.Fatalf("Locate calls %v, want one that wakes", calls)
	}
}

func TestFailedWakeFailsWaitingDialsAtOnceAndIsNotRetried(t *testing.T) {
	_, cliTLS := tlsPair(t)
	reason := errors.New("RunTask refused: no capacity")
	loc := &testLocator{err: reason}
	c := runClient(t, ClientConfig{Locator: loc, TLS: cliTLS, WaitTimeout: time.Minute})

	start := time.Now()
	_, err := c.Dial(context.Background(), "tcp", "target.example:443")
	var de *DialError
	if !errors.As(err, &de) || de.Status != 503 || !errors.Is(err, reason) || !errors.Is(err, ErrLinkDown) {
		t.Fatalf("Dial: %v; want a 503 DialError wrapping the wake's error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Dial waited %v for a wake that had failed", d)
	}
	time.Sleep(300 * time.Millisecond) // a retry loop would call Locate again now
	if calls := loc.callLog(); len(calls) != 1 {
		t.Fatalf("Locate called %d times after one failed wake, want 1 (no retry loop)", len(calls))
	}
	if st := c.Status(); st.State != StateAsleep || st.LastError != reason.Error() {
		t.Fatalf("status %+v, want asleep with the wake's error", st)
	}

	// The next connection tries again.
	loc.set(func(l *testLocator) { l.err = errors.New("still no capacity") })
	if _, err := c.Dial(context.Background(), "tcp", "target.example:443"); err == nil {
		t.Fatal("Dial succeeded with no exit")
	}
	if calls := loc.callLog(); len(calls) != 2 || !calls[1] {
		t.Fatalf("Locate calls %v, want a second wake for the second Dial", calls)
	}
}

func TestLostLinkIsLocatedAgainAndFollowsTheExitToItsNewAddress(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	first := startTestExit(t, srvTLS)
	loc := &testLocator{woken: first.addr()}
	c := runClient(t, ClientConfig{Locator: loc, TLS: cliTLS, BackoffMin: 50 * time.Millisecond})
	echo(t, c)

	// The exit is replaced: the old address goes dead, a new one serves.
	second := startTestExit(t, srvTLS)
	loc.set(func(l *testLocator) { l.addr = second.addr() })
	first.stop()
	waitFor(t, "the link to the new address", func() bool {
		st := c.Status()
		return st.State == StateUp && st.Addr == second.addr()
	})
	echo(t, c)
	calls := loc.callLog()
	if len(calls) < 2 || calls[1] {
		t.Fatalf("Locate calls %v: after a lost link the client must look without waking", calls)
	}
}

func TestExitThatWentAwayLeavesTheClientAsleepUntilTheNextDial(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	first := startTestExit(t, srvTLS)
	loc := &testLocator{woken: first.addr()}
	c := runClient(t, ClientConfig{Locator: loc, TLS: cliTLS, BackoffMin: 50 * time.Millisecond})
	echo(t, c)

	// The exit stops (went to sleep): Locate now says asleep.
	second := startTestExit(t, srvTLS)
	loc.set(func(l *testLocator) { l.addr, l.woken = "", second.addr() })
	first.stop()
	waitFor(t, "the client to go asleep", func() bool { return c.Status().State == StateAsleep })
	n := len(loc.callLog())
	time.Sleep(500 * time.Millisecond) // asleep means no Locate, no reconnect loop
	if got := len(loc.callLog()); got != n {
		t.Fatalf("Locate called %d more times while asleep", got-n)
	}
	echo(t, c) // wakes the exit again, at its new address
	calls := loc.callLog()
	if !calls[len(calls)-1] {
		t.Fatalf("Locate calls %v: the Dial after sleep must wake", calls)
	}
	if st := c.Status(); st.Addr != second.addr() {
		t.Fatalf("connected to %s, want the new exit %s", st.Addr, second.addr())
	}
}
