package tunnel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/nettest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// pair is a client Conn and a server running Serve over loopback TCP. The
// server hands every accepted stream to streams (or runs handle if set).
type pair struct {
	client  *Conn
	streams chan *Stream
	done    chan error
	srvConn net.Conn
}

func newPair(t testing.TB, clientCfg, serverCfg Config, handle Handler) *pair {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := &pair{streams: make(chan *Stream, 16), done: make(chan error, 1)}
	if handle == nil {
		handle = func(ctx context.Context, req *Request, s *Stream) {
			if err := s.Accept(); err != nil {
				return
			}
			p.streams <- s
			// Serve closes the stream when the handler returns; keep it
			// open until the connection ends.
			<-ctx.Done()
		}
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("accept failed")
	}
	p.srvConn = sc
	ctx, cancel := context.WithCancel(context.Background())
	go func() { p.done <- Serve(ctx, sc, serverCfg, handle) }()
	p.client, err = NewClientConn(cc, clientCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.client.Close()
		cancel()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the connection closed")
		}
	})
	return p
}

func (p *pair) dial(t testing.TB) (*Stream, *Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := p.client.Dial(ctx, "example.com:443", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ss := <-p.streams:
		return cs, ss
	case <-ctx.Done():
		t.Fatal("server never saw the stream")
	}
	return nil, nil
}

func TestStreamIsANetConn(t *testing.T) {
	p := newPair(t, Config{StreamWindow: 1 << 16}, Config{StreamWindow: 1 << 16}, nil)
	nettest.TestConn(t, func() (c1, c2 net.Conn, stop func(), err error) {
		cs, ss := p.dial(t)
		return cs, ss, func() { cs.Close(); ss.Close() }, nil
	})
}

func TestHalfCloseBothWays(t *testing.T) {
	p := newPair(t, Config{}, Config{}, nil)
	cs, ss := p.dial(t)
	defer cs.Close()
	defer ss.Close()

	// Client finishes sending; server reads EOF but can still answer.
	cs.Write([]byte("request"))
	cs.CloseWrite()
	got, err := io.ReadAll(ss)
	if err != nil || string(got) != "request" {
		t.Fatalf("server read %q, %v; want request, nil", got, err)
	}
	ss.Write([]byte("response"))
	ss.CloseWrite()
	got, err = io.ReadAll(cs)
	if err != nil || string(got) != "response" {
		t.Fatalf("client read %q, %v; want response, nil", got, err)
	}
	waitFor(t, "both sides forget the stream", func() bool { return p.client.NumStreams() == 0 })
}

func TestServerHalfCloseFirst(t *testing.T) {
	// The target side finishes first (sends a few bytes and closes); the
	// client still gets the bytes, then EOF, and can still send.
	p := newPair(t, Config{}, Config{}, nil)
	cs, ss := p.dial(t)
	defer cs.Close()
	defer ss.Close()
	ss.Write([]byte("bye"))
	ss.CloseWrite()
	got, err := io.ReadAll(cs)
	if err != nil || string(got) != "bye" {
		t.Fatalf("client read %q, %v", got, err)
	}
	if _, err := cs.Write([]byte("late")); err != nil {
		t.Fatalf("client write after server half-close: %v", err)
	}
	cs.CloseWrite()
	got, err = io.ReadAll(ss)
	if string(got) != "late" {
		t.Fatalf("server read %q, %v", got, err)
	}
}

func TestBulkTransferIntegrity(t *testing.T) {
	p := newPair(t, Config{StreamWindow: 1 << 16, MaxFrameSize: 16 << 10}, Config{StreamWindow: 1 << 16}, nil)
	cs, ss := p.dial(t)
	defer cs.Close()
	defer ss.Close()
	const size = 8 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>11)
	}
	go func() {
		io.Copy(ss, bytes.NewReader(data)) // ReadFrom path on the server stream
		ss.CloseWrite()
	}()
	h := sha256.New()
	n, err := io.Copy(h, cs) // WriteTo path on the client stream
	if err != nil || n != size {
		t.Fatalf("copied %d, %v; want %d", n, err, size)
	}
	if !bytes.Equal(h.Sum(nil), sha256.New().Sum(nil)) {
		want := sha256.Sum256(data)
		if !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatal("checksum mismatch")
		}
	}
}

