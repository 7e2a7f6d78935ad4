package tunnel

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// reqKind says what a request to run asks for.
type reqKind uint8

const (
	reqOpen        reqKind = iota // client: open s, sending fields
	reqCredit                     // s wants up to n bytes of send credit in its budget
	reqConsumed                   // s's reader consumed n bytes: give them back to the peer
	reqEndSent                    // s queued END_STREAM
	reqClose                      // s was closed by its user; n > 0 if data was left unread
	reqReset                      // reset s with code, failing it with err
	reqLinger                     // s's linger time is up
	reqHandlerDone                // server: s's handler returned
	reqPing                       // send a PING and close ch when it is answered
	reqProbe                      // send the keep-alive PING now, unless one is out
	reqShutdown                   // no new streams; close ch when none is left
	reqCloseConn                  // close the connection
)

// request is a message to run from any other goroutine.
type request struct {
	kind   reqKind
	s      *Stream
	n      int64
	code   http2.ErrCode
	err    error
	fields []hpack.HeaderField
	ch     chan struct{}
}

// Abuse limits, as a hardened HTTP/2 server keeps them (x/net/http2's
// server is the model).
const (
	// maxQueuedControlFrames bounds the control frames (SETTINGS and PING
	// acknowledgements, RST_STREAM, WINDOW_UPDATE) queued and not yet
	// written: a peer that provokes them and does not read is closed with
	// ENHANCE_YOUR_CALM.
	maxQueuedControlFrames = 10000
	// junkBurst and junkRate bound the frames that cost work and carry no
	// data: PING, SETTINGS, PRIORITY, PRIORITY_UPDATE, empty DATA without
	// END_STREAM and frames of unknown types. A peer may send junkBurst at
	// once and junkRate a second after that.
	junkBurst = 1000
	junkRate  = 100
	// resetBurst and resetRate bound, on a server, the streams the peer
	// resets before they were answered, and the streams refused because the
	// peer had too many (rapid reset, CVE-2023-44487).
	resetBurst = 1000
	resetRate  = 100
	// maxSettingsPerFrame bounds one SETTINGS frame, as x/net's server does.
	maxSettingsPerFrame = 100
)

// tokenBucket allows burst events at once and rate a second after.
type tokenBucket struct {
	tokens, burst, rate float64
	last                time.Time
}

func newTokenBucket(burst, rate float64) tokenBucket {
	return tokenBucket{tokens: burst, burst: burst, rate: rate}
}

