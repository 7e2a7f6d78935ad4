package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"fluidity/internal/proxystatus"
)

// The client side: Dial opens a stream and waits for the answer.

// maxStreamID is the largest stream ID (RFC 9113 §5.1.1).
const maxStreamID = 1<<31 - 1

// Dial opens a CONNECT stream to addr (host:port) and waits for the
// server's answer. header carries extra request headers (may be nil). A
// refusal is returned as a *DialError. If ctx ends first, the stream is
// reset.
func (c *Conn) Dial(ctx context.Context, addr string, header http.Header) (*Stream, error) {
	if c.isServer {
		return nil, errors.New("tunnel: Dial on a server connection")
	}
	s := newStream(c)
	if !c.post(request{kind: reqOpen, s: s, fields: connectFields(addr, header)}) {
		return nil, ErrLinkClosed
	}
	select {
	case <-s.resp:
	case <-ctx.Done():
		c.post(request{kind: reqReset, s: s, code: http2.ErrCodeCancel, err: ctx.Err()})
		return nil, ctx.Err()
	}
	if !s.gotResponse {
		return nil, s.recvErr()
	}
	if s.status/100 == 2 {
		return s, nil
	}
	de := &DialError{Target: addr, Status: s.status}
	de.Type, de.Details = proxystatus.Parse(s.respHeader.Get("Proxy-Status"))
	if de.Details == "" {
		// Fall back to the body: a short text reason.
		s.SetReadDeadline(time.Now().Add(2 * time.Second))
		body, _ := io.ReadAll(io.LimitReader(s, 1024))
		de.Details = strings.TrimSpace(string(body))
	}
	s.Close()
	return nil, de
}

// connectFields is the header block of a CONNECT request to addr.
func connectFields(addr string, header http.Header) []hpack.HeaderField {
	fields := []hpack.HeaderField{
		{Name: ":method", Value: http.MethodConnect},
		{Name: ":authority", Value: addr},
	}
	for k, vs := range header {
		lk := strings.ToLower(k)
		for _, v := range vs {
			fields = append(fields, hpack.HeaderField{Name: lk, Value: v, Sensitive: lk == "proxy-authorization"})
		}
	}
	return fields
}

// DialEarly opens a CONNECT stream to addr and sends first on it at once,
// without waiting for the server's answer ("fast open"): the DATA frame
// carrying first is queued right behind the stream's HEADERS, so both
// leave in one write, as far as the peer's windows allow (the rest is
// written before DialEarly returns, as Write would). The server holds what
// arrives, within the stream's window, until it has reached the target,
// and drops it if it cannot.
//
// DialEarly returns once the stream is open on this side; it never waits
// for the network unless the peer's stream limit or windows are full. The
// server's answer is awaited by the stream's first Read or WriteTo: a
// refusal fails them with a *DialError, and the stream should then be
// aborted. If ctx ends before the stream opens, the stream is reset.
func (c *Conn) DialEarly(ctx context.Context, addr string, header http.Header, first []byte) (*Stream, error) {
	if c.isServer {
		return nil, errors.New("tunnel: DialEarly on a server connection")
	}
	s := newStream(c)
	s.early = true
	s.target = addr
	s.openCh = make(chan struct{})
	// A copy: the frame may be written after DialEarly has returned.
	s.first = bytes.Clone(first)
	if !c.post(request{kind: reqOpen, s: s, fields: connectFields(addr, header)}) {
		return nil, ErrLinkClosed
	}
	select {
	case <-s.openCh:
	case <-s.resp:
		select {
		case <-s.openCh:
			// Opened, and answered (or failed) already: the stream's
			// reads say which.
		default:
			return nil, s.recvErr()
		}
	case <-ctx.Done():
		c.post(request{kind: reqReset, s: s, code: http2.ErrCodeCancel, err: ctx.Err()})
		return nil, ctx.Err()
	}
	if rest := first[s.firstSent:]; len(rest) > 0 {
		if _, err := s.Write(rest); err != nil {
			s.Abort()
			return nil, err
		}
	}
	return s, nil
}

