package tunnel

import (
	"io"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// idleReader returns an idleRead for the TCP source r, reading into the
// buffer from offset off. When the socket has nothing the buffer goes back
// (put) before the goroutine parks, so an idle source pins no buffer, and
// no extra system call is spent on waiting. It returns nil for other
// sources.
func idleReader(r io.Reader, off int) idleRead {
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
				n, rerr = unix.Read(int(fd), (*buf)[off:])
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

// sinkOf returns the raw connection of a TCP destination, for the read
// loop's non-blocking writes (see Stream.deliver), or nil.
func sinkOf(w io.Writer) syscall.RawConn {
	tc, ok := w.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// tryWrite writes as much of p to rc as the socket takes now, without ever
// waiting: it returns the count written, and an error only for a failure
// other than a full socket buffer.
func tryWrite(rc syscall.RawConn, p []byte) (int, error) {
	var (
		n    int
		werr error
	)
	err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = unix.Write(int(fd), p)
			if werr != unix.EINTR {
				break
			}
		}
		return true // never wait: the caller keeps what did not fit
	})
	if n < 0 {
		n = 0
	}
	if err != nil {
		return n, err
	}
	if werr == unix.EAGAIN {
		werr = nil
	}
	return n, werr
}
