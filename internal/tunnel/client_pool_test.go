package tunnel

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"fluidity/internal/wanemu"
)

// linkStates is the state of each link of c's pool.
func linkStates(c *Client) []LinkState {
	var s []LinkState
	for _, l := range c.Status().Links {
		s = append(s, l.State)
	}
	return s
}

func allLinks(c *Client, want LinkState) bool {
	for _, s := range linkStates(c) {
		if s != want {
			return false
		}
	}
	return true
}

func (x *testExit) accepted() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.conns)
}

// openEcho dials through c and proves the stream with one echo; the stream
// stays open.
func openEcho(t *testing.T, c *Client) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx, "tcp", "target.example:443")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	proveEcho(t, conn, "hello")
	return conn
}

func proveEcho(t *testing.T, conn net.Conn, msg string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo: %q, %v", buf, err)
	}
}

func TestPoolSpreadsStreamsAndALostLinkTakesOnlyItsOwn(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	x := startTestExit(t, srvTLS)
	c := runClient(t, ClientConfig{Addr: x.addr(), TLS: cliTLS, Links: 3, BackoffMin: 20 * time.Millisecond})
	waitFor(t, "three links up", func() bool { return allLinks(c, StateUp) })
	if n := x.accepted(); n != 3 {
		t.Fatalf("the exit accepted %d connections, want 3", n)
	}

	var conns []net.Conn
	for range 6 {
		conns = append(conns, openEcho(t, c))
	}
	st := c.Status()
	for i, l := range st.Links {
		if l.Streams != 2 {
			t.Fatalf("link %d carries %d streams, want 2 on each (%+v)", i, l.Streams, st.Links)
		}
	}
	if st.Streams != 6 || st.State != StateUp || st.RTT <= 0 {
		t.Fatalf("pool status %+v, want up, 6 streams and a round trip", st)
	}

	// One link's TCP connection dies: its two streams end, the other four
	// carry on, and the link comes back.
	x.mu.Lock()
	x.conns[1].Close()
	x.mu.Unlock()
	var alive, dead int
	for i, conn := range conns {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte("again")); err == nil {
			buf := make([]byte, 5)
			if _, err := io.ReadFull(conn, buf); err == nil && string(buf) == "again" {
				alive++
				continue
			}
		}
		dead++
		t.Logf("stream %d ended with its link", i)
	}
	if alive != 4 || dead != 2 {
		t.Fatalf("%d streams alive and %d ended after one of three links died; want 4 and 2", alive, dead)
	}
	waitFor(t, "the lost link to come back", func() bool { return allLinks(c, StateUp) })
	if st := c.Status(); st.Reconnects != 1 || st.State != StateUp {
		t.Fatalf("status %+v: want up, with 1 reconnect", st)
	}
	// The new link has no streams, so the next two go there.
	openEcho(t, c)
	openEcho(t, c)
	for i, l := range c.Status().Links {
		if l.Streams != 2 {
			t.Fatalf("link %d carries %d streams, want 2 on each after the lost link came back (%+v)", i, l.Streams, c.Status().Links)
		}
	}
}

func TestPoolWakesTheExitOnceSleepsWithItAndFollowsItToItsNewAddress(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	first := startTestExit(t, srvTLS)
	loc := &testLocator{woken: first.addr()}
	c := runClient(t, ClientConfig{Locator: loc, TLS: cliTLS, Links: 3, BackoffMin: 20 * time.Millisecond})
	if !allLinks(c, StateAsleep) {
		t.Fatalf("before any Dial: links %v, want all asleep", linkStates(c))
	}
	echo(t, c)
	waitFor(t, "three links up", func() bool { return allLinks(c, StateUp) })
	if calls := loc.callLog(); fmt.Sprint(calls) != "[true]" {
		t.Fatalf("Locate calls %v, want one that wakes, for all three links", calls)
	}
	if n := first.accepted(); n != 3 {
		t.Fatalf("the exit accepted %d connections, want 3", n)
	}

	// The exit stops: the whole pool goes asleep, no link keeps trying.
	second := startTestExit(t, srvTLS)
	loc.set(func(l *testLocator) { l.addr, l.woken = "", second.addr() })
	first.stop()
	waitFor(t, "the pool to go asleep", func() bool { return allLinks(c, StateAsleep) })
	if st := c.Status(); st.State != StateAsleep || c.Up() {
		t.Fatalf("status %+v, want asleep", st)
	}
	n := len(loc.callLog())
	time.Sleep(300 * time.Millisecond)
	if got := len(loc.callLog()); got != n || second.accepted() != 0 {
		t.Fatalf("while asleep: %d more Locate calls, %d connections to the next exit; want none", got-n, second.accepted())
	}

	// The next Dial wakes it once, at its new address, and the pool follows.
	echo(t, c)
	waitFor(t, "three links up at the new address", func() bool { return allLinks(c, StateUp) })
	if calls := loc.callLog(); len(calls) != n+1 || !calls[n] {
		t.Fatalf("Locate calls %v, want one more, that wakes", calls)
	}
	if got := second.accepted(); got != 3 || c.Status().Addr != second.addr() {
		t.Fatalf("the new exit accepted %d connections at %s, want 3 at %s", got, c.Status().Addr, second.addr())
	}
}

func TestPoolSizeIsChecked(t *testing.T) {
	_, cliTLS := tlsPair(t)
	for _, n := range []int{-1, MaxLinks + 1} {
		if _, err := NewClient(ClientConfig{Addr: "127.0.0.1:1", TLS: cliTLS, Links: n}); err == nil {
			t.Errorf("Links %d accepted", n)
		}
	}
}

// A stall inside one link's TCP connection, as a lost segment makes until
// it is sent again, holds only the streams of that link: the pool's other
// streams go on, and the held one loses nothing.
func TestPoolStallOnOneLinkHoldsOnlyItsStreams(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	relay, err := wanemu.New(echoExitTLS(t, srvTLS), wanemu.Config{Delay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	c := runClient(t, ClientConfig{Addr: relay.Addr(), TLS: cliTLS, Links: 3})
	waitFor(t, "three links up", func() bool { return allLinks(c, StateUp) })
	var conns []net.Conn
	for range 3 {
		conns = append(conns, openEcho(t, c))
	}
	c.mu.Lock()
	held := c.slots[0].link
	c.mu.Unlock()
	if held.NumStreams() != 1 {
		t.Fatalf("link 0 carries %d streams, want 1 of the 3", held.NumStreams())
	}
	const stall = 3 * time.Second
	if !relay.StallConn(held.NetConn().LocalAddr(), stall) {
		t.Fatal("the relay does not know link 0's connection")
	}

	// Every stream writes; the one on the stalled link cannot be answered
	// until the stall ends, the others are at once.
	replies := make(chan int, len(conns))
	for i, conn := range conns {
		go func() {
			conn.SetDeadline(time.Now().Add(stall + 5*time.Second))
			msg := []byte(fmt.Sprintf("stream %d", i))
			buf := make([]byte, len(msg))
			if _, err := conn.Write(msg); err != nil {
				t.Errorf("stream %d: write: %v", i, err)
			} else if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != string(msg) {
				t.Errorf("stream %d: echo %q, %v", i, buf, err)
			}
			replies <- i
		}()
	}
	for range 2 {
		if i := <-replies; conns[i].(*Stream).c == held {
			t.Fatalf("stream %d, on the stalled link, was answered before the streams of the other links", i)
		}
	}
	if i := <-replies; conns[i].(*Stream).c != held {
		t.Fatalf("the last answer is stream %d's, not the stalled link's", i)
	}
}
