package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// The first bytes of a stream opened early reach the server before it has
// answered, and the answer and the target's data come back through Read.
func TestDialEarlyCarriesFirstBytesBeforeTheAnswer(t *testing.T) {
	first := make([]byte, 100<<10) // more than the initial windows: the rest goes by Write
	rand.Read(first)
	got := make(chan []byte, 1)
	p := newPair(t, Config{}, Config{}, func(ctx context.Context, req *Request, s *Stream) {
		// Read before answering: the data came with the request.
		b := make([]byte, len(first))
		if _, err := io.ReadFull(s, b); err != nil {
			got <- nil
			return
		}
		got <- b
		s.Accept()
		io.WriteString(s, "hello")
		s.CloseWrite()
		io.Copy(io.Discard, s)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := p.client.DialEarly(ctx, "example.com:443", nil, first)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if b := <-got; !bytes.Equal(b, first) {
		t.Fatalf("the server read %d bytes before answering, not the %d sent", len(b), len(first))
	}
	cs.CloseWrite()
	b, err := io.ReadAll(cs)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v; want hello", b, err)
	}
	if st, _, ok := cs.Answer(); !ok || st != http.StatusOK {
		t.Errorf("Answer: %d, %v; want 200", st, ok)
	}
}

// A stream opened early whose target is refused: the client's first read
// fails with the refusal, never with the refusal's body taken for data;
// the server drops what it received on the stream, and the stream leaves
// both sides' tables while the link carries on.
func TestDialEarlyRefusedDropsTheDataWithoutLeaking(t *testing.T) {
	var srv *Conn
	refused := make(chan int64, 1)
	p := newPair(t, Config{}, Config{}, func(ctx context.Context, req *Request, s *Stream) {
		srv = req.Conn
		if req.Authority != "refused.example:443" {
			s.Accept()
			io.Copy(s, s)
			return
		}
		// Wait until the early data is held by the stream, then refuse.
		select {
		case <-s.readWake:
		case <-ctx.Done():
		}
		refused <- s.BytesReceived()
		s.Reject(http.StatusBadGateway, "connection_refused", "connection refused")
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := p.client.DialEarly(ctx, "refused.example:443", nil, []byte("client hello"))
	if err != nil {
		t.Fatal(err)
	}
	if n := <-refused; n != int64(len("client hello")) {
		t.Fatalf("the server held %d bytes when it refused, want %d", n, len("client hello"))
	}
	_, err = cs.Read(make([]byte, 64))
	var de *DialError
	if !errors.As(err, &de) || de.Status != http.StatusBadGateway || de.Type != "connection_refused" {
		t.Fatalf("read: %v; want the 502 connection_refused refusal", err)
	}
	if _, err := cs.Read(make([]byte, 64)); !errors.As(err, &de) {
		t.Fatalf("second read: %v; want the refusal again", err)
	}
	cs.Abort()
	waitFor(t, "the refused stream leaves both sides", func() bool {
		return p.client.NumStreams() == 0 && srv.NumStreams() == 0
	})
	// The server's held data went back to the pool with the stream, and
	// the link serves the next stream.
	s2, err := p.client.DialEarly(ctx, "echo.example:443", nil, []byte("ping"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	b := make([]byte, 4)
	if _, err := io.ReadFull(s2, b); err != nil || string(b) != "ping" {
		t.Fatalf("echo after the refusal: %q, %v", b, err)
	}
}
