package tunnel

import (
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// readinessWaiter returns a function that blocks until the TCP source r
// has something to read (data, EOF or an error), without a buffer: the
// socket is peeked with MSG_PEEK. beforeBlock runs once if the wait is going
// to block. It returns nil for other sources.
func readinessWaiter(r io.Reader) func(beforeBlock func()) error {
	tc, ok := r.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(beforeBlock func()) error {
		var b [1]byte
		return rc.Read(func(fd uintptr) bool {
			_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err == unix.EAGAIN {
				if beforeBlock != nil {
					beforeBlock()
					beforeBlock = nil
				}
				return false
			}
			return true
		})
	}
}
