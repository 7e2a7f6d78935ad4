package wanemu

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newRelay(t *testing.T, target string, cfg Config) *Relay {
	t.Helper()
	r, err := New(target, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A new HTTPS request straight to a server through the relay costs what it
// costs on a real path: one round trip for TCP's handshake, one for TLS
// 1.3's, one for the request. The work of the processes on this machine,
// which the relay does not delay, is measured by the same request through
// a relay without delay, and taken off: a loaded machine slows both alike.
// The lower bound holds whatever the machine's load.
func TestDirectHTTPSTakesThreeRoundTrips(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}))
	srv.TLS = &tls.Config{MinVersion: tls.VersionTLS13}
	srv.StartTLS()
	defer srv.Close()
	roots := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	request := func(delay time.Duration) time.Duration {
		t.Helper()
		r := newRelay(t, srv.Listener.Addr().String(), Config{Delay: delay})
		start := time.Now()
		nc, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(nc, &tls.Config{RootCAs: roots, ServerName: "example.com"})
		defer tc.Close()
		io.WriteString(tc, "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return time.Since(start)
	}
	const delay = 200 * time.Millisecond
	rtt := 2 * delay
	base := min(request(0), request(0))
	elapsed := request(delay)
	got := int(math.Round(float64(elapsed-base) / float64(rtt)))
	if elapsed < 3*rtt || got != 3 {
		t.Errorf("a new HTTPS request took %v (%v without the delay): %d round trips of %v, want 3", elapsed, base, got, rtt)
	}
}

// Bytes leave at the path's rate: a megabyte at 4 MB/s takes at least a
// quarter of a second plus the delay, and arrives whole and in order.
func TestRateLimitsThroughput(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		got <- b
	}()
	const delay = 10 * time.Millisecond
	r := newRelay(t, ln.Addr().String(), Config{Delay: delay, Rate: 4e6})
	want := make([]byte, 1e6)
	rand.Read(want)
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	b := <-got
	elapsed := time.Since(start)
	c.Close()
	if !bytes.Equal(b, want) {
		t.Fatalf("received %d bytes, not the %d sent", len(b), len(want))
	}
	if min := 250*time.Millisecond + delay; elapsed < min {
		t.Errorf("1 MB at 4 MB/s arrived after %v, before %v", elapsed, min)
	}
}

// A stall holds what is in flight and loses nothing: an echo across a
// stall comes back whole, after the stall.
func TestStallHoldsAndLosesNothing(t *testing.T) {
	r := newRelay(t, echoServer(t), Config{Delay: time.Millisecond})
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const stall = 300 * time.Millisecond
	r.Stall(stall)
	if elapsed := echoWhole(t, c, 256<<10); elapsed < stall-10*time.Millisecond {
		t.Errorf("the echo came back after %v, inside a stall of %v", elapsed, stall)
	}
}

// echoWhole sends n random bytes on c, an echoed connection, checks that
// the same bytes come back, and returns how long that took.
func echoWhole(t *testing.T, c net.Conn, n int) time.Duration {
	t.Helper()
	want := make([]byte, n)
	rand.Read(want)
	start := time.Now()
	go c.Write(want)
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the echo differs from what was sent")
	}
	return time.Since(start)
}

// echoServer accepts connections and echoes each, until the test ends.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// A stall of one connection holds that connection only: while it lasts,
// another connection's echo, sent after the stalled one's, comes back,
// and the stalled one's has not.
func TestStallConnHoldsOnlyThatConnection(t *testing.T) {
	r := newRelay(t, echoServer(t), Config{Delay: time.Millisecond})
	var conns [2]net.Conn
	for i := range conns {
		c, err := net.Dial("tcp", r.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// One echo first: the relay has then taken the connection in.
		if _, err := c.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	stalled, other := conns[0], conns[1]
	if !r.StallConn(stalled.LocalAddr(), time.Hour) {
		t.Fatal("StallConn found no connection from the client's address")
	}
	if _, err := stalled.Write([]byte("stalled")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Write([]byte("flowing")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("flowing"))
	if _, err := io.ReadFull(other, got); err != nil || string(got) != "flowing" {
		t.Fatalf("the other connection's echo: %q, %v", got, err)
	}
	// The stall lasts an hour: anything read now came through it.
	stalled.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if n, err := stalled.Read(make([]byte, 16)); n > 0 || err == nil {
		t.Fatalf("the stalled connection delivered %d bytes", n)
	}
}

// Loss inside connections (StallFor, StallBytes) holds and loses nothing:
// an echo of 1 MiB, about 32 losses at one in 64 KiB, comes back whole,
// and at least one stall later than it would without them.
func TestLossStallsHoldAndLoseNothing(t *testing.T) {
	const stall = 50 * time.Millisecond
	r := newRelay(t, echoServer(t), Config{Delay: time.Millisecond, StallFor: stall, StallBytes: 64 << 10})
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if elapsed := echoWhole(t, c, 1<<20); elapsed < stall {
		t.Errorf("the echo came back after %v, less than one stall of %v", elapsed, stall)
	}
}

// A refused target is a reset for the client, never an open connection.
func TestRefusedTargetResetsTheClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := newRelay(t, addr, Config{Delay: time.Millisecond})
	c, err := net.Dial("tcp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read from a connection to a refused target succeeded")
	}
}
