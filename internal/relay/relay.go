// Package relay copies bytes both ways between two connections, with
// half-close: when one side finishes sending, the other side's write half is
// closed and the opposite direction keeps flowing until it ends too. An
// abort stays an abort: when either side fails (a TCP reset, a reset tunnel
// stream, a lost link), both are aborted, so each end sees a reset and never
// takes a truncated stream for a complete one (RFC 9113 §8.5).
package relay

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// closeWriter is implemented by *net.TCPConn, *tls.Conn, tunnel streams and
// anything else that can close its write half.
type closeWriter interface {
	CloseWrite() error
}

// Result reports what a Pipe moved and why it ended.
type Result struct {
	AToB, BToA int64 // bytes copied from a to b and from b to a
	// Err is the first error other than a clean EOF in either direction,
	// or nil when both sides finished normally. When it is set, both
	// connections were aborted.
	Err error
}

// Pipe copies a→b and b→a until both directions have ended, then closes both
// connections. A clean end of one direction (io.EOF) half-closes the
// destination's write side when it supports CloseWrite. An error in either
// direction aborts both connections at once (see Abort), so the other
// direction cannot hang and neither end mistakes the failure for a clean
// end. Pipe uses the caller's goroutine for one direction and starts one
// goroutine for the other, which it waits for before returning.
func Pipe(a, b net.Conn) Result {
	var (
		wg      sync.WaitGroup
		bToA    int64
		errBA   error
		aborted sync.Once
	)
	abortBoth := func() {
		aborted.Do(func() {
			Abort(a)
			Abort(b)
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		bToA, errBA = copyHalf(a, b)
		if errBA != nil {
			abortBoth()
		}
	}()
	aToB, errAB := copyHalf(b, a)
	if errAB != nil {
		abortBoth()
	}
	wg.Wait()
	err := errors.Join(errAB, errBA)
	if err == nil {
		a.Close()
		b.Close()
	}
	return Result{AToB: aToB, BToA: bToA, Err: err}
}

// ErrIdle is the error of a Pipe ended by its idle timeout.
var ErrIdle = errors.New("idle timeout")

// PipeIdle is Pipe that aborts both connections, and reports ErrIdle, once
// no byte has moved either way for idle. If idle is zero it is Pipe. A
// goroutine watches the connections meanwhile, waking a few times per
// timeout; the connections are wrapped, so it suits paths where neither
// end needs the other to be a *net.TCPConn (HTTP/1.1 CONNECT on the exit).
func PipeIdle(a, b net.Conn, idle time.Duration) Result {
	if idle <= 0 {
		return Pipe(a, b)
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	done := make(chan struct{})
	timedOut := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(max(idle/4, 10*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				if now.Sub(time.Unix(0, last.Load())) >= idle {
					close(timedOut)
					Abort(a)
					Abort(b)
					return
				}
			}
		}
	}()
	res := Pipe(&activeConn{Conn: a, last: &last}, &activeConn{Conn: b, last: &last})
	close(done)
	wg.Wait()
	select {
	case <-timedOut:
		res.Err = fmt.Errorf("%w: nothing sent or received for %v", ErrIdle, idle)
	default:
	}
	return res
}

// activeConn records the time of each read and write that moved bytes.
type activeConn struct {
	net.Conn
	last *atomic.Int64
}

func (c *activeConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *activeConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *activeConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *activeConn) NetConn() net.Conn { return c.Conn }

// copyHalf copies src to dst until src ends, then closes dst's write half
// (or all of dst when it cannot half-close). It returns nil after a clean
// EOF. A failure to half-close is not an error of the copy: the peer may
// have closed its side already, and if the connection broke the other
// direction says so.
func copyHalf(dst, src net.Conn) (int64, error) {
	n, err := Copy(dst, src)
	if err != nil {
		return n, err
	}
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
		return n, nil
	}
	return n, dst.Close()
}

// Copy is io.Copy that prefers dst's ReadFrom over src's WriteTo: a tunnel
// stream's ReadFrom reads straight into its frame buffers, while
// (*net.TCPConn).WriteTo would hide the TCP source from it behind a wrapper.
func Copy(dst io.Writer, src io.Reader) (int64, error) {
	if rf, ok := dst.(io.ReaderFrom); ok {
		if _, isTCP := dst.(*net.TCPConn); !isTCP {
			return rf.ReadFrom(src)
		}
	}
	return io.Copy(dst, src)
}

// aborter is implemented by tunnel streams: Abort resets the stream.
type aborter interface {
	Abort() error
}

// Abort closes c as a failed connection rather than a finished one: a
// tunnel stream (anything with an Abort method) is reset; a TCP
// connection, bare or beneath wrappers that expose it with NetConn (TLS),
// is closed with SO_LINGER 0, so its peer gets a TCP reset instead of a
// FIN (and a TLS peer no close_notify). Anything else is closed.
func Abort(c net.Conn) error {
	for inner := c; ; {
		switch x := inner.(type) {
		case aborter:
			err := x.Abort()
			if inner != c {
				c.Close()
			}
			return err
		case *net.TCPConn:
			x.SetLinger(0)
			err := x.Close()
			if inner != c {
				c.Close()
			}
			return err
		case interface{ NetConn() net.Conn }:
			if next := x.NetConn(); next != nil && next != inner {
				inner = next
				continue
			}
		}
		return c.Close()
	}
}