// openStream opens s (run), or keeps it waiting while the peer's stream
// limit is reached.
func (c *Conn) openStream(s *Stream, fields []hpack.HeaderField) {
	o := &c.own
	s.fields = fields
	switch {
	case o.goingAway:
		s.fail(ErrGoAway)
	case o.nextID > maxStreamID:
		c.markGoingAway()
		s.fail(ErrGoAway)
	case len(o.pending) > 0 || uint32(len(o.streams)) >= o.peerMaxStreams:
		o.pending = append(o.pending, s)
	default:
		c.open(s)
	}
}

// open gives s the next stream ID and queues its HEADERS: run queues
// HEADERS in the order of their IDs, as RFC 9113 §5.1.1 requires.
func (c *Conn) open(s *Stream) {
	o := &c.own
	s.id = o.nextID
	o.nextID += 2
	s.state = stateOpen
	s.sendWindow = o.peerInitWindow
	s.recvWindow = int64(c.cfg.StreamWindow)
	s.window.Store(s.recvWindow)
	c.addStream(s)
	f := &outFrame{kind: frameHeaders, stream: s, fields: s.fields}
	s.fields = nil
	c.enqueue(f, false)
	if s.openCh != nil {
		c.sendFirst(s)
		close(s.openCh)
	}
}

// sendFirst queues, right behind an early stream's HEADERS, the DATA
// frame carrying as much of its first bytes as the peer's windows allow
// now (run). The credit is taken straight from the windows: if the frame
// is dropped, the writer refunds it as it does any other.
func (c *Conn) sendFirst(s *Stream) {
	o := &c.own
	c.takeRefunds()
	n := min(int64(len(s.first)), s.sendWindow, o.sendWindow, int64(c.maxPayload()))
	if n > 0 {
		s.sendWindow -= n
		o.sendWindow -= n
		s.sent.Add(n)
		c.enqueue(&outFrame{kind: frameData, stream: s, data: s.first[:n]}, false)
	}
	s.firstSent = int(max(n, 0))
	s.first = nil
}

// openPending opens the streams waiting for the peer's stream limit, as
// far as it now allows.
func (c *Conn) openPending() {
	o := &c.own
	for len(o.pending) > 0 && uint32(len(o.streams)) < o.peerMaxStreams && !o.goingAway {
		s := o.pending[0]
		o.pending[0] = nil
		o.pending = o.pending[1:]
		if o.nextID > maxStreamID {
			c.markGoingAway()
			s.fail(ErrGoAway)
			continue
		}
		c.open(s)
	}
}

// dropPending forgets a stream that was never opened.
func (c *Conn) dropPending(s *Stream, err error) {
	o := &c.own
	for i, p := range o.pending {
		if p == s {
			o.pending = append(o.pending[:i], o.pending[i+1:]...)
			break
		}
	}
	s.fail(err)
}

// handleResponse takes response HEADERS for a stream this side opened.
func (c *Conn) handleResponse(f *http2.MetaHeadersFrame) error {
	o := &c.own
	id := f.StreamID
	s := o.streams[id]
	if s == nil {
		if c.idleID(id) {
			return connErrorf(http2.ErrCodeProtocol, "HEADERS on idle stream %d", id)
		}
		return nil // a stream this side closed
	}
	if f.Priority.StreamDep == id {
		c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "stream depends on itself"))
		return nil
	}
	switch {
	case s.state == stateHalfClosedRemote:
		c.resetStream(s, http2.ErrCodeStreamClosed, streamErrorf(http2.ErrCodeStreamClosed, "HEADERS after END_STREAM"))
		return nil
	case s.gotResponse && s.status/100 == 2:
		// A connected stream carries only DATA (RFC 9113 §8.5).
		c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "HEADERS on a connected stream"))
		return nil
	case s.gotResponse:
		if !f.StreamEnded() {
			c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "trailers without END_STREAM"))
			return nil
		}
		c.endOfStream(s)
		return nil
	}
	status := parseStatus(f.PseudoValue("status"))
	if status == 0 {
		c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "bad :status %q", f.PseudoValue("status")))
		return nil
	}
	if status < 200 {
		return nil // informational; wait for the final response
	}
	hdr := make(http.Header)
	for _, hf := range f.RegularFields() {
		hdr.Add(hf.Name, hf.Value)
	}
	s.status = status
	s.respHeader = hdr
	s.gotResponse = true
	s.closeResp()
	if f.StreamEnded() {
		c.endOfStream(s)
	}
	return nil
}
