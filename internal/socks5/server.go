package socks5

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"fluidity/internal/fastopen"
	"fluidity/internal/relay"
)

// Server serves SOCKS5 clients, one connection at a time per ServeConn call.
// Its fields must not change once it is in use; it is safe for concurrent
// ServeConn calls.
type Server struct {
	// Dial connects to a target "host:port" over "tcp". A domain name is
	// passed unresolved. Errors are answered with ReplyFor. If nil, every
	// request is answered with GeneralFailure: there is no direct default,
	// so a missing tunnel never turns into a direct connection.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// FastOpen, if set, opens tunnels to the ports it names optimistically
	// (see package fastopen): the client's success reply goes at once,
	// with BND.ADDR 0.0.0.0:0, and a refused target reaches it as a reset
	// connection, with the reason in the log line.
	FastOpen *fastopen.Dialer

	// Logger receives one line per connection. If nil, nothing is logged.
	Logger *slog.Logger

	// HandshakeTimeout bounds the whole negotiation, from the first byte
	// to the request. If zero, 10s is used.
	HandshakeTimeout time.Duration

	// Hooks observe the connections, for metrics.
	Hooks Hooks
}

// Hooks let a Server's owner observe the connections it serves, for
// metrics and the access log. Every field is optional.
type Hooks struct {
	// Ended is called once per connection when it ends, on ServeConn's
	// goroutine, just before its log line. The reason it returns, if not
	// empty, is logged as the line's "reason" attribute.
	Ended func(Session) (reason string)
}

// Session describes an ended SOCKS5 connection.
type Session struct {
	Target     string // host:port asked for; "" if the negotiation failed
	BadRequest bool   // the negotiation failed: not SOCKS5, unsupported, too slow
	Canceled   bool   // the client left, or ServeConn's ctx ended, before the connection was set up
	Connected  bool   // the target was connected and the client told so
	Up, Down   int64  // bytes from the client to the target and back
	Err        error  // why it failed; nil for success
}

const defaultHandshakeTimeout = 10 * time.Second

var errNoDial = errors.New("socks5: Server.Dial is not set")

// Results logged for a connection.
const (
	resultOK        = "ok"
	resultHandshake = "handshake failed"
	resultCanceled  = "canceled"
	resultRelay     = "relay error"
)

// ServeConn serves one client connection whose first byte (0x05) has not
// been consumed yet: it negotiates, dials the target, replies, and relays
// both ways with relay.Pipe until both directions end. It closes conn before
// it returns. Cancelling ctx closes conn, which ends the negotiation or the
// dial, or aborts the relay (both connections).
//
// ServeConn logs exactly one line when the connection ends, with the
// client, the target, the bytes sent up (client to target) and down, the
// duration and the result: "ok", "handshake failed", the reply sent for a
// failed dial (e.g. "not allowed"), "canceled" or "relay error".
func (s *Server) ServeConn(ctx context.Context, conn net.Conn) {
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()

	var (
		target    string
		up, down  int64
		result    = resultOK
		err       error
		connected bool
		badReq    bool
	)
	defer func() {
		var reason string
		if s.Hooks.Ended != nil {
			reason = s.Hooks.Ended(Session{Target: target, BadRequest: badReq,
				Canceled: result == resultCanceled, Connected: connected, Up: up, Down: down, Err: err})
		}
		attrs := []slog.Attr{
			slog.String("client", conn.RemoteAddr().String()),
			slog.String("target", target),
			slog.Int64("up", up),
			slog.Int64("down", down),
			slog.Duration("duration", time.Since(start)),
			slog.String("result", result),
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		}
		if reason != "" {
			attrs = append(attrs, slog.String("reason", reason))
		}
		s.logger().LogAttrs(ctx, slog.LevelInfo, "socks5 connection", attrs...)
	}()

	timeout := s.handshakeTimeout()
	conn.SetDeadline(time.Now().Add(timeout))
	target, err = ReadRequest(conn)
	if err != nil {
		result = resultHandshake
		badReq = true
		if ctx.Err() != nil {
			result = resultCanceled
			badReq = false
		}
		return
	}
	// The dial may take long (an exit waking up); the client waits.
	conn.SetDeadline(time.Time{})

	var dst net.Conn
	if s.FastOpen.Applies(target) {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		if err = WriteReply(conn, Succeeded, netip.AddrPort{}); err != nil {
			result = resultCanceled
			return
		}
		conn.SetDeadline(time.Time{})
		connected = true
		var first []byte
		if first, err = fastopen.ReadFirst(conn, nil); err != nil {
			result = resultCanceled
			return
		}
		if dst, err = s.FastOpen.Dial(ctx, "tcp", target, first); err != nil {
			result = ReplyFor(err).String()
			if ctx.Err() != nil {
				result = resultCanceled
			}
			relay.Abort(conn)
			return
		}
		up = int64(len(first))
	} else if dst, err = s.dial(ctx, target); err != nil {
		reply := ReplyFor(err)
		result = reply.String()
		if ctx.Err() != nil {
			result = resultCanceled
		}
		conn.SetWriteDeadline(time.Now().Add(timeout))
		WriteReply(conn, reply, netip.AddrPort{})
		return
	}
	if !connected {
		conn.SetWriteDeadline(time.Now().Add(timeout))
		if err = WriteReply(conn, Succeeded, boundAddr(dst)); err != nil {
			// The client left before its reply: the target was reached, but
			// the connection was never set up.
			relay.Abort(dst)
			result = resultCanceled
			return
		}
		conn.SetDeadline(time.Time{})
		connected = true
	}

	// Cancelling ctx aborts the relay: both ends see a reset, and a copy
	// that waits on the target wakes too.
	stopRelay := context.AfterFunc(ctx, func() {
		relay.Abort(conn)
		relay.Abort(dst)
	})
	defer stopRelay()
	res := relay.Pipe(conn, dst)
	up, down, err = up+res.AToB, res.BToA, res.Err
	var refusal statusCoder
	switch {
	case ctx.Err() != nil:
		result = resultCanceled
	case err != nil && errors.As(err, &refusal):
		// A tunnel opened optimistically was refused: that is why it
		// failed, whatever the other direction saw when it was aborted.
		if rerr, ok := refusal.(error); ok {
			err = rerr
		}
		result = ReplyFor(err).String()
	case err != nil:
		result = resultRelay
	}
}

func (s *Server) dial(ctx context.Context, target string) (net.Conn, error) {
	if s.Dial == nil {
		return nil, errNoDial
	}
	c, err := s.Dial(ctx, "tcp", target)
	if err == nil && c == nil {
		err = errors.New("socks5: Dial returned no connection and no error")
	}
	return c, err
}

// boundAddr is the address to report as BND.ADDR: the local address of a
// direct TCP connection, or 0.0.0.0:0 when the connection goes through a
// tunnel and the exit's address is unknown here.
func boundAddr(c net.Conn) netip.AddrPort {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

func (s *Server) handshakeTimeout() time.Duration {
	if s.HandshakeTimeout > 0 {
		return s.HandshakeTimeout
	}
	return defaultHandshakeTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
