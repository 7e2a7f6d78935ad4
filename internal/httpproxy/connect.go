package httpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"

	"fluidity/internal/relay"
)

const connectEstablished = "HTTP/1.1 200 Connection established\r\n\r\n"

// serveConnect dials the CONNECT target, takes over the client connection and
// relays it to the tunnel stream until both directions end.
func (h *Handler) serveConnect(w http.ResponseWriter, r *http.Request) {
	x := newExchange(r, r.URL.Host)
	defer x.logEnd(h.log, "stream")

	target, err := parseAuthority(r.URL.Host)
	if err != nil {
		x.setStatus(http.StatusBadRequest)
		x.fail(err)
		writeError(w, http.StatusBadRequest, "", "fluidity: "+err.Error())
		return
	}
	if !h.begin() {
		h.connectError(w, x, errClosed)
		return
	}
	defer h.active.Done()
	ctx, cancel := h.requestContext(r)
	defer cancel()

	up, err := h.dial(ctx, "tcp", target)
	if err != nil {
		if h.isClosed() {
			err = errClosed
		}
		h.connectError(w, x, err)
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		x.setStatus(http.StatusInternalServerError)
		x.fail(fmt.Errorf("take over client connection: %w", err))
		if !errors.Is(err, http.ErrHijacked) {
			writeError(w, http.StatusInternalServerError, "", "fluidity: CONNECT is not supported on this connection")
		}
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

	if _, err := io.WriteString(client, connectEstablished); err != nil {
		client.Close()
		up.Close()
		x.fail(fmt.Errorf("write to client: %w", err))
		return
	}
	// Bytes the client sent right after its request (a TLS ClientHello,
	// often) may already sit in the server's read buffer.
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
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

// connectError answers a CONNECT request that could not be served.
func (h *Handler) connectError(w http.ResponseWriter, x *exchange, err error) {
	status, errType := classify(err)
	x.setStatus(status)
	x.fail(err)
	writeError(w, status, errType, fmt.Sprintf("fluidity: cannot reach %s: %v", x.target, err))
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
