package agent

import (
	"io"
	"net"

	"fluidity/internal/sockio"
)

// peekFirstByte returns the connection's first byte without consuming it
// where the OS allows, so the front-end gets the bare *net.TCPConn (whose
// reads then need no wrapper and no buffer while idle); elsewhere it reads
// the byte and returns a connection that gives it back on the first Read.
// It honours nc's read deadline.
func peekFirstByte(nc net.Conn) (byte, net.Conn, error) {
	if b, ok, err := sockio.PeekByte(nc); ok {
		return b, nc, err
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil {
		return 0, nil, err
	}
	return b[0], &prefixConn{Conn: nc, prefix: b[:]}, nil
}

type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection beneath, for relay.Abort.
func (c *prefixConn) NetConn() net.Conn { return c.Conn }

// CloseWrite half-closes when the underlying connection can.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
