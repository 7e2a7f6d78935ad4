//go:build linux && !fluidity_portable

package sockio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const fast = true

// IdleReader returns an IdleRead for the TCP source r, reading into each
// buffer from offset off, or nil if r is not a TCP connection.
func IdleReader(r io.Reader, off int) IdleRead {
	tc, rc := tcpRawConn(r)
	if rc == nil {
		return nil
	}
	return func(get func() *[]byte, put func(*[]byte), mayPark func() bool) (*[]byte, int, error) {
		var (
			buf    *[]byte
			n      int
			rerr   error
			notNow bool // mayPark said no
		)
		err := rc.Read(func(fd uintptr) bool {
			buf = get()
			for {
				n, rerr = readNonBlocking(fd, (*buf)[off:])
				if rerr != unix.EINTR {
					break
				}
			}
			if rerr == unix.EAGAIN {
				put(buf)
				buf = nil
				if mayPark != nil && !mayPark() {
					notNow = true
					return true
				}
				return false
			}
			return true
		})
		switch {
		case notNow:
			return nil, 0, nil
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

type rawSink struct{ rc syscall.RawConn }

// SinkOf returns the TCP destination w as a Sink, or nil if it is not one.
func SinkOf(w io.Writer) Sink {
	_, rc := tcpRawConn(w)
	if rc == nil {
		return nil
	}
	return rawSink{rc}
}

func (s rawSink) TryWrite(p []byte) (int, error) {
	var (
		n    int
		werr error
	)
	err := s.rc.Write(func(fd uintptr) bool {
		for {
			n, werr = writeNonBlocking(fd, p)
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

// WriterOf returns a function that writes all of p to the TCP connection w,
// waiting for room as net.Conn.Write does (and honouring its deadline), but
// with raw system calls. It returns nil for other connections.
func WriterOf(w io.Writer) func(p []byte) (int, error) {
	tc, rc := tcpRawConn(w)
	if rc == nil {
		return nil
	}
	return func(p []byte) (int, error) {
		var (
			n    int
			werr error
		)
		err := rc.Write(func(fd uintptr) bool {
			for n < len(p) {
				k, e := writeNonBlocking(fd, p[n:])
				switch {
				case e == unix.EINTR:
					continue
				case e == unix.EAGAIN:
					return false // wait for room
				case e != nil:
					werr = e
					return true
				}
				n += k
			}
			return true
		})
		if err == nil && werr != nil {
			err = &net.OpError{Op: "write", Net: "tcp", Source: tc.LocalAddr(), Addr: tc.RemoteAddr(), Err: os.NewSyscallError("write", werr)}
		}
		return n, err
	}
}

// PeekByte returns the first byte a TCP connection holds without consuming
// it, honouring the connection's read deadline. ok is false when nc is not
// a TCP connection: the caller must then read the byte itself.
func PeekByte(nc net.Conn) (b byte, ok bool, err error) {
	tc, rc := tcpRawConn(nc)
	if tc == nil {
		return 0, false, nil
	}
	var buf [1]byte
	var n int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), buf[:], unix.MSG_PEEK)
		return !errors.Is(perr, unix.EAGAIN)
	})
	switch {
	case err != nil:
		return 0, true, err
	case perr != nil:
		return 0, true, perr
	case n == 0:
		return 0, true, io.EOF
	}
	return buf[0], true, nil
}

// tcpRawConn returns x as a TCP connection and its raw connection, or nils
// if it is something else.
func tcpRawConn(x any) (*net.TCPConn, syscall.RawConn) {
	tc, ok := x.(*net.TCPConn)
	if !ok {
		return nil, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil, nil
	}
	return tc, rc
}

// readNonBlocking and writeNonBlocking are read(2) and write(2) on a
// non-blocking socket. They never wait, so they are made as raw system
// calls: the Go scheduler is not told of them, and its monitor thread,
// which wakes every 20 µs while a system call is in progress somewhere, to
// hand the processor to another thread, can back off. On a tunnel busy with
// small messages that monitor otherwise takes a fifth of the CPU.
func readNonBlocking(fd uintptr, p []byte) (int, error) { return rawIO(syscall.SYS_READ, fd, p) }

func writeNonBlocking(fd uintptr, p []byte) (int, error) { return rawIO(syscall.SYS_WRITE, fd, p) }

func rawIO(trap, fd uintptr, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, errno := syscall.RawSyscall(trap, fd, uintptr(ptr), uintptr(len(p)))
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}