func TestStalledReaderDoesNotSlowOthers(t *testing.T) {
	const window = 1 << 16
	p := newPair(t, Config{StreamWindow: window}, Config{StreamWindow: window}, nil)
	stalled, stalledSrv := p.dial(t)
	defer stalled.Close()
	defer stalledSrv.Close()
	// Fill the stalled stream's window and more: the writer blocks.
	blocked := make(chan error, 1)
	go func() {
		_, err := stalledSrv.Write(make([]byte, 4*window))
		blocked <- err
	}()
	waitFor(t, "the stalled stream's window to fill", func() bool { return stalled.BytesReceived() >= window })

	// Another stream moves far more than the connection would allow if
	// the stalled stream held connection-level credit.
	cs, ss := p.dial(t)
	defer cs.Close()
	defer ss.Close()
	const size = 32 * window
	go func() {
		ss.Write(make([]byte, size))
		ss.CloseWrite()
	}()
	n, err := io.Copy(io.Discard, cs)
	if err != nil || n != size {
		t.Fatalf("second stream read %d, %v; want %d", n, err, size)
	}
	select {
	case err := <-blocked:
		t.Fatalf("stalled writer returned early: %v", err)
	default:
	}
	// Reading the stalled stream now drains it completely.
	got, err := io.ReadFull(stalled, make([]byte, 4*window))
	if err != nil || got != 4*window {
		t.Fatalf("stalled stream read %d, %v", got, err)
	}
	if err := <-blocked; err != nil {
		t.Fatalf("stalled writer: %v", err)
	}
}

func TestRejectCarriesStatusAndReason(t *testing.T) {
	p := newPair(t, Config{}, Config{}, func(ctx context.Context, req *Request, s *Stream) {
		s.Reject(http.StatusForbidden, "destination_ip_prohibited", "refused: "+req.Authority+" is private")
	})
	_, err := p.client.Dial(context.Background(), "10.0.0.1:80", nil)
	var de *DialError
	if !errors.As(err, &de) {
		t.Fatalf("Dial error %v is not a *DialError", err)
	}
	if de.StatusCode() != 403 || de.ProxyStatus() != "destination_ip_prohibited" || de.Details != "refused: 10.0.0.1:80 is private" {
		t.Fatalf("got %+v", de)
	}
	waitFor(t, "the refused stream to be forgotten", func() bool { return p.client.NumStreams() == 0 })
}

func TestLinkDeathFailsStreamsPromptly(t *testing.T) {
	p := newPair(t, Config{}, Config{}, nil)
	cs, ss := p.dial(t)
	defer ss.Close()
	readErr := make(chan error, 1)
	go func() {
		_, err := cs.Read(make([]byte, 10))
		readErr <- err
	}()
	p.srvConn.Close() // the exit dies
	select {
	case err := <-readErr:
		if !errors.Is(err, ErrLinkClosed) {
			t.Fatalf("read error %v, want ErrLinkClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read on a dead link hangs")
	}
	if _, err := cs.Write([]byte("x")); !errors.Is(err, ErrLinkClosed) {
		t.Fatalf("write error %v, want ErrLinkClosed", err)
	}
}

func TestPingTimeoutClosesLink(t *testing.T) {
	// A peer that accepts TCP but never speaks HTTP/2: pings go unanswered.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	defer wg.Wait()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClientConn(nc, Config{PingInterval: 50 * time.Millisecond, PingTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("link with an unresponsive peer was not closed")
	}
	if !errors.Is(c.Err(), ErrPingTimeout) {
		t.Fatalf("Err = %v, want ErrPingTimeout", c.Err())
	}
	c.Close()
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCloseDoesNotWaitForAWriterBlockedOnItsSource(t *testing.T) {
	p := newPair(t, Config{}, Config{}, nil)
	cs, ss := p.dial(t)
	defer ss.Close()
	// An idle TCP source: ReadFrom waits for it to become readable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	src, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	readFromDone := make(chan error, 1)
	go func() {
		_, err := cs.ReadFrom(src)
		readFromDone <- err
	}()
	time.Sleep(50 * time.Millisecond) // let ReadFrom block on the idle source
	closed := make(chan struct{})
	go func() {
		cs.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("Close blocked behind a writer waiting on its source")
	}
	// The server side sees a clean end of stream.
	if _, err := io.ReadAll(ss); err != nil {
		t.Fatalf("server read after client Close: %v", err)
	}
	// Once the source speaks or closes, the writer returns with an error.
	src.Close()
	select {
	case err := <-readFromDone:
		if err == nil {
			t.Fatal("ReadFrom on a closed stream returned nil")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("ReadFrom did not return after its source closed")
	}
}

func TestIdleStreamIsResetAndBusyStreamIsNot(t *testing.T) {
	p := newPair(t, Config{}, Config{StreamIdleTimeout: 300 * time.Millisecond}, nil)
	idle, idleSrv := p.dial(t)
	defer idle.Close()
	defer idleSrv.Close()
	busy, busySrv := p.dial(t)
	defer busy.Close()
	defer busySrv.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				busy.Write([]byte("x"))
			}
		}
	}()
	go io.Copy(io.Discard, busySrv)
	idle.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := idle.Read(make([]byte, 1))
	if !errors.Is(err, ErrStreamReset) {
		t.Fatalf("idle stream read: %v, want a reset", err)
	}
	if _, err := busy.Write([]byte("still up")); err != nil {
		t.Fatalf("busy stream was closed too: %v", err)
	}
}

