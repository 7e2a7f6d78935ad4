package tunnel

import (
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// idleReader returns a function that reads from the TCP source r into a
// buffer it takes from get only for the read attempt: when the socket has
// nothing, the buffer goes back (put) before the goroutine parks, so an idle
// source pins no buffer, and no extra system call is spent on waiting.
// beforeBlock runs once before the first park. It returns nil for other
// sources.
func idleReader(r io.Reader) func(get func() *[]byte, put func(*[]byte), beforeBlock func()) (*[]byte, int, error) {
	tc, ok := r.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func(get func() *[]byte, put func(*[]byte), beforeBlock func()) (*[]byte, int, error) {
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		err := rc.Read(func(fd uintptr) bool {
			buf = get()
			for {
				n, rerr = unix.Read(int(fd), (*buf)[frameHeaderLen:])
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				put(buf)
				buf = nil
				if beforeBlock != nil {
					beforeBlock()
					beforeBlock = nil
				}
				return false
			}
			return true
		})
		switch {
		case err != nil:
			if buf != nil {
				put(buf)
			}
			return nil, 0, err
		case rerr != nil:
			put(buf)
			return nil, 0, &net.OpError{Op: "read", Net: "tcp", Source: tc.LocalAddr(), Addr: tc.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
		case n == 0:
			put(buf)
			return nil, 0, io.EOF
		}
		return buf, n, nil
	}
}
