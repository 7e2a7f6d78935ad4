package tunnel

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"fluidity/internal/proxystatus"
	"fluidity/internal/sockio"
)

// Stream is one tunnelled connection: an HTTP/2 CONNECT stream used as a
// net.Conn. CloseWrite sends END_STREAM (a half-close); Close ends both
// directions, resetting the stream if the peer is still sending.
type Stream struct {
	c  *Conn  // immutable
	id uint32 // immutable

	opened      atomic.Bool // HEADERS written (client) or received (server)
	resetSent   atomic.Bool // RST_STREAM queued: no more frames for this stream
	responded   atomic.Bool // server: Accept or Reject called
	gotResponse atomic.Bool // client: final response HEADERS arrived
	resp        chan struct{}
	respOnce    sync.Once   // closes resp
	status      int         // client: written before resp is closed
	respHeader  http.Header // client: written before resp is closed

	rmu sync.Mutex // serializes readers (Read, WriteTo)
	wmu sync.Mutex // serializes writers (Write, ReadFrom, respond); Close and CloseWrite never take it

	// Guarded by c.mu.
	sendWindow int64
	sendDone   bool // END_STREAM queued

	mu         sync.Mutex // guards the receive side below
	chunks     []chunk
	recvEOF    bool
	rerr       error // terminal error for reads and writes (reset, link closed)
	closed     bool  // Close called
	recvWindow int64 // credit the peer has left on this stream
	unacked    int64 // bytes consumed and not yet given back
	readWake   chan struct{}
	// sink is the TCP connection WriteTo is copying to, if any: the read
	// loop writes arriving data to it directly when nothing is pending
	// (deliver). sinkBusy is set while a goroutine writes to it outside mu.
	sink     sockio.Sink
	sinkBusy bool
	sunk     int64 // bytes the read loop wrote to sink, reported by WriteTo

	rdl, wdl deadline
	linger   *time.Timer // guarded by mu; set by Close while waiting for the peer's END_STREAM

	sent, received atomic.Int64
	lastActive     atomic.Int64 // unix nanos of the last byte either way, for StreamIdleTimeout
}

type chunk struct {
	buf  *[]byte
	data []byte
}

func newStream(c *Conn, id uint32) *Stream {
	s := &Stream{
		c:          c,
		id:         id,
		resp:       make(chan struct{}),
		recvWindow: int64(c.cfg.StreamWindow),
		readWake:   make(chan struct{}, 1),
	}
	s.lastActive.Store(time.Now().UnixNano())
	return s
}

// touch records activity for the idle timeout (only when one is set: it
// reads the clock).
func (s *Stream) touch() {
	if s.c.cfg.StreamIdleTimeout > 0 {
		s.lastActive.Store(time.Now().UnixNano())
	}
}

// ID is the HTTP/2 stream ID.
func (s *Stream) ID() uint32 { return s.id }

// BytesSent and BytesReceived count payload bytes so far.
func (s *Stream) BytesSent() int64     { return s.sent.Load() }
func (s *Stream) BytesReceived() int64 { return s.received.Load() }

// Conn is the connection the stream belongs to.
func (s *Stream) Conn() *Conn { return s.c }

func (s *Stream) notifyRead() {
	select {
	case s.readWake <- struct{}{}:
	default:
	}
}

