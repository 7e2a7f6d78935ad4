package tunnel

import (
	"time"

	"golang.org/x/net/http2"
)

// Flow control.
//
// Receiving: run owns the connection's and each stream's receive window.
// Connection-level credit goes back to the peer as soon as data is received
// into a stream's buffer (see the package comment); stream-level credit
// when the stream's reader has consumed a quarter of its window, which the
// reader reports to run (reqConsumed), or when run itself wrote the data to
// the stream's TCP destination.
//
// Sending: run owns the peer's windows. A stream spends send credit from
// its own budget (Stream.budget, an atomic counter) without asking run for
// each frame: run grants budget out of both windows when the stream asks
// for it (reqCredit, a few times per megabyte in bulk), and takes back what
// is unspent when the stream ends, when the peer shrinks its windows, or
// when the connection window is spent and another stream waits.

// wantCredit tops s's budget up towards want, out of the peer's windows, and
// wakes s. With nothing to give, s waits among the waiters until a
// WINDOW_UPDATE or SETTINGS frame gives more.
func (c *Conn) wantCredit(s *Stream, want int64) {
	o := &c.own
	c.takeRefunds()
	if !s.sendable() {
		s.asking.Store(false)
		s.wakeSend()
		return
	}
	if o.sendWindow <= 0 && s.sendWindow > 0 && !o.reclaimed {
		c.reclaimAll(s)
	}
	if g := min(want-s.budget.Load(), s.sendWindow, o.sendWindow); g > 0 {
		c.grant(s, g)
	}
	if s.budget.Load() > 0 {
		s.asking.Store(false)
		s.wakeSend()
		return
	}
	if !s.waiting {
		s.waiting = true
		s.want = want
		o.waiters = append(o.waiters, s)
	}
}

func (c *Conn) grant(s *Stream, g int64) {
	s.sendWindow -= g
	c.own.sendWindow -= g
	c.outstanding.Add(g)
	s.budget.Add(g)
}

// serveWaiters grants credit to the streams waiting for it, in the order
// they asked; those that still get nothing wait on.
func (c *Conn) serveWaiters() {
	waiters := c.own.waiters
	c.own.waiters = nil
	for _, s := range waiters {
		s.waiting = false
		c.wantCredit(s, s.want)
	}
}

// reclaim takes back s's unspent budget into the windows.
func (c *Conn) reclaim(s *Stream) {
	if r := s.budget.Swap(0); r > 0 {
		s.sendWindow += r
		c.own.sendWindow += r
		c.outstanding.Add(-r)
	}
}

// reclaimAll takes back every stream's unspent budget but except's, so a
// waiting stream is not starved by streams that hold credit and send
// nothing. It runs at most once per growth of the connection window.
func (c *Conn) reclaimAll(except *Stream) {
	c.own.reclaimed = true
	for _, s := range c.own.streams {
		if s != except {
			c.reclaim(s)
		}
	}
}

// takeRefunds returns to the connection window the credit of DATA frames
// the writer dropped because their stream had been reset.
func (c *Conn) takeRefunds() {
	if r := c.refund.Swap(0); r > 0 {
		c.own.sendWindow += r
	}
}

// peerConnWindow is the connection window as the peer sees it: what is not
// granted, what streams hold unspent, and what was never sent.
func (c *Conn) peerConnWindow() int64 {
	return c.own.sendWindow + c.outstanding.Load() + c.refund.Load()
}

func (c *Conn) handleWindowUpdate(f *http2.WindowUpdateFrame) error {
	o := &c.own
	incr := int64(f.Increment)
	if f.StreamID == 0 {
		if c.peerConnWindow()+incr > maxWindow {
			return connErrorf(http2.ErrCodeFlowControl, "connection window overflow")
		}
		o.sendWindow += incr
		o.reclaimed = false
		c.serveWaiters()
		return nil
	}
	s := o.streams[f.StreamID]
	if s == nil {
		if c.idleID(f.StreamID) {
			return connErrorf(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream %d", f.StreamID)
		}
		return nil // a closed stream: allowed, and ignored
	}
	if s.sendWindow+s.budget.Load()+incr > maxWindow {
		c.resetStream(s, http2.ErrCodeFlowControl, streamErrorf(http2.ErrCodeFlowControl, "peer overflowed the flow-control window"))
		return nil
	}
	s.sendWindow += incr
	if s.waiting {
		c.serveWaiters()
	}
	return nil
}

// consumed gives n bytes that s's reader consumed back to the peer.
func (c *Conn) consumed(s *Stream, n int64) {
	if s.state == stateOpen || s.state == stateHalfClosedLocal {
		s.recvWindow += n
		c.queueCtrl(&outFrame{kind: frameWindowUpdate, streamID: s.id, incr: uint32(n)})
	}
}

func (c *Conn) handleSettings(m *inMsg) error {
	o := &c.own
	if m.fh.Flags.Has(http2.FlagSettingsAck) {
		if o.unackedSettings == 0 {
			return connErrorf(http2.ErrCodeProtocol, "SETTINGS ACK for nothing sent")
		}
		o.unackedSettings--
		return nil
	}
	if !o.junk.take(time.Now()) {
		return connErrorf(http2.ErrCodeEnhanceYourCalm, "SETTINGS flood")
	}
	initWindow := int64(-1)
	for _, s := range m.settings {
		if err := s.Valid(); err != nil {
			if ce, ok := err.(http2.ConnectionError); ok {
				return connErrorf(http2.ErrCode(ce), "bad setting %v", s)
			}
			return connErrorf(http2.ErrCodeProtocol, "bad setting %v", s)
		}
		switch s.ID {
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame.Store(s.Val)
		case http2.SettingHeaderTableSize:
			c.peerTableSize.Store(s.Val)
		case http2.SettingMaxConcurrentStreams:
			o.peerMaxStreams = s.Val
		case http2.SettingInitialWindowSize:
			initWindow = int64(s.Val) // the last value counts
		}
	}
	if initWindow >= 0 {
		// One pass over the streams per SETTINGS frame, however many
		// times it names the window.
		delta := initWindow - o.peerInitWindow
		o.peerInitWindow = initWindow
		for _, s := range o.streams {
			if delta < 0 {
				c.reclaim(s)
			}
			s.sendWindow += delta
			if s.sendWindow+s.budget.Load() > maxWindow {
				return connErrorf(http2.ErrCodeFlowControl, "window overflow after SETTINGS")
			}
		}
	}
	c.queueCtrl(&outFrame{kind: frameSettingsAck})
	if !c.isServer {
		c.openPending()
	}
	c.serveWaiters()
	return nil
}