// take spends a token, reporting false when none is left.
func (b *tokenBucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// run owns the connection's state until the connection ends. It takes
// frames from readLoop and requests from everyone else, one at a time.
func (c *Conn) run() {
	defer c.loops.Done()
	o := &c.own
	var pingC, pingDeadline, idleC <-chan time.Time
	if c.cfg.PingInterval > 0 {
		o.pingTicker = time.NewTicker(c.cfg.PingInterval)
		defer o.pingTicker.Stop()
		pingC = o.pingTicker.C
		o.pingTimer = time.NewTimer(time.Hour)
		o.pingTimer.Stop()
		defer o.pingTimer.Stop()
		pingDeadline = o.pingTimer.C
	}
	if d := c.idlePeriod(); d > 0 {
		o.idleTicker = time.NewTicker(d)
		defer o.idleTicker.Stop()
		idleC = o.idleTicker.C
	}
	for c.err == nil {
		var err error
		select {
		case m := <-c.in:
			c.heard.Store(time.Now().UnixNano())
			err = c.handleIn(&m)
		case r := <-c.req:
			err = c.handleReq(&r)
		case <-pingC:
			err = c.pingTick()
		case <-pingDeadline:
			err = ErrPingTimeout
		case now := <-idleC:
			err = c.idleTick(now)
		}
		if err == nil && c.ctrlQueued.Load() > maxQueuedControlFrames {
			err = connErrorf(http2.ErrCodeEnhanceYourCalm, "more than %d control frames queued: the peer does not read", maxQueuedControlFrames)
		}
		if err != nil {
			c.end(err)
		}
	}
}

// end ends the connection with err, telling the peer why first when err is
// a protocol error.
func (c *Conn) end(err error) {
	if code, reason, ok := errorCode(err); ok {
		if code == http2.ErrCodeEnhanceYourCalm || code == http2.ErrCodeProtocol {
			c.log.Warn("tunnel peer misbehaved: closing the link", "remote", c.nc.RemoteAddr().String(), "err", err)
		}
		c.sendGoAway(code, reason, time.Second)
	}
	c.fail(err)
}

func (c *Conn) handleReq(r *request) error {
	o := &c.own
	s := r.s
	switch r.kind {
	case reqOpen:
		c.openStream(s, r.fields)
	case reqCredit:
		c.wantCredit(s, r.n)
	case reqConsumed:
		c.consumed(s, r.n)
	case reqEndSent:
		c.endSent(s)
	case reqClose:
		c.userClosed(s, r.n > 0)
	case reqReset:
		if s.state == stateIdle {
			c.dropPending(s, r.err)
		} else {
			c.resetStream(s, r.code, r.err)
		}
	case reqLinger:
		if s.lingering {
			c.resetStream(s, http2.ErrCodeCancel, net.ErrClosed)
		}
	case reqHandlerDone:
		s.handlerDone = true
		c.releaseSlot(s)
	case reqPing:
		var data [8]byte
		rand.Read(data[:])
		o.pings[data] = pingWait{ch: r.ch, start: time.Now()}
		c.queueCtrl(&outFrame{kind: framePing, ping: data})
	case reqProbe:
		if o.pingTimer != nil {
			return c.pingTick()
		}
	case reqShutdown:
		c.markGoingAway()
		if c.isServer && !o.sentGoAway {
			o.sentGoAway = true
			c.queueCtrl(&outFrame{kind: frameGoAway, code: http2.ErrCodeNo, streamID: o.maxPeerID})
		}
		o.drained = append(o.drained, r.ch)
		c.checkDrained()
	case reqCloseConn:
		if !o.sentGoAway {
			c.sendGoAway(http2.ErrCodeNo, "", 100*time.Millisecond)
		}
		return errClosedLocally
	}
	return nil
}

// pingTick sends the keep-alive PING, unless one is still unanswered.
func (c *Conn) pingTick() error {
	o := &c.own
	if o.pingSent {
		return nil
	}
	rand.Read(o.pingOut[:])
	o.pingSent = true
	o.pings[o.pingOut] = pingWait{start: time.Now()}
	o.pingTimer.Reset(c.cfg.PingTimeout)
	c.queueCtrl(&outFrame{kind: framePing, ping: o.pingOut})
	return nil
}

func (c *Conn) pingAck(data [8]byte) {
	o := &c.own
	w, ok := o.pings[data]
	if !ok {
		return
	}
	delete(o.pings, data)
	c.rtt.Store(int64(time.Since(w.start)))
	if w.ch != nil {
		close(w.ch)
	}
	if o.pingSent && data == o.pingOut {
		o.pingSent = false
		o.pingTimer.Stop()
	}
}

// ErrIdle is the reason given for streams and connections closed for
// idleness.
var ErrIdle = errors.New("idle timeout")

// idlePeriod is how often idleTick looks at the streams: a quarter of the
// shortest idle timeout, so a stream is reset between one and 1¼ timeouts
// after its last byte. One sweep looks at every stream, so 10,000 streams
// need no timer each.
func (c *Conn) idlePeriod() time.Duration {
	period := time.Duration(0)
	for _, d := range []time.Duration{c.cfg.StreamIdleTimeout, c.cfg.LinkIdleTimeout} {
		if d > 0 {
			p := max(d/4, 10*time.Millisecond)
			if period == 0 || p < period {
				period = p
			}
		}
	}
	return period
}

// idleTick resets streams idle for StreamIdleTimeout and closes the
// connection once it has had no stream for LinkIdleTimeout.
func (c *Conn) idleTick(now time.Time) error {
	o := &c.own
	if d := c.cfg.StreamIdleTimeout; d > 0 {
		cutoff := now.Add(-d).UnixNano()
		var idle []*Stream
		for _, s := range o.streams {
			if s.lastActive.Load() < cutoff {
				idle = append(idle, s)
			}
		}
		for _, s := range idle {
			c.log.Info("stream idle: reset", "remote", c.nc.RemoteAddr().String(), "stream", s.id, "idle_timeout", d)
			c.resetStream(s, http2.ErrCodeCancel, streamErrorf(http2.ErrCodeCancel, "%w: nothing sent or received for %v", ErrIdle, d))
		}
	}
	if len(o.streams) > 0 || o.slots > 0 {
		o.emptySince = now
	} else if d := c.cfg.LinkIdleTimeout; d > 0 && now.Sub(o.emptySince) >= d {
		c.log.Info("link idle: closing", "remote", c.nc.RemoteAddr().String(), "idle_timeout", d)
		c.sendGoAway(http2.ErrCodeNo, "", time.Second)
		return fmt.Errorf("%w: no stream for %v", ErrIdle, d)
	}
	return nil
}

// markGoingAway stops new streams.
func (c *Conn) markGoingAway() {
	o := &c.own
	if !o.goingAway {
		o.goingAway = true
		close(c.goAway)
		for _, s := range o.pending {
			s.fail(ErrGoAway)
		}
		o.pending = nil
	}
}

// checkDrained closes the Shutdown channels once no stream is left.
func (c *Conn) checkDrained() {
	o := &c.own
	if !o.goingAway || len(o.drained) == 0 || len(o.streams) > 0 || o.slots > 0 {
		return
	}
	for _, ch := range o.drained {
		close(ch)
	}
	o.drained = nil
}

// sendGoAway queues a GOAWAY and waits up to max for it to be written, so
// the peer learns why before the connection is torn down. run waits here:
// nothing the writer does needs run.
func (c *Conn) sendGoAway(code http2.ErrCode, reason string, max time.Duration) {
	o := &c.own
	o.sentGoAway = true
	f := &outFrame{kind: frameGoAway, code: code, streamID: o.maxPeerID, debug: reason, done: make(chan struct{})}
	c.queueCtrl(f)
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
	}
}

