package httpproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"strings"

	"fluidity/internal/relay"
)

// serveForward forwards an absolute-URI request to its origin through the
// reverse proxy.
func (h *Handler) serveForward(w http.ResponseWriter, r *http.Request) {
	port := r.URL.Port()
	if port == "" {
		port = defaultPort(r.URL.Scheme)
	}
	x := newExchange(r, net.JoinHostPort(r.URL.Hostname(), port))
	rw := &responseWriter{ResponseWriter: w, x: x}
	defer func() {
		// The reverse proxy aborts with a panic when the response body
		// breaks off (the target or its tunnel reset, the client left).
		// The client must see that as an abort, never as the end of a
		// response delimited by the close: its connection is taken over
		// and reset. Any other panic goes on to the server.
		v := recover()
		if v != nil {
			x.fail(fmt.Errorf("aborted: %v", v))
		}
		abort := v == http.ErrAbortHandler && !rw.hijacked
		if abort {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				relay.Abort(conn)
			} else {
				abort = false
			}
		}
		h.logEnd(x, "request")
		if v != nil && !abort {
			panic(v)
		}
	}()

	// Upgraded connections are taken over from the server, so Close must
	// wait for them like for tunnels.
	if hasToken(r.Header["Connection"], "upgrade") {
		if !h.begin() {
			h.forwardError(rw, r, errClosed)
			return
		}
		defer h.active.Done()
	} else if h.isClosed() {
		h.forwardError(rw, r, errClosed)
		return
	}

	ctx, cancel := h.requestContext(r)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { x.upstream.Store(&info.Conn) },
	})
	out := r.WithContext(context.WithValue(ctx, exchangeKey{}, x))
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = &countingBody{ReadCloser: r.Body, x: x}
	}
	// Let the origin answer while the client is still sending, as it would
	// without a proxy in between.
	_ = http.NewResponseController(w).EnableFullDuplex()
	h.proxy.ServeHTTP(rw, out)
}

// rewrite prepares the outbound request. The reverse proxy has already
// removed the hop-by-hop headers and the client's Forwarded and X-Forwarded-*
// headers; rewrite adds none back.
func rewrite(pr *httputil.ProxyRequest) {
	switch strings.ToLower(pr.Out.URL.Scheme) {
	case "ws", "http":
		pr.Out.URL.Scheme = "http"
	case "wss", "https":
		pr.Out.URL.Scheme = "https"
	}
	for k := range pr.Out.Header {
		if len(k) >= len("Proxy-") && strings.EqualFold(k[:len("Proxy-")], "Proxy-") {
			delete(pr.Out.Header, k)
		}
	}
	// Share the inbound trailer map, which the server fills in when the
	// body ends, so request trailers reach the origin (Clone copied the
	// map while it was still empty).
	pr.Out.Trailer = pr.In.Trailer
}

// modifyResponse counts the bytes of the response body, or of both
// directions of an upgraded connection.
func modifyResponse(res *http.Response) error {
	x := exchangeFrom(res.Request.Context())
	if x == nil {
		return nil
	}
	x.markConnected()
	if rwc, ok := res.Body.(io.ReadWriteCloser); ok && res.StatusCode == http.StatusSwitchingProtocols {
		res.Body = &countingConn{ReadWriteCloser: rwc, x: x}
		return nil
	}
	res.Body = &countingBody{ReadCloser: res.Body, x: x, down: true}
	return nil
}

// forwardError answers a forwarded request that failed before its response
// started.
func (h *Handler) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	if h.isClosed() {
		err = errClosed
	}
	status, errType := classify(err)
	rw, _ := w.(*responseWriter)
	if rw == nil {
		writeError(w, status, errType, fmt.Sprintf("fluidity: %v", err))
		return
	}
	rw.x.fail(err)
	if rw.hijacked || rw.wroteHeader {
		return // too late to answer
	}
	writeError(rw, status, errType, fmt.Sprintf("fluidity: request to %s failed: %v", rw.x.target, err))
}

// responseWriter records the status the client gets and whether the
// connection was taken over. Its fields are owned by the handler goroutine.
type responseWriter struct {
	http.ResponseWriter
	x           *exchange
	wroteHeader bool
	hijacked    bool
}

func (w *responseWriter) WriteHeader(code int) {
	if code == http.StatusContinue {
		// The origin's 100 Continue makes the transport read the
		// request body, and that first read sends the client a 100
		// Continue of its own; passing this one on too would send two.
		return
	}
	// Other informational responses (103 Early Hints) come from the
	// transport's goroutine and are passed on untouched.
	if code >= 200 && !w.wroteHeader {
		w.wroteHeader = true
		w.x.setStatus(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.wroteHeader = true
		w.x.setStatus(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	if err == nil {
		// Each piece of the body goes to the client as it comes from the
		// origin, with the header in the same write the first time.
		err = http.NewResponseController(w.ResponseWriter).Flush()
	}
	if err != nil {
		w.x.fail(fmt.Errorf("write to client: %w", err))
	}
	return n, err
}

// Hijack lets the reverse proxy take over the connection for a protocol
// upgrade.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
		w.x.setStatus(http.StatusSwitchingProtocols)
	}
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach Flush and the rest.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts the bytes read from a request body (up) or a response
// body (down) and records the first read error.
type countingBody struct {
	io.ReadCloser
	x    *exchange
	down bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.down {
		b.x.down.Add(int64(n))
	} else {
		b.x.up.Add(int64(n))
	}
	if err != nil && err != io.EOF {
		if b.down {
			b.x.fail(fmt.Errorf("read from target: %w", err))
		} else if c := b.x.upstream.Load(); c != nil {
			// The client's request body broke off (it reset or left):
			// the target sees an abort too, not the end of a request.
			b.x.fail(fmt.Errorf("read from client: %w", err))
			relay.Abort(*c)
		}
	}
	return n, err
}

// countingConn counts both directions of an upgraded upstream connection.
type countingConn struct {
	io.ReadWriteCloser
	x *exchange
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	c.x.down.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	c.x.up.Add(int64(n))
	return n, err
}

// CloseWrite passes the client's half-close on to the target.
func (c *countingConn) CloseWrite() error {
	if cw, ok := c.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// hasToken reports whether the comma-separated header values contain token,
// compared without regard to case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
