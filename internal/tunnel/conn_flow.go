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
	// The stream's writer spends its budget while this runs: what it holds
	// when the grant is sized may be gone when it is checked. So the
	// stream waits only when the windows have nothing left for it, never
	// because a grant sized against a budget since spent left it empty.
	for {
		if g := min(want-s.budget.Load(), s.sendWindow, o.sendWindow); g > 0 {
			c.grant(s, g)
			if testHookAfterGrant != nil {
				testHookAfterGrant(s)
			}
		}
		if s.budget.Load() > 0 {
			s.asking.Store(false)
			s.wakeSend()
			return
		}
		if want <= 0 || s.sendWindow <= 0 || o.sendWindow <= 0 {
			break
		}
	}
	if !s.waiting {
		s.waiting = true
		s.want = want
		o.waiters = append(o.waiters, s)
	}
}

// testHookAfterGrant, if set, runs on run's goroutine after each grant:
// a test spends the budget there as a stream's writer may at that moment.
var testHookAfterGrant func(*Stream)

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

// consumed gives n bytes that s's reader consumed back to the peer, and
// grows the stream's window when the window, not the path or the reader,
// limits the stream.
func (c *Conn) consumed(s *Stream, n int64) {
	if s.state == stateOpen || s.state == stateHalfClosedLocal {
		incr := n + c.growWindow(s, n)
		s.recvWindow += incr
		c.queueCtrl(&outFrame{kind: frameWindowUpdate, streamID: s.id, incr: uint32(incr)})
	}
}

// Window growth. A stream's receive window starts at Config.StreamWindow,
// which bounds what a reader that stalls pins in memory. A window limits a
// stream to a window per round trip: 4 MiB over a 200 ms path is 168
// Mbit/s, short of a 200 Mbit/s path's bandwidth-delay product (5 MB).
// So, as x/net's and gRPC's BDP estimation and QUIC's window auto-tuning
// do, a window doubles when the reader has consumed half of it within one
// measured round trip (the PING's): the sender then had no more in flight
// than the window allowed, and the reader kept up. A window that is not
// the limit (a slow path, a slow reader) never grows. Growth stops at
// Config.MaxStreamWindow per stream, and at maxLinkGrowth over all of a
// link's streams; a stream gives its growth back when it closes. A reader
// that stalls from the start is held to Config.StreamWindow; one that
// stalls after running fast holds up to its grown window, which is why
// growth is off unless MaxStreamWindow is set.
const maxLinkGrowth = 64 << 20

// growWindow returns how much to add to s's window as n more bytes were
// consumed (run).
func (c *Conn) growWindow(s *Stream, n int64) int64 {
	o := &c.own
	rtt := time.Duration(c.rtt.Load())
	w := s.window.Load()
	limit := int64(c.cfg.MaxStreamWindow)
	if rtt <= 0 || w >= limit || o.grown >= maxLinkGrowth {
		return 0
	}
	now := time.Now()
	if s.epochStart.IsZero() {
		s.epochStart = now
	}
	s.epochBytes += n
	if s.epochBytes < w/2 {
		return 0
	}
	fast := now.Sub(s.epochStart) < rtt
	s.epochStart, s.epochBytes = now, 0
	if !fast {
		return 0
	}
	g := min(w, limit-w, maxLinkGrowth-o.grown)
	s.window.Add(g)
	o.grown += g
	return g
}

// shrinkGrowth gives a closing stream's growth back to the link (run).
func (c *Conn) shrinkGrowth(s *Stream) {
	if g := s.window.Load() - int64(c.cfg.StreamWindow); g > 0 {
		c.own.grown -= g
		s.window.Add(-g)
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
