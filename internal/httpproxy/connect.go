package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	"fluidity/internal/fastopen"
	"fluidity/internal/relay"
)

const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// serveConnect serves a CONNECT request that came through net/http.
func (h *Handler) serveConnect(w http.ResponseWriter, r *http.Request) {
	h.connect(r, &hijackResponder{w: w})
}

// ServeConnect serves a CONNECT request that the caller read from conn
// itself, before any HTTP server took the connection: the answer goes
// straight to conn, and conn (a bare TCP connection, ideally) is relayed to
// the target, with no HTTP server buffers kept for the tunnel's lifetime.
// early holds bytes the client sent after the request head. ServeConnect
// closes conn. r.RemoteAddr should be set for the log line.
func (h *Handler) ServeConnect(conn net.Conn, r *http.Request, early []byte) {
	h.init()
	defer conn.Close()
	h.connect(r, &rawResponder{conn: conn, early: early})
}

// responder is how a CONNECT is answered: an error response, or the client
// connection taken over for relaying, with any bytes it already sent.
type responder interface {
	fail(status int, errType, body string)
	takeOver() (client net.Conn, early []byte, err error)
}

type hijackResponder struct{ w http.ResponseWriter }

func (hr *hijackResponder) fail(status int, errType, body string) {
	writeError(hr.w, status, errType, body)
}

func (hr *hijackResponder) takeOver() (net.Conn, []byte, error) {
	client, brw, err := http.NewResponseController(hr.w).Hijack()
	if err != nil {
		if !errors.Is(err, http.ErrHijacked) {
			writeError(hr.w, http.StatusInternalServerError, "", "fluidity: CONNECT is not supported on this connection")
		}
		return nil, nil, err
	}
	// Bytes the client sent right after its request (a TLS ClientHello,
	// often) may already sit in the server's read buffer.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ = brw.Reader.Peek(n)
	}
	return client, early, nil
}

type rawResponder struct {
	conn  net.Conn
	early []byte
}

func (rr *rawResponder) fail(status int, errType, body string) {
	resp := &http.Response{
		StatusCode: status, ProtoMajor: 1, ProtoMinor: 1,
		Header:        make(http.Header),
		ContentLength: int64(len(body) + 1),
		Body:          io.NopCloser(strings.NewReader(body + "\n")),
		Close:         true,
	}
	setErrorHeader(resp.Header, status, errType, body)
	resp.Write(rr.conn)
}

func (rr *rawResponder) takeOver() (net.Conn, []byte, error) { return rr.conn, rr.early, nil }

// connect dials the CONNECT target, takes over the client connection and
// relays it to the tunnel stream until both directions end.
func (h *Handler) connect(r *http.Request, resp responder) {
	x := newExchange(r, r.URL.Host)
	defer h.logEnd(x, "stream")

	target, err := parseAuthority(r.URL.Host)
	if err != nil {
		x.setStatus(http.StatusBadRequest)
		x.markBadRequest()
		x.fail(err)
		resp.fail(http.StatusBadRequest, "", "fluidity: "+err.Error())
		return
	}
	if !h.begin() {
		h.connectError(resp, x, errClosed)
		return
	}
	defer h.active.Done()
	ctx, cancel := h.requestContext(r)
	defer cancel()
	if h.FastOpen.Applies(target) {
		h.connectFast(ctx, target, resp, x)
		return
	}

	up, err := h.dial(ctx, "tcp", target)
	if err != nil {
		if h.isClosed() {
			err = errClosed
		}
		h.connectError(resp, x, err)
		return
	}
	client, early, err := resp.takeOver()
	if err != nil {
		up.Close()
		x.setStatus(http.StatusInternalServerError)
		x.fail(fmt.Errorf("take over client connection: %w", err))
		return
	}
	// From here on the connections are ours; Close or the end of the
	// request context ends them.
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		up.Close()
	})
	defer stop()
	x.setStatus(http.StatusOK)
	x.markConnected()

	if _, err := io.WriteString(client, connectEstablished); err != nil {
		client.Close()
		up.Close()
		x.fail(fmt.Errorf("write to client: %w", err))
		return
	}
	if len(early) > 0 {
		m, err := up.Write(early)
		x.up.Add(int64(m))
		if err != nil {
			client.Close()
			up.Close()
			x.fail(fmt.Errorf("write to target: %w", err))
			return
		}
	}
	res := relay.Pipe(client, up)
	x.up.Add(res.AToB)
	x.down.Add(res.BToA)
	if res.Err != nil {
		if h.isClosed() {
			x.fail(errClosed)
		}
		x.fail(res.Err)
	}
}

// connectFast serves a CONNECT optimistically: the client is answered at
// once and its first bytes go with the request for the tunnel. A refusal
// arrives as the tunnel's first read error: the relay then resets the
// client's connection, and the exchange records the refusal as its error.
func (h *Handler) connectFast(ctx context.Context, target string, resp responder, x *exchange) {
	client, early, err := resp.takeOver()
	if err != nil {
		x.setStatus(http.StatusInternalServerError)
		x.fail(fmt.Errorf("take over client connection: %w", err))
		return
	}
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	x.setStatus(http.StatusOK)
	if _, err := io.WriteString(client, connectEstablished); err != nil {
		client.Close()
		x.fail(fmt.Errorf("write to client: %w", err))
		return
	}
	first, err := fastopen.ReadFirst(client, early)
	if err != nil {
		client.Close()
		x.fail(fmt.Errorf("read from client: %w", err))
		return
	}
	up, err := h.FastOpen.Dial(ctx, "tcp", target, first)
	if err != nil {
		if h.isClosed() {
			err = errClosed
		}
		relay.Abort(client)
		x.fail(err)
		return
	}
	x.up.Add(int64(len(first)))
	stopUp := context.AfterFunc(ctx, func() { up.Close() })
	defer stopUp()
	x.markConnected()
	res := relay.Pipe(client, up)
	x.up.Add(res.AToB)
	x.down.Add(res.BToA)
	if res.Err != nil {
		if h.isClosed() {
			x.fail(errClosed)
		}
		// A refusal is why the tunnel failed, whatever the other direction
		// saw when it was aborted.
		var refusal statusCoder
		if errors.As(res.Err, &refusal) {
			if err, ok := refusal.(error); ok {
				x.fail(err)
			}
		}
		x.fail(res.Err)
	}
}

// connectError answers a CONNECT request that could not be served.
func (h *Handler) connectError(resp responder, x *exchange, err error) {
	status, errType := classify(err)
	x.setStatus(status)
	x.fail(err)
	resp.fail(status, errType, fmt.Sprintf("fluidity: cannot reach %s: %v", x.target, err))
}

// parseAuthority checks a CONNECT authority ("host:port", a numeric port
// from 1 to 65535) and returns it in canonical form.
func parseAuthority(authority string) (string, error) {
	if authority == "" {
		return "", errors.New("CONNECT needs a target of the form host:port")
	}
	host, port, err := net.SplitHostPort(authority)
	if err != nil {
		return "", fmt.Errorf("CONNECT target %q is not of the form host:port", authority)
	}
	if host == "" {
		return "", fmt.Errorf("CONNECT target %q has no host", authority)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("CONNECT target %q needs a numeric port from 1 to 65535", authority)
	}
	return net.JoinHostPort(host, strconv.FormatUint(n, 10)), nil
}