func TestIdleLinkIsClosed(t *testing.T) {
	// A stream counts until its handler has returned; this one returns
	// at once, and Serve closes the stream.
	p := newPair(t, Config{}, Config{LinkIdleTimeout: 200 * time.Millisecond}, func(ctx context.Context, req *Request, s *Stream) {
		s.Accept()
	})
	cs, err := p.client.Dial(context.Background(), "example.com:443", nil)
	if err != nil {
		t.Fatal(err)
	}
	cs.Close()
	select {
	case <-p.client.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("idle link was not closed")
	}
}

func TestWriteToATCPDestinationKeepsOrderAndCount(t *testing.T) {
	p := newPair(t, Config{StreamWindow: 1 << 18}, Config{StreamWindow: 1 << 18}, nil)
	cs, ss := p.dial(t)
	defer cs.Close()
	defer ss.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dst, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	reader, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	// The reader starts late, so the socket buffers fill and refuse some
	// writes: data then arrives both ways, written by the read loop and
	// queued for the relay goroutine.

	const size = 16 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i ^ i>>9 ^ i>>17)
	}
	go func() {
		for off := 0; off < size; off += 3000 { // uneven frames
			ss.Write(data[off:min(off+3000, size)])
		}
		ss.CloseWrite()
	}()
	copied := make(chan int64, 1)
	go func() {
		n, _ := cs.WriteTo(dst)
		dst.(*net.TCPConn).CloseWrite()
		copied <- n
	}()
	time.Sleep(100 * time.Millisecond) // let the socket buffers fill first
	h := sha256.New()
	got, err := io.Copy(h, reader)
	if err != nil || got != size {
		t.Fatalf("destination read %d, %v; want %d", got, err, size)
	}
	want := sha256.Sum256(data)
	if !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("data reordered or corrupted on the way to the TCP destination")
	}
	if n := <-copied; n != size {
		t.Fatalf("WriteTo reported %d bytes, want %d", n, size)
	}
}

// TestAStreamWhoseBudgetIsSpentDuringAGrantIsNotLeftWaiting spends a
// stream's budget right after run grants it, as the stream's writer may at
// that moment. The stream must get more credit while the windows have it:
// left waiting for a WINDOW_UPDATE that its peer, having nothing to give
// back, never sends, the writer would hang.
func TestAStreamWhoseBudgetIsSpentDuringAGrantIsNotLeftWaiting(t *testing.T) {
	p := newPair(t, Config{}, Config{}, nil)
	cs, ss := p.dial(t)
	defer cs.Close()
	defer ss.Close()
	var spent atomic.Int32
	testHookAfterGrant = func(s *Stream) {
		if s == cs && spent.Add(1) == 1 {
			s.take(s.budget.Load())
		}
	}
	defer func() { testHookAfterGrant = nil }()

	cs.SetWriteDeadline(time.Now().Add(5 * time.Second))
	msg := []byte("after a grant spent at once")
	if _, err := cs.Write(msg); err != nil {
		t.Fatalf("write after the first grant was spent: %v (the stream was left waiting with window to spare)", err)
	}
	if spent.Load() < 2 {
		t.Fatalf("%d grants; want the spent one and another", spent.Load())
	}
	got := make([]byte, len(msg))
	ss.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(ss, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("read %q, %v; want %q", got, err, msg)
	}
}
