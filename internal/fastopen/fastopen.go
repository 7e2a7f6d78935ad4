// Package fastopen opens tunnels optimistically: for a target port where
// the client speaks first (TLS on 443 above all), a front-end answers its
// client at once, reads the client's first bytes and hands them to a Dial
// that sends them together with the request for the tunnel, without
// waiting for the exit to reach the target. A new HTTPS connection then
// costs one round trip to the exit fewer.
//
// The price is the answer: the client is told the tunnel is up before it
// is, so a refused or unreachable target reaches it as a connection that
// closes (reset), not as a 403 or 502. The proxy's log line and its
// metrics still say why. Plain HTTP proxy requests never take this path.
package fastopen

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
)

// DefaultPorts are the ports fast open applies to if none are configured:
// HTTPS, where every client sends a TLS ClientHello first.
var DefaultPorts = []int{443}

// Dialer opens tunnels optimistically to the ports where the client speaks
// first. A nil *Dialer opens none.
type Dialer struct {
	// Ports are the target ports where clients speak first. If empty,
	// DefaultPorts.
	Ports []int
	// Dial opens a tunnel to addr carrying first, without waiting for the
	// exit's answer; a refusal fails the connection's first read.
	Dial func(ctx context.Context, network, addr string, first []byte) (net.Conn, error)
	// Ready, if set, says whether fast open may be used now for addr. The
	// agent says no while no link to the exit is up (a request then waits
	// for the link anyway, so nothing is saved, and if none comes the
	// client gets a clear refusal rather than a closed connection), and
	// for targets its split-routing rules send direct, which no tunnel
	// carries.
	Ready func(addr string) bool
}

// Applies reports whether a tunnel to addr ("host:port") is opened
// optimistically.
func (d *Dialer) Applies(addr string) bool {
	if d == nil || d.Dial == nil || d.Ready != nil && !d.Ready(addr) {
		return false
	}
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return false
	}
	ports := d.Ports
	if len(ports) == 0 {
		ports = DefaultPorts
	}
	return slices.Contains(ports, port)
}

// FirstWait is how long ReadFirst waits for a client's first bytes after
// it was told its tunnel is up. A client on a port where clients speak
// first sends them at once (a local round trip); one that does not gets
// its tunnel opened without them when the wait is over.
const FirstWait = 100 * time.Millisecond

// firstMax is the most ReadFirst reads: a TLS record, which holds a
// ClientHello.
const firstMax = 16 << 10

// ReadFirst returns what a client sends first after it was answered:
// early (bytes that came with its request) if there are any, else what
// one read brings within FirstWait, which may be nothing. It returns an
// error only if the client's connection failed; an EOF (the client sent
// nothing and closed its side) gives no bytes and no error, for the relay
// to find again.
func ReadFirst(conn net.Conn, early []byte) ([]byte, error) {
	if len(early) > 0 {
		return early, nil
	}
	conn.SetReadDeadline(time.Now().Add(FirstWait))
	buf := make([]byte, firstMax)
	n, err := conn.Read(buf)
	conn.SetReadDeadline(time.Time{})
	switch {
	case err == nil, n > 0:
		return buf[:n], nil
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, io.EOF):
		return nil, nil
	}
	return nil, err
}