// deliver hands received DATA to the stream (readLoop). flowLen is the
// frame's full length for flow control; end marks END_STREAM.
func (s *Stream) deliver(buf *[]byte, p []byte, flowLen int, end bool) {
	s.mu.Lock()
	s.recvWindow -= int64(flowLen)
	if s.recvWindow < 0 {
		s.mu.Unlock()
		if buf != nil {
			putBuf(buf, s.c.large)
		}
		s.c.resetStream(s, http2.ErrCodeFlowControl, fmt.Errorf("%w: peer exceeded the flow-control window", ErrStreamReset))
		return
	}
	if s.recvEOF && (flowLen > 0 || len(p) > 0) {
		s.mu.Unlock()
		if buf != nil {
			putBuf(buf, s.c.large)
		}
		s.c.resetStream(s, http2.ErrCodeStreamClosed, fmt.Errorf("%w: DATA after END_STREAM", ErrStreamReset))
		return
	}
	if s.closed && len(p) > 0 {
		s.mu.Unlock()
		putBuf(buf, s.c.large)
		s.c.resetStream(s, http2.ErrCodeCancel, net.ErrClosed)
		return
	}
	var incr int64
	wake := end // a reader needs waking for new data or the end of it
	if len(p) > 0 && s.rerr == nil {
		s.received.Add(int64(len(p)))
		s.touch()
		written := 0
		if s.sink != nil && len(s.chunks) == 0 && !s.sinkBusy {
			// Nothing is pending and the relay goroutine is idle: write
			// straight to its destination, without waking it. The write
			// never waits; what the socket does not take now is queued
			// for the relay goroutine as usual.
			sink := s.sink
			s.sinkBusy = true
			s.mu.Unlock()
			written, _ = sink.TryWrite(p)
			s.mu.Lock()
			s.sinkBusy = false
			s.sunk += int64(written)
		}
		if written < len(p) && !s.closed {
			s.chunks = append(s.chunks, chunk{buf, p[written:]})
			wake = true
		} else if buf != nil {
			putBuf(buf, s.c.large)
		}
		// What was written, and padding (which carries nothing), is
		// consumed now.
		incr = s.consumedLocked(written + flowLen - len(p))
	} else {
		if buf != nil {
			putBuf(buf, s.c.large)
		}
		incr = s.consumedLocked(flowLen)
	}
	if end {
		s.recvEOF = true
	}
	s.mu.Unlock()
	s.sendWindowUpdate(incr)
	if wake {
		s.notifyRead()
	}
	if end {
		s.maybeFinish()
	}
}

// windowHolds reports whether a frame of flowLen bytes fits the stream's
// receive window. The window only grows until the read loop, which alone
// calls deliver, delivers the frame.
func (s *Stream) windowHolds(flowLen int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recvWindow >= int64(flowLen)
}

// consumedLocked records n consumed bytes and returns the window increment
// to send now, if any.
func (s *Stream) consumedLocked(n int) int64 {
	if n <= 0 || s.recvEOF {
		return 0
	}
	s.unacked += int64(n)
	if s.unacked < int64(s.c.cfg.StreamWindow)/4 {
		return 0
	}
	incr := s.unacked
	s.unacked = 0
	s.recvWindow += incr
	return incr
}

func (s *Stream) sendWindowUpdate(incr int64) {
	if incr > 0 && !s.resetSent.Load() {
		s.c.queueCtrl(&outFrame{kind: frameWindowUpdate, streamID: s.id, incr: uint32(incr)})
	}
}

// failRecv ends the stream with err for readers and writers, after any
// data already received.
func (s *Stream) failRecv(err error) {
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = err
	}
	s.mu.Unlock()
	s.respOnce.Do(func() { close(s.resp) })
	s.notifyRead()
	s.c.mu.Lock()
	s.c.broadcastSendLocked()
	s.c.mu.Unlock()
}

func (s *Stream) peerReset(code http2.ErrCode) {
	s.failRecv(fmt.Errorf("%w by peer: %v", ErrStreamReset, code))
	s.c.removeStream(s)
}

func (s *Stream) recvErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rerr != nil {
		return s.rerr
	}
	return ErrLinkClosed
}

// maybeFinish forgets the stream once both directions have ended.
func (s *Stream) maybeFinish() {
	s.mu.Lock()
	eof := s.recvEOF
	s.mu.Unlock()
	s.c.mu.Lock()
	done := s.sendDone
	s.c.mu.Unlock()
	if eof && done {
		s.c.removeStream(s)
	}
}

