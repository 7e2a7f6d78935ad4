package agent

import (
	"errors"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// peekFirstByte returns the connection's first byte without consuming it,
// so the front-end gets the bare *net.TCPConn (whose reads then need no
// wrapper and no buffer while idle). It honours nc's read deadline.
func peekFirstByte(nc net.Conn) (byte, net.Conn, error) {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return peekWrapped(nc)
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return peekWrapped(nc)
	}
	var b [1]byte
	var n int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, perr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK)
		return !errors.Is(perr, unix.EAGAIN)
	})
	switch {
	case err != nil:
		return 0, nil, err
	case perr != nil:
		return 0, nil, perr
	case n == 0:
		return 0, nil, io.EOF
	}
	return b[0], nc, nil
}
