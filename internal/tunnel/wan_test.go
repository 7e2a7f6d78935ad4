package tunnel

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"fluidity/internal/wanemu"
)

// echoExitTLS serves tunnel links on a loopback listener: every stream
// is accepted and echoed. It returns the exit's address.
func echoExitTLS(t *testing.T, srvTLS *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				tc := tls.Server(raw, srvTLS)
				if tc.HandshakeContext(ctx) != nil {
					raw.Close()
					return
				}
				Serve(ctx, tc, Config{}, func(ctx context.Context, req *Request, s *Stream) {
					if s.Accept() == nil {
						io.Copy(s, s)
						s.CloseWrite()
					}
				})
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		cancel()
		wg.Wait()
	})
	return ln.Addr().String()
}

// runUp runs c until the test ends, once its link is up.
func runUp(t *testing.T, c *Client) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the link to come up", func() bool { return c.Status().State == StateUp })
}

// A path that stalls for 5 s, as a congested or flaky hop does, leaves the
// link up with the default keep-alive settings, and an open stream loses
// no byte of what crossed the stall.
func TestLinkSurvivesAFiveSecondStallWithoutLosingAByte(t *testing.T) {
	if testing.Short() {
		t.Skip("a 5 s stall")
	}
	srvTLS, cliTLS := tlsPair(t)
	exit := echoExitTLS(t, srvTLS)
	relay, err := wanemu.New(exit, wanemu.Config{Delay: 5 * time.Millisecond, Rate: 50e6})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	c, err := NewClient(ClientConfig{Addr: relay.Addr(), TLS: cliTLS})
	if err != nil {
		t.Fatal(err)
	}
	runUp(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := c.Dial(ctx, "tcp", "echo.example:443")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := make([]byte, 8<<20)
	rand.Read(want)
	sent := make(chan error, 1)
	go func() {
		// The first half, a stall, the second half.
		_, err := s.Write(want[:len(want)/2])
		if err == nil {
			relay.Stall(5 * time.Second)
			_, err = s.Write(want[len(want)/2:])
		}
		sent <- err
	}()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatalf("reading the echo across the stall: %v", err)
	}
	if err := <-sent; err != nil {
		t.Fatalf("writing across the stall: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("the echo differs from what was sent")
	}
	if st := c.Status(); st.State != StateUp || st.Reconnects != 0 {
		t.Errorf("after the stall: state %s, %d reconnects; want the first link still up", st.State, st.Reconnects)
	}
}

// After the path changes under the link (every packet of the old
// connection lost for good, as when a laptop moves to another network),
// the first new stream waits for the PING deadline and one reconnect, and
// is then carried by the new link.
func TestFirstStreamAfterANetworkChangeWaitsForOneReconnect(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	exit := echoExitTLS(t, srvTLS)
	relay, err := wanemu.New(exit, wanemu.Config{Delay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	c, err := NewClient(ClientConfig{Addr: relay.Addr(), TLS: cliTLS,
		Conn: Config{PingInterval: 200 * time.Millisecond, PingTimeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	runUp(t, c)
	relay.Cut()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Dial(ctx, "tcp", "echo.example:443")
	if err != nil {
		t.Fatalf("the first stream after the change: %v", err)
	}
	defer s.Close()
	io.WriteString(s, "hello")
	b := make([]byte, 5)
	if _, err := io.ReadFull(s, b); err != nil || string(b) != "hello" {
		t.Fatalf("echo: %q, %v", b, err)
	}
	if st := c.Status(); st.Reconnects != 1 {
		t.Errorf("%d reconnects, want 1", st.Reconnects)
	}
}

// Over a long path a stream's window grows while its reader keeps up, so
// the window stops being the limit, and never beyond its cap.
func TestWindowGrowsOnALongPathWithinItsCap(t *testing.T) {
	srvTLS, cliTLS := tlsPair(t)
	exit := echoExitTLS(t, srvTLS)
	relay, err := wanemu.New(exit, wanemu.Config{Delay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	const base = 256 << 10
	c, err := NewClient(ClientConfig{Addr: relay.Addr(), TLS: cliTLS, Conn: Config{StreamWindow: base, MaxStreamWindow: 4 * base}})
	if err != nil {
		t.Fatal(err)
	}
	runUp(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := c.Dial(ctx, "tcp", "echo.example:443")
	if err != nil {
		t.Fatal(err)
	}
	s := conn.(*Stream)
	defer s.Close()
	want := make([]byte, 16<<20)
	rand.Read(want)
	go func() {
		s.Write(want)
		s.CloseWrite()
	}()
	// Most of the echo, then the window (while the stream is open: a
	// closed stream gives its growth back), then the rest.
	got := make([]byte, 12<<20)
	if _, err := io.ReadFull(s, got); err != nil {
		t.Fatal(err)
	}
	w := s.window.Load()
	rest, err := io.ReadAll(s)
	got = append(got, rest...)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes: got %d, %v", len(want), len(got), err)
	}
	if w <= base || w > 4*base {
		t.Errorf("window %d during a window-limited transfer over a 40 ms path; want more than %d and at most %d", w, base, 4*base)
	}
}