// Read reads data received on the stream.
func (s *Stream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, net.ErrClosed
		}
		if s.rdl.passed() {
			s.mu.Unlock()
			return 0, os.ErrDeadlineExceeded
		}
		if len(s.chunks) > 0 {
			n := 0
			for n < len(p) && len(s.chunks) > 0 {
				ch := &s.chunks[0]
				k := copy(p[n:], ch.data)
				n += k
				ch.data = ch.data[k:]
				if len(ch.data) == 0 {
					if ch.buf != nil {
						putBuf(ch.buf, s.c.large)
					}
					s.chunks[0] = chunk{}
					s.chunks = s.chunks[1:]
				}
			}
			if len(s.chunks) == 0 {
				s.chunks = nil
			}
			incr := s.consumedLocked(n)
			s.mu.Unlock()
			s.sendWindowUpdate(incr)
			return n, nil
		}
		if err := s.readEndLocked(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
		dl := s.rdl.done()
		s.mu.Unlock()
		select {
		case <-s.readWake:
		case <-dl:
			return 0, os.ErrDeadlineExceeded
		}
	}
}

// readEndLocked is the error a reader gets once the buffer is empty.
func (s *Stream) readEndLocked() error {
	switch {
	case s.recvEOF:
		return io.EOF
	case s.rerr != nil:
		return s.rerr
	}
	return nil
}

// WriteTo writes received data to w straight from the receive buffers,
// until END_STREAM (returning nil) or an error.
func (s *Stream) WriteTo(w io.Writer) (total int64, err error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.mu.Lock()
	s.sink = sockio.SinkOf(w)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sink = nil
		total += s.sunk
		s.sunk = 0
		s.mu.Unlock()
	}()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return total, net.ErrClosed
		}
		if s.rdl.passed() {
			s.mu.Unlock()
			return total, os.ErrDeadlineExceeded
		}
		if len(s.chunks) > 0 && !s.sinkBusy {
			ch := s.chunks[0]
			s.chunks[0] = chunk{}
			s.chunks = s.chunks[1:]
			if len(s.chunks) == 0 {
				s.chunks = nil
			}
			s.sinkBusy = true
			s.mu.Unlock()
			n, err := w.Write(ch.data)
			if ch.buf != nil {
				putBuf(ch.buf, s.c.large)
			}
			total += int64(n)
			s.mu.Lock()
			s.sinkBusy = false
			incr := s.consumedLocked(len(ch.data))
			s.mu.Unlock()
			s.sendWindowUpdate(incr)
			if err != nil {
				return total, err
			}
			continue
		}
		if err := s.readEndLocked(); err != nil {
			s.mu.Unlock()
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		dl := s.rdl.done()
		s.mu.Unlock()
		select {
		case <-s.readWake:
		case <-dl:
			return total, os.ErrDeadlineExceeded
		}
	}
}

// sendErr is why no more data can be sent, or nil.
func (s *Stream) sendErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return net.ErrClosed
	case s.rerr != nil:
		return s.rerr
	case s.resetSent.Load():
		return ErrStreamReset
	}
	return nil
}

var errWriteAfterCloseWrite = errors.New("tunnel: write after CloseWrite")

// creditLocked is how much the stream may send now, or why it may send
// nothing more. c.mu is held.
func (s *Stream) creditLocked() (int64, error) {
	switch {
	case s.c.err != nil:
		return 0, ErrLinkClosed
	case s.sendDone:
		return 0, errWriteAfterCloseWrite
	}
	return min(s.sendWindow, s.c.sendWindow), nil
}

// awaitCredit waits until the stream may send, and returns how much it may
// send now: ReadFrom reads no more than that from its source, so a stream
// whose peer stopped reading holds no buffer, and its data waits in the
// source's socket. beforeBlock, if set, runs before the first wait.
func (s *Stream) awaitCredit(beforeBlock func() error) (int64, error) {
	c := s.c
	for {
		if err := s.sendErr(); err != nil {
			return 0, err
		}
		if s.wdl.passed() {
			return 0, os.ErrDeadlineExceeded
		}
		c.mu.Lock()
		n, err := s.creditLocked()
		wake := c.sendWake
		c.mu.Unlock()
		if err != nil || n > 0 {
			return n, err
		}
		if beforeBlock != nil {
			if err := beforeBlock(); err != nil {
				return 0, err
			}
			beforeBlock = nil
		}
		select {
		case <-wake:
		case <-s.wdl.done():
			return 0, os.ErrDeadlineExceeded
		case <-c.done:
			return 0, ErrLinkClosed
		}
	}
}

