package exit

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"fluidity/internal/metrics"
	"fluidity/internal/proxystatus"
	"fluidity/internal/relay"
)

// serveHTTP1 serves one HTTP/1.1 CONNECT request on a connection that
// negotiated http/1.1 (or no ALPN): the connection then becomes the tunnel.
// This is what clients such as `curl --proxy https://...` speak.
func (cc *clientConn) serveHTTP1(ctx context.Context, tc *tls.Conn) {
	defer tc.Close()
	stop := context.AfterFunc(ctx, func() { tc.Close() })
	defer stop()
	x := cc.newStream("")
	tc.SetReadDeadline(x.start.Add(cc.s.cfg.HeaderTimeout))
	lr := &io.LimitedReader{R: tc, N: int64(cc.s.cfg.MaxHeaderBytes)}
	br := bufio.NewReaderSize(lr, 4096)
	req, err := http.ReadRequest(br)
	if err != nil {
		switch {
		case lr.N == 0:
			writeHTTP1Error(tc, http.StatusRequestHeaderFieldsTooLarge, nil, "http_request_error",
				fmt.Sprintf("request header exceeds %d bytes", cc.s.cfg.MaxHeaderBytes))
		case errors.Is(err, io.EOF):
		default:
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				writeHTTP1Error(tc, http.StatusBadRequest, nil, "http_request_error", "malformed request: "+err.Error())
			}
		}
		x.end(metrics.ReasonBadRequest, 0, 0, fmt.Errorf("bad request: %w", err))
		return
	}
	if req.Method != http.MethodConnect {
		writeHTTP1Error(tc, http.StatusMethodNotAllowed, nil, "http_request_denied", "this is a CONNECT proxy: only CONNECT is served")
		x.target = req.Host
		x.end(metrics.ReasonBadRequest, 0, 0, fmt.Errorf("method %s not allowed", req.Method))
		return
	}
	authority := req.Host
	x.target = authority
	if _, port, err := net.SplitHostPort(authority); err != nil || port == "" {
		writeHTTP1Error(tc, http.StatusBadRequest, nil, "http_request_error", fmt.Sprintf("bad CONNECT authority %q: want host:port", authority))
		x.end(metrics.ReasonBadRequest, 0, 0, errors.New("bad authority"))
		return
	}
	identity, err := cc.authorize(ctx, req.Header)
	x.identity = identity
	if err != nil {
		status, typ := classify(err, http.StatusForbidden)
		writeHTTP1Error(tc, status, authHeader(status), typ, err.Error())
		x.end(metrics.ReasonAuthFailed, 0, 0, err)
		return
	}
	if identity != "" {
		release, refusal := cc.s.admitIdentity(identity)
		if refusal != nil {
			cc.refused(refusal)
			writeHTTP1Error(tc, refusal.status, nil, "connection_limit_reached", "fluidity exit: link refused: "+refusal.msg)
			return
		}
		defer release()
	}
	target, err := cc.dial(ctx, authority)
	if err != nil {
		reason := dialReason(ctx, err) // before the client has its answer
		status, typ := classify(err, http.StatusBadGateway)
		writeHTTP1Error(tc, status, nil, typ, err.Error())
		x.end(reason, 0, 0, err)
		return
	}
	x.started()
	if _, err := io.WriteString(tc, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		// The client left while the target was dialed.
		relay.Abort(target)
		x.end(metrics.ReasonCanceled, 0, 0, err)
		return
	}
	tc.SetReadDeadline(time.Time{})
	// Bytes the client sent after the request header are already in br.
	client := &bufferedConn{Conn: tc, r: io.MultiReader(io.LimitReader(br, int64(br.Buffered())), tc)}
	// The stream idle timeout covers HTTP/1.1 tunnels too: a silent
	// target and a client that left must not hold the link for ever.
	res := relay.PipeIdle(client, target, cc.s.cfg.Tunnel.StreamIdleTimeout)
	x.end(relayReason(res.Err), res.AToB, res.BToA, res.Err)
}

// bufferedConn reads from r (buffered bytes, then the connection).
type bufferedConn struct {
	*tls.Conn
	r io.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func writeHTTP1Error(w io.Writer, status int, h http.Header, errType, details string) {
	body := details + "\n"
	var extra strings.Builder
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&extra, "%s: %s\r\n", k, v)
		}
	}
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nProxy-Status: %s\r\n%sContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		status, http.StatusText(status), strings.ReplaceAll(proxystatus.Format(errType, details), "\n", " "), extra.String(), len(body), body)
}
