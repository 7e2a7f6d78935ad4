//go:build linux && !fluidity_portable

package tunnel

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fluidity/internal/wanemu"
)

// Window growth is backed by room in the destination socket's kernel
// buffer (sockio.Sink.Room), which only the Linux fast path measures: these
// tests need it.

// tcpConns is tcpPair's two ends as TCP connections.
func tcpConns(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	c, d := tcpPair(t)
	return c.(*net.TCPConn), d.(*net.TCPConn)
}

// queued is what the kernel holds of a loopback connection's data: unsent
// or unacknowledged at the sender a, unread at the receiver b.
func queued(t *testing.T, a, b *net.TCPConn) int64 {
	t.Helper()
	ioctl := func(c *net.TCPConn, req uint) int {
		rc, err := c.SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var n int
		var ierr error
		if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), req) }); err != nil || ierr != nil {
			t.Fatalf("ioctl: %v, %v", err, ierr)
		}
		return n
	}
	return int64(ioctl(a, unix.SIOCOUTQ) + ioctl(b, unix.SIOCINQ))
}

// echoOverLongPath opens a stream through a 40 ms relay to an echoing exit
// and keeps writing to it until the test ends; the echo is copied by
// WriteTo to dst, as the agent copies a download to its client.
func echoOverLongPath(t *testing.T, cfg Config, dst *net.TCPConn) *Stream {
	t.Helper()
	srvTLS, cliTLS := tlsPair(t)
	exit := echoExitTLS(t, srvTLS)
	relay, err := wanemu.New(exit, wanemu.Config{Delay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	c, err := NewClient(ClientConfig{Addr: relay.Addr(), TLS: cliTLS, Conn: cfg})
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
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 64<<10)
		for {
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	wg.Go(func() { s.WriteTo(dst) })
	t.Cleanup(func() {
		s.Close()
		dst.Close()
		wg.Wait()
	})
	return s
}

// readUntil reads from r until cond holds, failing after limit bytes.
func readUntil(t *testing.T, r io.Reader, limit int64, what string, cond func() bool) int64 {
	t.Helper()
	buf := make([]byte, 64<<10)
	var n int64
	for !cond() {
		k, err := r.Read(buf)
		n += int64(k)
		if err != nil {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		if n > limit {
			t.Fatalf("read %d bytes without %s", n, what)
		}
	}
	return n
}

// Over a long path a stream's window grows while its reader keeps up, so
// the window stops being the limit, and never beyond its cap.
func TestWindowGrowsOnALongPathWithinItsCap(t *testing.T) {
	const base = 256 << 10
	a, b := tcpConns(t)
	s := echoOverLongPath(t, Config{StreamWindow: base, MaxStreamWindow: 4 * base}, a)
	var most int64
	readUntil(t, b, 64<<20, "the window growing to its cap", func() bool {
		most = max(most, s.window.Load())
		if most > 4*base {
			t.Fatalf("window %d, beyond its cap %d", most, 4*base)
		}
		return most == 4*base
	})
}

// A reader that stalls after its window grew pins no more of our memory
// than the stream window, as a reader that stalls from the start does: the
// growth was backed by room in the destination's kernel buffer, which
// takes the credit in flight when the reader stops. Small socket buffers
// make that room smaller than the growth the cap allows, so the bound is
// the room, not the cap.
func TestStalledReaderAfterGrowthPinsNoMoreThanTheStreamWindow(t *testing.T) {
	const base = 256 << 10
	a, b := tcpConns(t)
	if err := a.SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := b.SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	s := echoOverLongPath(t, Config{StreamWindow: base, MaxStreamWindow: 8 * base}, a)
	read := readUntil(t, b, 64<<20, "the window growing", func() bool { return s.window.Load() > base })
	grown := s.window.Load()

	// The reader stalls. The peer spends all its credit, and the stream
	// writes what arrives to the socket until the kernel takes no more.
	waitFor(t, "the peer to spend its credit", func() bool { return s.BytesReceived() >= s.granted.Load() })
	deadline := time.Now().Add(5 * time.Second)
	for {
		held := s.BytesReceived() - read - queued(t, a, b)
		if held <= base {
			t.Logf("window grew to %d KiB; stalled, the stream holds %d KiB", grown>>10, held>>10)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a stalled stream whose window grew to %d KiB holds %d KiB, beyond the %d KiB stream window", grown>>10, held>>10, base>>10)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := s.BytesReceived(); got != s.granted.Load() {
		t.Errorf("received %d, granted %d: credit went back to a stalled stream", got, s.granted.Load())
	}
}