// queueFrame waits for send credit, takes up to len(p) bytes of it and
// sends one DATA frame carrying that much of p. Credit check and queueing
// happen under c.mu, the same lock CloseWrite takes to queue END_STREAM, so
// no DATA can ever follow END_STREAM. If room is set, it is 9 bytes of
// header room followed by p in one buffer. When the connection is quiet the
// frame is written at once by this goroutine and the returned frame is nil;
// otherwise the frame is queued and returned, and p must stay untouched
// until it is done.
func (s *Stream) queueFrame(p, room []byte) (*outFrame, int, error) {
	c := s.c
	for {
		if _, err := s.awaitCredit(nil); err != nil {
			return nil, 0, err
		}
		c.mu.Lock()
		credit, err := s.creditLocked()
		if err != nil {
			c.mu.Unlock()
			return nil, 0, err
		}
		n := min(int64(len(p)), int64(c.maxPayload()), credit)
		if n <= 0 {
			// Another stream took the connection's credit meanwhile, or
			// the peer shrank the window.
			c.mu.Unlock()
			continue
		}
		s.sendWindow -= n
		c.sendWindow -= n
		f := &outFrame{kind: frameData, stream: s, data: p[:n], room: room, done: make(chan struct{})}
		own := c.enqueue(f, true)
		c.mu.Unlock()
		s.sent.Add(n)
		s.touch()
		if own {
			return nil, int(n), c.writeNow(f)
		}
		return f, int(n), nil
	}
}

// sendFrames sends p as DATA frames without copying it. If room is set,
// it is 9 bytes of header room followed by p. With wait set it returns once
// the last frame has been handed to the connection's writer; otherwise it
// returns the last frame unwaited (nil if it was written already), so the
// caller can fill its next buffer meanwhile, and must wait for it before
// reusing p.
func (s *Stream) sendFrames(p, room []byte, wait bool) (int, *outFrame, error) {
	n := 0
	var last *outFrame
	for n < len(p) {
		if last != nil {
			if err := s.waitFrame(last); err != nil {
				return n, nil, err
			}
		}
		var (
			k   int
			err error
		)
		last, k, err = s.queueFrame(p[n:], room)
		room = nil // only the first frame has header room
		n += k
		if err != nil {
			return n, nil, err
		}
	}
	if wait && last != nil {
		return n, nil, s.waitFrame(last)
	}
	return n, last, nil
}

func (s *Stream) waitFrame(f *outFrame) error {
	select {
	case <-f.done:
		return nil
	case <-s.c.done:
		// The writer may still be looking at f.data until it drains.
		<-f.done
		return ErrLinkClosed
	}
}

// Write sends p on the stream, waiting for flow-control credit.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	n, _, err := s.sendFrames(p, nil, true)
	return n, err
}

