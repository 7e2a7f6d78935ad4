// Package relay copies bytes both ways between two connections, with
// half-close: when one side finishes sending, the other side's write half is
// closed and the opposite direction keeps flowing until it ends too.
package relay

import (
	"errors"
	"io"
	"net"
	"sync"
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
	// or nil when both sides finished normally.
	Err error
}

// Pipe copies a→b and b→a until both directions have ended, then closes both
// connections. A clean end of one direction (io.EOF) half-closes the
// destination's write side when it supports CloseWrite. An error in either
// direction closes both connections at once, so the other direction cannot
// hang. Pipe uses the caller's goroutine for one direction and starts one
// goroutine for the other, which it waits for before returning.
func Pipe(a, b net.Conn) Result {
	var (
		wg     sync.WaitGroup
		bToA   int64
		errBA  error
		closed sync.Once
	)
	closeBoth := func() {
		closed.Do(func() {
			a.Close()
			b.Close()
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		bToA, errBA = copyHalf(a, b)
		if errBA != nil {
			closeBoth()
		}
	}()
	aToB, errAB := copyHalf(b, a)
	if errAB != nil {
		closeBoth()
	}
	wg.Wait()
	closeBoth()
	return Result{AToB: aToB, BToA: bToA, Err: errors.Join(errAB, errBA)}
}

// copyHalf copies src to dst until src ends, then closes dst's write half
// (or all of dst when it cannot half-close). It returns nil after a clean EOF.
func copyHalf(dst, src net.Conn) (int64, error) {
	n, err := Copy(dst, src)
	if err != nil {
		return n, err
	}
	if cw, ok := dst.(closeWriter); ok {
		if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
			return n, err
		}
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
