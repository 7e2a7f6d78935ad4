package tunnel

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// streamState is a stream's state in RFC 9113 §5.1 terms. The reserved
// states do not occur: push is disabled.
type streamState uint8

const (
	stateIdle             streamState = iota // client: not opened yet (waiting for the peer's stream limit)
	stateOpen                                // both sides may send
	stateHalfClosedLocal                     // we sent END_STREAM
	stateHalfClosedRemote                    // the peer sent END_STREAM
	stateClosed                              // both did, or the stream was reset, or the link is gone
)

func (st streamState) String() string {
	return [...]string{"idle", "open", "half-closed (local)", "half-closed (remote)", "closed"}[st]
}

// The functions below are run's: they read and change the stream table and
// the streams' states.

// addStream puts s, just opened, in the table.
func (c *Conn) addStream(s *Stream) {
	c.own.streams[s.id] = s
	c.numStreams.Store(int64(len(c.own.streams)))
}

// idleID reports whether id names a stream that was never opened.
func (c *Conn) idleID(id uint32) bool {
	if id%2 == 1 { // client-initiated
		if c.isServer {
			return id > c.own.maxPeerID
		}
		return id >= c.own.nextID
	}
	return true // no server-initiated streams exist here
}

// rememberReset keeps the IDs of the last streams this side reset: frames
// the peer had already sent on them are ignored (RFC 9113 §5.1, closed).
func (c *Conn) rememberReset(id uint32) {
	o := &c.own
	o.recentResets[o.nextReset%len(o.recentResets)] = id
	o.nextReset++
}

func (c *Conn) recentlyReset(id uint32) bool {
	for _, r := range c.own.recentResets {
		if r == id {
			return true
		}
	}
	return false
}

// handleData takes one piece of a DATA frame: on its first piece, the
// frame is checked against the stream's state and the windows; then each
// piece is delivered, or dropped with the frame.
func (c *Conn) handleData(m *inMsg) error {
	o := &c.own
	end := m.last && m.fh.Flags.Has(http2.FlagDataEndStream)
	if m.first {
		id := m.fh.StreamID
		length := int64(m.fh.Length)
		o.cur, o.curID = nil, id
		if length > o.recvWindow {
			return connErrorf(http2.ErrCodeFlowControl, "DATA of %d bytes with %d left in the connection window", length, o.recvWindow)
		}
		// Connection-level credit goes back on receipt.
		o.recvWindow -= length
		o.recvUnacked += length
		if o.recvUnacked >= o.connWindow/2 {
			c.queueCtrl(&outFrame{kind: frameWindowUpdate, incr: uint32(o.recvUnacked)})
			o.recvWindow += o.recvUnacked
			o.recvUnacked = 0
		}
		if length == 0 && !m.fh.Flags.Has(http2.FlagDataEndStream) && !o.junk.take(time.Now()) {
			return connErrorf(http2.ErrCodeEnhanceYourCalm, "flood of empty DATA frames")
		}
		s := o.streams[id]
		switch {
		case s == nil && c.idleID(id):
			return connErrorf(http2.ErrCodeProtocol, "DATA on idle stream %d", id)
		case s == nil:
			if !c.recentlyReset(id) {
				c.resetByID(id, http2.ErrCodeStreamClosed, "DATA on a closed stream")
			}
		case s.state == stateHalfClosedRemote:
			c.resetStream(s, http2.ErrCodeStreamClosed, streamErrorf(http2.ErrCodeStreamClosed, "DATA after END_STREAM"))
		case length > s.recvWindow:
			// Refused whole, before any of it is delivered.
			c.resetStream(s, http2.ErrCodeFlowControl, streamErrorf(http2.ErrCodeFlowControl, "peer exceeded the flow-control window"))
		default:
			s.recvWindow -= length
			o.cur = s
		}
	}
	s := o.cur
	if s == nil || s.state == stateClosed {
		if m.buf != nil {
			putBuf(m.buf, c.large)
		}
		return nil
	}
	if s.declLen >= 0 {
		s.gotLen += int64(len(m.p))
		if s.gotLen > s.declLen || end && s.gotLen != s.declLen {
			if m.buf != nil {
				putBuf(m.buf, c.large)
			}
			c.resetStream(s, http2.ErrCodeProtocol, streamErrorf(http2.ErrCodeProtocol, "body length differs from content-length %d", s.declLen))
			return nil
		}
	}
	c.deliver(s, m, end)
	if end && s.state != stateClosed {
		c.remoteEnded(s)
	}
	return nil
}

// deliver hands received DATA to the stream. When nothing is pending and
// the stream's reader is copying to a TCP connection (Stream.WriteTo) and
// is idle, the data is written there straight away, without waking the
// reader: the write never waits, and what the socket does not take now is
// queued for the reader as usual.
func (c *Conn) deliver(s *Stream, m *inMsg, end bool) {
	p := m.p
	s.mu.Lock()
	if s.closed && len(p) > 0 {
		s.mu.Unlock()
		putBuf(m.buf, c.large)
		c.resetStream(s, http2.ErrCodeCancel, net.ErrClosed)
		return
	}
	var consumed int64
	wake := end // a reader needs waking for new data or the end of it
	if len(p) > 0 && s.rerr == nil {
		s.received.Add(int64(len(p)))
		s.touch()
		written := 0
		if s.sink != nil && len(s.chunks) == 0 && !s.sinkBusy {
			sink := s.sink
			s.sinkBusy = true
			s.mu.Unlock()
			written, _ = sink.TryWrite(p)
			s.mu.Lock()
			s.sinkBusy = false
			s.sunk += int64(written)
		}
		if written < len(p) && !s.closed {
			s.chunks = append(s.chunks, chunk{m.buf, p[written:]})
			wake = true
		} else if m.buf != nil {
			putBuf(m.buf, c.large)
		}
		// What was written, and padding (which carries nothing), is
		// consumed now.
		consumed = s.consumedLocked(written + m.flow - len(p))
	} else {
		if m.buf != nil {
			putBuf(m.buf, c.large)
		}
		consumed = s.consumedLocked(m.flow)
	}
	if end {
		s.recvEOF = true
	}
	s.mu.Unlock()
	if consumed > 0 {
		c.consumed(s, consumed)
	}
	if wake {
		s.notifyRead()
	}
}