// ReadFrom sends everything read from r until r's EOF (returning nil) or an
// error. For a TCP source it holds no buffer while the source is idle.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	idle := sockio.IdleReader(r, frameHeaderLen)
	large := s.c.large
	var (
		total int64
		// Frames queued and not yet written, with the buffers their data
		// lives in: up to two, so the next read overlaps their writing.
		pending [2]pendingBuf
		npend   int
		// The next read's buffer size, from how full the last one came.
		size = poolFor(1, large).size
		full bool // the last read filled its buffer: more is likely waiting
	)
	releaseOldest := func() error {
		p := pending[0]
		pending[0], pending[1] = pending[1], pendingBuf{}
		npend--
		var err error
		if p.frame != nil {
			err = s.waitFrame(p.frame)
		}
		putBuf(p.buf, large)
		return err
	}
	releaseAll := func() error {
		var err error
		for npend > 0 {
			err = errors.Join(err, releaseOldest())
		}
		return err
	}
	// releaseWritten releases, without waiting, the buffers whose frames
	// are written, and reports whether none is left.
	releaseWritten := func() bool {
		for npend > 0 && pending[0].written() {
			releaseOldest()
		}
		return npend == 0
	}
	defer releaseAll()
	for {
		if npend == len(pending) {
			if err := releaseOldest(); err != nil {
				return total, err
			}
		}
		// Buffers are released before waiting for credit, too.
		credit, err := s.awaitCredit(releaseAll)
		if err != nil {
			return total, err
		}
		// Read no more than may be sent now.
		want := int(min(int64(size), frameHeaderLen+credit))
		var (
			buf  *[]byte
			n    int
			rerr error
		)
		if idle != nil {
			// Every buffer is released before the goroutine parks on an
			// idle source; a frame still being written is waited for
			// outside the poller, and the source read again.
			buf, n, rerr = idle(
				func() *[]byte { b := getBuf(want, large); *b = (*b)[:want]; return b },
				func(b *[]byte) { putBuf(b, large) },
				releaseWritten)
			if buf == nil && rerr == nil {
				if err := releaseAll(); err != nil {
					return total, err
				}
				continue
			}
		} else {
			if !full {
				// A short read drained the source: the next read may block.
				if err := releaseAll(); err != nil {
					return total, err
				}
			}
			buf = getBuf(want, large)
			n, rerr = r.Read((*buf)[frameHeaderLen:want])
		}
		if buf != nil {
			full = n == want-frameHeaderLen
			if want == size {
				size = nextReadSize(size, n, large)
			}
		}
		if n > 0 {
			// The frame header goes in the room before the data.
			k, last, err := s.sendFrames((*buf)[frameHeaderLen:frameHeaderLen+n], (*buf)[:frameHeaderLen+n], false)
			total += int64(k)
			if last == nil {
				putBuf(buf, large) // written already, or never queued
			} else {
				pending[npend] = pendingBuf{last, buf}
				npend++
			}
			if err != nil {
				return total, err
			}
		} else if buf != nil {
			putBuf(buf, large)
		}
		if rerr == io.EOF {
			return total, releaseAll()
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// pendingBuf is a buffer whose last frame may still be queued.
type pendingBuf struct {
	frame *outFrame
	buf   *[]byte
}

// written reports whether the frame is out of the buffer.
func (p pendingBuf) written() bool {
	if p.frame == nil {
		return true
	}
	select {
	case <-p.frame.done:
		return true
	default:
		return false
	}
}

// CloseWrite sends END_STREAM: the peer reads EOF after the data sent so
// far. It never waits for a writer blocked on its source.
func (s *Stream) CloseWrite() error {
	c := s.c
	c.mu.Lock()
	if s.sendDone {
		c.mu.Unlock()
		return nil
	}
	s.sendDone = true
	if s.resetSent.Load() {
		c.mu.Unlock()
		return ErrStreamReset
	}
	f := &outFrame{kind: frameData, stream: s, end: true}
	own := c.enqueue(f, true)
	c.mu.Unlock()
	var err error
	if own {
		err = c.writeNow(f)
	}
	s.maybeFinish()
	return err
}

// Close ends the stream, like closing a TCP socket: with unread data
// buffered, the stream is reset; otherwise END_STREAM is sent (if it was
// not already) and data the peer sends afterwards resets the stream. A
// peer that never finishes is reset after lingerTimeout. Blocked reads and
// writes return net.ErrClosed.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	unread := len(s.chunks) > 0
	for _, ch := range s.chunks {
		if ch.buf != nil {
			putBuf(ch.buf, s.c.large)
		}
	}
	s.chunks = nil
	eof := s.recvEOF
	s.mu.Unlock()
	s.notifyRead()
	s.respOnce.Do(func() { close(s.resp) })
	c := s.c
	c.mu.Lock()
	c.broadcastSendLocked()
	c.mu.Unlock()
	s.rdl.set(time.Time{})
	s.wdl.set(time.Time{})
	switch {
	case s.resetSent.Load():
	case unread:
		c.resetStream(s, http2.ErrCodeCancel, net.ErrClosed)
	default:
		s.CloseWrite()
		if !eof {
			t := time.AfterFunc(lingerTimeout, func() {
				c.resetStream(s, http2.ErrCodeCancel, net.ErrClosed)
			})
			s.mu.Lock()
			s.linger = t
			s.mu.Unlock()
		}
		s.maybeFinish()
	}
	return nil
}

// lingerTimeout is how long a closed stream waits for the peer's END_STREAM.
const lingerTimeout = 30 * time.Second

// Accept answers a CONNECT request with 200: the stream becomes a byte pipe.
func (s *Stream) Accept() error {
	return s.respond(http.StatusOK, nil, "")
}

// AcceptWith is Accept with response header fields.
func (s *Stream) AcceptWith(h http.Header) error {
	return s.respond(http.StatusOK, h, "")
}

// Reject answers with status, an RFC 9209 Proxy-Status header carrying
// errType and details, and details as a plain-text body.
func (s *Stream) Reject(status int, errType, details string) error {
	return s.RejectWith(status, nil, errType, details)
}

// RejectWith is Reject with extra response header fields.
func (s *Stream) RejectWith(status int, extra http.Header, errType, details string) error {
	h := http.Header{
		"Proxy-Status": {proxystatus.Format(errType, details)},
		"Content-Type": {"text/plain; charset=utf-8"},
	}
	for k, vs := range extra {
		h[k] = vs
	}
	return s.respond(status, h, details+"\n")
}

func (s *Stream) respond(status int, h http.Header, body string) error {
	if !s.responded.CompareAndSwap(false, true) {
		return errors.New("tunnel: stream already answered")
	}
	fields := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(status)}}
	for k, vs := range h {
		for _, v := range vs {
			fields = append(fields, hpack.HeaderField{Name: strings.ToLower(k), Value: v})
		}
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.sendErr(); err != nil {
		return err
	}
	f := &outFrame{kind: frameHeaders, stream: s, fields: fields}
	if s.c.enqueue(f, true) {
		if err := s.c.writeNow(f); err != nil {
			return err
		}
	}
	if body == "" && status/100 == 2 {
		return nil
	}
	if _, _, err := s.sendFrames([]byte(body), nil, true); err != nil {
		return err
	}
	return s.CloseWrite()
}

