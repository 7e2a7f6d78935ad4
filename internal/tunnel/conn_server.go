package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
)

// The server side: requests open streams, each served by a handler in its
// own goroutine with its own context.

// refusal says why a request is answered without its handler.
type refusal uint8

const (
	serveHandler   refusal = iota
	refuseMethod           // not CONNECT: 405
	refuseTooLarge         // header block over MaxHeaderBytes: 431
)

// handleRequest opens a stream for a request HEADERS frame.
func (c *Conn) handleRequest(f *http2.MetaHeadersFrame) error {
	o := &c.own
	id := f.StreamID
	if id%2 == 0 {
		return connErrorf(http2.ErrCodeProtocol, "HEADERS on even stream %d", id)
	}
	if s := o.streams[id]; s != nil {
		return c.headersOnOpenStream(s, f)
	}
	if id <= o.maxPeerID {
		if c.recentlyReset(id) {
			return nil // sent before the peer saw our RST_STREAM
		}
		return connErrorf(http2.ErrCodeStreamClosed, "HEADERS on closed stream %d", id)
	}
	o.maxPeerID = id
	if f.Priority.StreamDep == id {
		c.resetByID(id, http2.ErrCodeProtocol, "stream depends on itself")
		return nil
	}
	if o.goingAway {
		c.resetByID(id, http2.ErrCodeRefusedStream, "going away")
		return nil
	}
	if o.slots >= c.cfg.MaxStreams {
		// Streams count until their handlers have returned, so a peer
		// that resets streams as fast as it opens them gets no more
		// handlers at once than the limit; asking again and again for
		// more is abuse.
		if !o.resets.take(time.Now()) {
			return connErrorf(http2.ErrCodeEnhanceYourCalm, "too many streams refused: more than %d open or still being served", c.cfg.MaxStreams)
		}
		c.log.Warn("stream refused: too many open streams", "remote", c.nc.RemoteAddr().String(), "limit", c.cfg.MaxStreams)
		c.resetByID(id, http2.ErrCodeRefusedStream, "too many streams")
		return nil
	}
	why := serveHandler
	method := f.PseudoValue("method")
	if !f.Truncated {
		if reason := malformedRequest(f); reason != "" {
			c.resetByID(id, http2.ErrCodeProtocol, reason)
			return nil
		}
		if method != http.MethodConnect {
			why = refuseMethod
		}
	} else {
		why = refuseTooLarge
	}
	s := newStream(c)
	s.id = id
	s.opened.Store(true)
	s.state = stateOpen
	s.sendWindow = o.peerInitWindow
	s.recvWindow = int64(c.cfg.StreamWindow)
	s.window.Store(s.recvWindow)
	s.isConnect = method == http.MethodConnect
	s.ctx, s.cancel = context.WithCancel(c.baseCtx)
	s.slotHeld = true
	o.slots++
	c.addStream(s)
	req := &Request{
		Method:    method,
		Authority: f.PseudoValue("authority"),
		Header:    make(http.Header),
		Conn:      c,
	}
	for _, hf := range f.RegularFields() {
		req.Header.Add(hf.Name, hf.Value)
	}
	if !s.isConnect {
		if v := req.Header.Get("Content-Length"); v != "" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
				s.declLen = n
			}
		}
	}
	if f.StreamEnded() {
		if s.declLen > 0 {
			c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "no body, content-length %d", s.declLen))
		} else {
			c.endOfStream(s)
		}
	}
	c.handlers.Add(1)
	go c.serveStream(req, s, why)
	return nil
}

// connectionHeaders are the connection-specific header fields that make a
// request malformed (RFC 9113 §8.2.2).
var connectionHeaders = []string{"connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"}

// malformedRequest says why a request is malformed (RFC 9113 §8.1.1,
// §8.2.2, §8.3, §8.5), or "".
func malformedRequest(f *http2.MetaHeadersFrame) string {
	method := f.PseudoValue("method")
	path, scheme := f.PseudoValue("path"), f.PseudoValue("scheme")
	switch {
	case method == "":
		return "no :method"
	case f.PseudoValue("protocol") != "":
		return "extended CONNECT is not supported"
	case method == http.MethodConnect && (path != "" || scheme != ""):
		return "CONNECT must carry only :method and :authority"
	case method == http.MethodConnect && f.PseudoValue("authority") == "":
		return "CONNECT without :authority"
	case method != http.MethodConnect && (path == "" || scheme == ""):
		return "request without :path or :scheme"
	}
	for _, hf := range f.RegularFields() {
		for _, name := range connectionHeaders {
			if hf.Name == name {
				return "connection-specific header field " + name
			}
		}
		if hf.Name == "te" && hf.Value != "trailers" {
			return `te other than "trailers"`
		}
	}
	return ""
}

// headersOnOpenStream handles HEADERS on a stream the peer already opened:
// never allowed on a CONNECT stream (RFC 9113 §8.5), trailers on another.
func (c *Conn) headersOnOpenStream(s *Stream, f *http2.MetaHeadersFrame) error {
	switch {
	case s.state == stateHalfClosedRemote:
		c.resetStream(s, http2.ErrCodeStreamClosed, streamErrorf(http2.ErrCodeStreamClosed, "HEADERS after END_STREAM"))
	case s.isConnect:
		c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "HEADERS on a CONNECT stream"))
	case !f.StreamEnded() || len(f.PseudoFields()) > 0:
		c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "bad trailers"))
	case s.declLen >= 0 && s.gotLen != s.declLen:
		c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "body length differs from content-length %d", s.declLen))
	default:
		c.endOfStream(s)
	}
	return nil
}

// releaseSlot frees a server stream's slot once it has closed and its
// handler has returned.
func (c *Conn) releaseSlot(s *Stream) {
	if s.slotHeld && s.state == stateClosed && s.handlerDone {
		s.slotHeld = false
		c.own.slots--
		c.checkDrained()
	}
}

// serveStream runs the handler of one request, in its own goroutine.
func (c *Conn) serveStream(req *Request, s *Stream, why refusal) {
	defer c.handlers.Done()
	defer func() {
		s.Close()
		s.cancel()
		c.post(request{kind: reqHandlerDone, s: s})
	}()
	switch why {
	case refuseMethod:
		s.Reject(http.StatusMethodNotAllowed, "http_request_denied", "this is a CONNECT proxy: only CONNECT is served")
		return
	case refuseTooLarge:
		s.Reject(http.StatusRequestHeaderFieldsTooLarge, "http_request_error", fmt.Sprintf("request header exceeds %d bytes", c.cfg.MaxHeaderBytes))
		return
	}
	if _, port, err := net.SplitHostPort(req.Authority); err != nil || port == "" || strings.ContainsAny(req.Authority, "/?#@") {
		s.Reject(http.StatusBadRequest, "http_request_error", fmt.Sprintf("bad CONNECT authority %q: want host:port", req.Authority))
		return
	}
	c.handler(s.ctx, req, s)
	if !s.responded.Load() {
		s.Reject(http.StatusBadGateway, "proxy_internal_error", "request not answered")
	}
}
