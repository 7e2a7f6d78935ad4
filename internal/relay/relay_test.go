package relay

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"fluidity/internal/sockio"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c1.(*net.TCPConn), c2.(*net.TCPConn)
}

func TestPipeHalfClosesEachDirectionOnItsOwn(t *testing.T) {
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	defer client.Close()
	defer target.Close()
	done := make(chan Result, 1)
	go func() { done <- Pipe(a, b) }()

	// The client finishes sending first; the target still answers after
	// reading EOF, and the answer reaches the client.
	io.WriteString(client, "question")
	client.CloseWrite()
	got, err := io.ReadAll(target)
	if err != nil || string(got) != "question" {
		t.Fatalf("target read %q, %v", got, err)
	}
	io.WriteString(target, "a long answer")
	target.CloseWrite()
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "a long answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	select {
	case res := <-done:
		if res.Err != nil || res.AToB != int64(len("question")) || res.BToA != int64(len("a long answer")) {
			t.Fatalf("result %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return after both directions ended")
	}
}

func TestPipeErrorInOneDirectionEndsBoth(t *testing.T) {
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	defer client.Close()
	done := make(chan Result, 1)
	go func() { done <- Pipe(a, b) }()
	// The target resets: the client side must not be left hanging.
	target.SetLinger(0)
	target.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(client); err != nil {
		var ne net.Error
		if ok := asNetErr(err, &ne); ok && ne.Timeout() {
			t.Fatal("client hangs after the target reset")
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return")
	}
}

func asNetErr(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

func TestAResetReachesTheOtherSideAsAReset(t *testing.T) {
	for _, tc := range []struct {
		name string
		// reset is the side that resets mid-transfer; other the side that
		// must see a reset too.
		reset, other func(client, target *net.TCPConn) *net.TCPConn
	}{
		{"target resets mid-download",
			func(_, target *net.TCPConn) *net.TCPConn { return target },
			func(client, _ *net.TCPConn) *net.TCPConn { return client }},
		{"client resets mid-upload",
			func(client, _ *net.TCPConn) *net.TCPConn { return client },
			func(_, target *net.TCPConn) *net.TCPConn { return target }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, a := tcpPair(t)
			b, target := tcpPair(t)
			defer client.Close()
			defer target.Close()
			done := make(chan Result, 1)
			go func() { done <- Pipe(a, b) }()
			resetter, other := tc.reset(client, target), tc.other(client, target)
			if _, err := resetter.Write([]byte("part of a transfer")); err != nil {
				t.Fatal(err)
			}
			other.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(other, make([]byte, len("part of a transfer"))); err != nil {
				t.Fatal(err)
			}
			resetter.SetLinger(0)
			resetter.Close()
			_, err := io.ReadAll(other)
			if !sockio.Reset(err) {
				t.Fatalf("the other side read to %v, want a reset (ECONNRESET), not a clean end", err)
			}
			res := <-done
			if res.Err == nil {
				t.Fatal("Pipe reports a clean end after a reset")
			}
		})
	}
}

func TestAHalfCloseThatFailsIsNoError(t *testing.T) {
	// An HTTPS exchange through a tunnel: the client reads its answer and
	// closes its connection; the target then sends its TLS close_notify
	// and closes. The client's host answers that last record with a reset,
	// so half-closing towards the client fails (ENOTCONN): the exchange
	// still ended normally, and must be reported so.
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	done := make(chan Result, 1)
	go func() { done <- Pipe(a, b) }()
	io.WriteString(client, "request")
	client.CloseWrite()
	target.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := io.ReadAll(target); err != nil || string(got) != "request" {
		t.Fatalf("target read %q, %v", got, err)
	}
	io.WriteString(target, "answer")
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.ReadFull(client, make([]byte, len("answer")))
	client.Close()
	io.WriteString(target, "close_notify")
	target.Close()
	select {
	case res := <-done:
		if res.Err != nil {
			t.Fatalf("a finished exchange reported %v", res.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return")
	}
}

// abortable counts Abort and Close calls.
type abortable struct {
	net.Conn
	aborts, closes int
}

func (c *abortable) Abort() error { c.aborts++; return c.Conn.Close() }
func (c *abortable) Close() error { c.closes++; return c.Conn.Close() }

func TestAbortPrefersAbortThenTheTCPConnBeneath(t *testing.T) {
	x, y := tcpPair(t)
	defer y.Close()
	ab := &abortable{Conn: x}
	Abort(ab)
	if ab.aborts != 1 || ab.closes != 0 {
		t.Fatalf("Abort called Abort %d and Close %d times, want 1 and 0", ab.aborts, ab.closes)
	}
	// A TLS-like wrapper: the TCP connection beneath is reset.
	p, q := tcpPair(t)
	w := &wrapper{Conn: p}
	Abort(w)
	q.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(q); !sockio.Reset(err) {
		t.Fatalf("peer of an aborted wrapped connection read to %v, want ECONNRESET", err)
	}
}

type wrapper struct{ net.Conn }

func (w *wrapper) NetConn() net.Conn { return w.Conn }

func TestPipeIdleAbortsASilentPairAndABusyOneLives(t *testing.T) {
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	defer client.Close()
	defer target.Close()
	done := make(chan Result, 1)
	start := time.Now()
	go func() { done <- PipeIdle(a, b, 200*time.Millisecond) }()
	// Busy for a while: bytes every 50ms keep it up.
	for range 8 {
		io.WriteString(client, "x")
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case res := <-done:
		t.Fatalf("a busy pair was cut after %v: %v", time.Since(start), res.Err)
	default:
	}
	// Then silent: both ends are aborted, and the result says why.
	select {
	case res := <-done:
		if !errors.Is(res.Err, ErrIdle) {
			t.Fatalf("result %v, want ErrIdle", res.Err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a silent pair was never cut")
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(client); !sockio.Reset(err) {
		t.Fatalf("client read to %v after the idle cut, want a reset", err)
	}
}