// Status is the response status (client streams).
func (s *Stream) Status() int { return s.status }

// ResponseHeader is the response's header fields (client streams).
func (s *Stream) ResponseHeader() http.Header { return s.respHeader }

func (s *Stream) LocalAddr() net.Addr  { return s.c.nc.LocalAddr() }
func (s *Stream) RemoteAddr() net.Addr { return s.c.nc.RemoteAddr() }

func (s *Stream) SetDeadline(t time.Time) error {
	s.SetReadDeadline(t)
	return s.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline and wakes a blocked reader so it
// sees the new one.
func (s *Stream) SetReadDeadline(t time.Time) error {
	s.rdl.set(t)
	s.notifyRead()
	return nil
}

// SetWriteDeadline sets the write deadline and wakes blocked writers.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.wdl.set(t)
	s.c.mu.Lock()
	s.c.broadcastSendLocked()
	s.c.mu.Unlock()
	return nil
}

// deadline is a settable point in time with a channel that is closed when
// it passes. The zero value means no deadline.
type deadline struct {
	mu    sync.Mutex
	timer *time.Timer
	ch    chan struct{} // nil: no deadline; closed: passed
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	switch dur := time.Until(t); {
	case t.IsZero():
		d.ch = nil
	case dur <= 0:
		d.ch = closedChan
	default:
		ch := make(chan struct{})
		d.ch = ch
		d.timer = time.AfterFunc(dur, func() { close(ch) })
	}
}

func (d *deadline) passed() bool {
	select {
	case <-d.done():
		return true
	default:
		return false
	}
}

func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}