// endOfStream delivers END_STREAM carried by a HEADERS frame.
func (c *Conn) endOfStream(s *Stream) {
	s.mu.Lock()
	s.recvEOF = true
	s.mu.Unlock()
	s.notifyRead()
	c.remoteEnded(s)
}

// remoteEnded moves s on after the peer's END_STREAM.
func (c *Conn) remoteEnded(s *Stream) {
	switch s.state {
	case stateOpen:
		s.state = stateHalfClosedRemote
	case stateHalfClosedLocal:
		c.closeStream(s, nil)
	}
}

// endSent moves s on after its END_STREAM was queued.
func (c *Conn) endSent(s *Stream) {
	switch s.state {
	case stateOpen:
		s.state = stateHalfClosedLocal
	case stateHalfClosedRemote:
		c.closeStream(s, nil)
		return
	default:
		return
	}
	c.reclaim(s)
	s.wakeSend()
}

// userClosed handles Stream.Close: with data left unread the stream is
// reset, as closing a TCP socket with unread data resets it; otherwise, if
// the peer is still sending, it may finish for lingerTimeout.
func (c *Conn) userClosed(s *Stream, unread bool) {
	switch {
	case s.state == stateClosed || s.state == stateIdle:
	case unread:
		c.resetStream(s, http2.ErrCodeCancel, net.ErrClosed)
	case s.state == stateOpen || s.state == stateHalfClosedLocal:
		if !s.lingering {
			s.lingering = true
			s.linger = time.AfterFunc(lingerTimeout, func() {
				c.post(request{kind: reqLinger, s: s})
			})
		}
	}
}

// lingerTimeout is how long a closed stream waits for the peer's END_STREAM.
const lingerTimeout = 30 * time.Second

// resetStream sends RST_STREAM for s and closes it, failing it with err.
func (c *Conn) resetStream(s *Stream, code http2.ErrCode, err error) {
	if s.state == stateClosed {
		return
	}
	s.reset.Store(true) // the writer drops the stream's frames from now on
	c.queueCtrl(&outFrame{kind: frameRST, stream: s, code: code})
	c.rememberReset(s.id)
	c.closeStream(s, err)
}

// resetByID resets a stream named by a frame: the stream if it is open,
// or else just its ID.
func (c *Conn) resetByID(id uint32, code http2.ErrCode, reason string) {
	if s := c.own.streams[id]; s != nil {
		c.resetStream(s, code, streamErrorf(code, "%s", reason))
		return
	}
	c.queueCtrl(&outFrame{kind: frameRST, streamID: id, code: code})
	c.rememberReset(id)
}

// handlePeerReset handles the peer's RST_STREAM.
func (c *Conn) handlePeerReset(id uint32, code http2.ErrCode) error {
	s := c.own.streams[id]
	if s == nil {
		if c.idleID(id) {
			return connErrorf(http2.ErrCodeProtocol, "RST_STREAM on idle stream %d", id)
		}
		return nil
	}
	if c.isServer && !s.responded.Load() && !c.own.resets.take(time.Now()) {
		return connErrorf(http2.ErrCodeEnhanceYourCalm, "too many streams reset before they were answered")
	}
	s.reset.Store(true)
	c.closeStream(s, &ResetError{Code: code, Remote: true})
	return nil
}

// closeStream ends s: it leaves the table, its unspent send credit goes
// back, and with an error it fails for its reader and writer. A server
// stream keeps its slot until its handler has returned.
func (c *Conn) closeStream(s *Stream, err error) {
	o := &c.own
	if s.state == stateClosed {
		return
	}
	s.state = stateClosed
	delete(o.streams, s.id)
	c.numStreams.Store(int64(len(o.streams)))
	if o.cur == s {
		o.cur = nil
	}
	s.stopLinger()
	c.reclaim(s)
	c.shrinkGrowth(s)
	if err != nil {
		s.fail(err) // and cancels a server stream's context
	} else {
		s.wakeSend()
	}
	if c.isServer {
		c.releaseSlot(s)
	} else {
		c.openPending()
	}
	c.checkDrained()
}

// handleGoAway handles the peer's GOAWAY: no new streams; as a client, the
// streams the server never saw fail with ErrGoAway, so they can be tried
// again on another link.
func (c *Conn) handleGoAway(f *http2.GoAwayFrame, debug []byte) {
	o := &c.own
	if f.ErrCode != http2.ErrCodeNo {
		ge := &GoAwayError{Code: f.ErrCode, Reason: string(debug)}
		c.goAwayErr.Store(ge)
		c.log.Warn("peer closed tunnel connection", "err", ge)
	}
	c.markGoingAway()
	if !c.isServer {
		var refused []*Stream
		for id, s := range o.streams {
			if id > f.LastStreamID {
				refused = append(refused, s)
			}
		}
		for _, s := range refused {
			s.reset.Store(true)
			c.closeStream(s, ErrGoAway)
		}
	}
	c.checkDrained()
}

// streamErrorf is the error a stream fails with when this side resets it.
func streamErrorf(code http2.ErrCode, format string, args ...any) error {
	return &ResetError{Code: code, Cause: fmt.Errorf(format, args...)}
}