// fail ends the connection with err: every stream fails, the socket is
// closed, and done is closed. Only run calls it, once.
func (c *Conn) fail(err error) {
	o := &c.own
	if ge := c.goAwayErr.Load(); ge != nil && !errors.Is(err, errClosedLocally) {
		// The connection ends because the peer said why: say that, not
		// the read error that followed.
		err = ge
	}
	c.err = err
	// goAway stays open: a connection that failed is not going away
	// gracefully, and Done says it has ended.
	o.goingAway = true
	streamErr := ErrLinkClosed
	if !errors.Is(err, errClosedLocally) {
		streamErr = fmt.Errorf("%w: %w", ErrLinkClosed, err)
	}
	for _, s := range o.pending {
		s.fail(streamErr)
	}
	o.pending = nil
	for _, s := range o.streams {
		s.state = stateClosed
		s.fail(streamErr)
		s.stopLinger()
	}
	clear(o.streams)
	c.numStreams.Store(0)
	for _, ch := range o.drained {
		close(ch)
	}
	o.drained = nil
	c.cancelBase()
	close(c.done)
	if !errors.Is(err, errClosedLocally) {
		// A dead peer: close the socket beneath TLS first, so closing TLS
		// does not wait to send close_notify into a connection that is stuck.
		rawConn(c.nc).Close()
	}
	c.nc.Close()
	if !errors.Is(err, errClosedLocally) {
		c.log.Debug("tunnel connection ended", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
}
