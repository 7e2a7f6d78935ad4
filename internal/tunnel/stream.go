package tunnel

import (
	"context"
	"errors"
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
// directions, resetting the stream if data was left unread; Abort resets
// it, as a TCP reset would end a connection.
type Stream struct {
	c *Conn // immutable
	// id is set by run when the stream opens (server: before the handler
	// starts; client: before resp is closed) and never changes after.
	id uint32

	// Owned by run.
	state       streamState
	sendWindow  int64 // the peer's window for the stream, less the budget granted
	recvWindow  int64 // credit the peer has left on this stream
	waiting     bool  // among run's credit waiters
	want        int64 // the budget it asked for
	lingering   bool  // closed by its user; the peer may finish sending
	linger      *time.Timer
	handlerDone bool // server: the handler returned
	// The receive window's growth (see conn_flow.go): the bytes consumed
	// since epochStart.
	epochStart time.Time
	epochBytes int64
	slotHeld   bool // server: counts against MaxStreams
	isConnect  bool // server: a CONNECT request
	declLen    int64
	gotLen     int64 // server, non-CONNECT: declared and received body length
	respClosed bool  // resp is closed
	fields     []hpack.HeaderField
	// Client: the response, written by run before resp is closed.
	gotResponse bool
	status      int
	respHeader  http.Header

	// Client, opened by DialEarly: early, target and openCh are immutable
	// after DialEarly; run closes openCh once the stream is open, after it
	// has queued the first firstSent bytes of first (which it then drops).
	early     bool
	target    string
	openCh    chan struct{}
	first     []byte
	firstSent int
	// earlyErr is the answer's verdict, settled by the first reader once
	// the answer has come (guarded by rmu); answered says it has.
	earlyErr error
	answered bool

	// Server: the handler's context, set before the handler starts;
	// cancelled by run when the stream ends or the connection does.
	ctx    context.Context
	cancel context.CancelFunc

	resp chan struct{} // client: closed by run when the response arrives or the stream fails

	// Shared by run and the stream's goroutines.
	budget    atomic.Int64 // send credit granted by run, spent by the writer
	asking    atomic.Bool  // a credit request is with run
	reset     atomic.Bool  // RST_STREAM sent or received, or the link gone: the writer drops the stream's frames
	opened    atomic.Bool  // HEADERS written (client) or received (server)
	responded atomic.Bool  // server: Accept or Reject called

	rmu sync.Mutex // serializes readers (Read, WriteTo)
	wmu sync.Mutex // serializes writers (Write, ReadFrom, respond); Close and CloseWrite never take it

	smu        sync.Mutex // guards sendClosed; held only to queue a frame, so END_STREAM never precedes DATA
	sendClosed bool       // END_STREAM queued, or the stream aborted

	mu       sync.Mutex // guards the receive side below; run delivers under it
	chunks   []chunk
	recvEOF  bool
	rerr     error // terminal error for reads and writes (reset, link closed)
	closed   bool  // Close called
	unacked  int64 // bytes consumed and not yet given back
	readWake chan struct{}
	// sink is the TCP connection WriteTo is copying to, if any: run writes
	// arriving data to it directly when nothing is pending (deliver).
	// sinkBusy is set while a goroutine writes to it outside mu.
	sink     sockio.Sink
	sinkBusy bool
	sunk     int64 // bytes run wrote to sink, reported by WriteTo
	// src is the source ReadFrom reads, woken with a past read deadline
	// when the stream fails or is closed, so a copy parked on a silent
	// source ends with the stream.
	src interface{ SetReadDeadline(time.Time) error }

	sendWake chan struct{} // cap 1: credit granted, or the stream ended

	rdl, wdl deadline

	// window is the stream's receive window: Config.StreamWindow, grown
	// while the reader keeps up with a long fast path. Written by run.
	window atomic.Int64

	sent, received atomic.Int64
	lastActive     atomic.Int64 // unix nanos of the last byte either way, for StreamIdleTimeout
}

type chunk struct {
	buf  *[]byte
	data []byte
}

func newStream(c *Conn) *Stream {
	s := &Stream{
		c:        c,
		resp:     make(chan struct{}),
		readWake: make(chan struct{}, 1),
		sendWake: make(chan struct{}, 1),
		declLen:  -1,
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

func (s *Stream) wakeSend() {
	select {
	case s.sendWake <- struct{}{}:
	default:
	}
}

// closeResp closes resp once (run).
func (s *Stream) closeResp() {
	if !s.respClosed {
		s.respClosed = true
		close(s.resp)
	}
}

// sendable reports whether the stream may still send DATA (run).
func (s *Stream) sendable() bool {
	return s.state == stateOpen || s.state == stateHalfClosedRemote
}

func (s *Stream) stopLinger() {
	s.lingering = false
	if s.linger != nil {
		s.linger.Stop()
		s.linger = nil
	}
}

// aLongTimeAgo is a read deadline that wakes a blocked read at once.
var aLongTimeAgo = time.Unix(1, 0)

// fail ends the stream with err for readers and writers, after any data
// already received (run, or Abort). A ReadFrom parked on its source is
// woken, and the server handler's context cancelled.
func (s *Stream) fail(err error) {
	s.reset.Store(true)
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = err
	}
	src := s.src
	s.mu.Unlock()
	s.closeResp()
	s.notifyRead()
	s.wakeSend()
	if src != nil {
		src.SetReadDeadline(aLongTimeAgo)
	}
	if s.cancel != nil {
		s.cancel()
	}
}

func (s *Stream) recvErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rerr != nil {
		return s.rerr
	}
	return ErrLinkClosed
}

// consumedLocked records n consumed bytes and returns how many to give
// back to the peer now, if any: a quarter of the window at a time.
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
	return incr
}

// giveBack hands run bytes the reader consumed. It is kept out of line:
// inlined, its request would grow the frames of Read and WriteTo, and with
// them the stack of every goroutine parked in WriteTo on an idle stream.
//
//go:noinline
func (s *Stream) giveBack(n int64) {
	if n > 0 {
		s.c.post(request{kind: reqConsumed, s: s, n: n})
	}
}

// awaitAnswer waits, on a stream opened by DialEarly, for the server's
// answer, and returns a *DialError if it refused the stream. It is called
// with rmu held, before anything is read: a refusal's body is never taken
// for the target's data.
func (s *Stream) awaitAnswer() error {
	if !s.early || s.answered {
		return s.earlyErr
	}
	for {
		select {
		case <-s.resp:
			s.answered = true
			s.earlyErr = s.answerErr()
			return s.earlyErr
		default:
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return net.ErrClosed
		}
		select {
		case <-s.resp:
		case <-s.rdl.done():
			return os.ErrDeadlineExceeded
		case <-s.readWake:
			// Closed, a new deadline, or data: look again.
		}
	}
}

// answerErr is the verdict of the answer to an early stream, once resp is
// closed.
func (s *Stream) answerErr() error {
	if !s.gotResponse {
		return s.recvErr()
	}
	if s.status/100 == 2 {
		return nil
	}
	de := &DialError{Target: s.target, Status: s.status}
	de.Type, de.Details = proxystatus.Parse(s.respHeader.Get("Proxy-Status"))
	return de
}

// Answer reports the server's answer to a client stream: its status and
// header fields, and whether it has come yet (a stream opened by DialEarly
// may still be waiting for it). It never waits.
func (s *Stream) Answer() (status int, header http.Header, ok bool) {
	select {
	case <-s.resp:
		if s.gotResponse {
			return s.status, s.respHeader, true
		}
	default:
	}
	return 0, nil, false
}

// Read reads data received on the stream.
func (s *Stream) Read(p []byte) (int, error) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if err := s.awaitAnswer(); err != nil {
		return 0, err
	}
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
			s.giveBack(incr)
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
	if err := s.awaitAnswer(); err != nil {
		return 0, err
	}
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
			s.giveBack(incr)
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

var errWriteAfterCloseWrite = errors.New("tunnel: write after CloseWrite")

// sendErr is why no more data can be sent, or nil.
func (s *Stream) sendErr() error {
	s.mu.Lock()
	closed, rerr := s.closed, s.rerr
	s.mu.Unlock()
	switch {
	case closed:
		return net.ErrClosed
	case rerr != nil:
		return rerr
	case s.reset.Load():
		return ErrStreamReset
	}
	s.smu.Lock()
	done := s.sendClosed
	s.smu.Unlock()
	if done {
		return errWriteAfterCloseWrite
	}
	return nil
}

// credit returns the send credit s holds, waiting while it holds none. It
// asks run for more, without waiting, once the budget falls under twice
// what it wants, so a busy stream rarely waits. beforeBlock, if set, runs
// before the first wait.
func (s *Stream) credit(want int, beforeBlock func() error) (int64, error) {
	c := s.c
	for {
		if err := s.sendErr(); err != nil {
			return 0, err
		}
		if s.wdl.passed() {
			return 0, os.ErrDeadlineExceeded
		}
		b := s.budget.Load()
		if b < 2*int64(want) && s.asking.CompareAndSwap(false, true) {
			if !c.post(request{kind: reqCredit, s: s, n: 2 * int64(want)}) {
				return 0, ErrLinkClosed
			}
		}
		if b > 0 {
			return b, nil
		}
		if beforeBlock != nil {
			if err := beforeBlock(); err != nil {
				return 0, err
			}
			beforeBlock = nil
		}
		select {
		case <-s.sendWake:
		case <-s.wdl.done():
			return 0, os.ErrDeadlineExceeded
		case <-c.done:
			return 0, ErrLinkClosed
		}
	}
}

// take spends up to n bytes of the budget and returns how much it spent:
// less than asked, or none, if run took the budget back meanwhile.
func (s *Stream) take(n int64) int64 {
	for {
		b := s.budget.Load()
		if b <= 0 {
			return 0
		}
		g := min(b, n)
		if s.budget.CompareAndSwap(b, b-g) {
			s.c.outstanding.Add(-g)
			return g
		}
	}
}

// queueFrame waits for send credit, takes up to len(p) bytes of it and
// sends one DATA frame carrying that much of p. The frame is queued under
// smu, the lock CloseWrite takes to queue END_STREAM, so no DATA can ever
// follow END_STREAM. If room is set, it is 9 bytes of header room followed
// by p in one buffer. When the connection is quiet the frame is written at
// once by this goroutine and the returned frame is nil; otherwise the frame
// is queued and returned, and p must stay untouched until it is done.
func (s *Stream) queueFrame(p, room []byte) (*outFrame, int, error) {
	c := s.c
	for {
		want := min(len(p), c.maxPayload())
		credit, err := s.credit(want, nil)
		if err != nil {
			return nil, 0, err
		}
		s.smu.Lock()
		if s.sendClosed {
			s.smu.Unlock()
			return nil, 0, errWriteAfterCloseWrite
		}
		n := s.take(min(int64(want), credit))
		if n <= 0 {
			// run took the budget back meanwhile.
			s.smu.Unlock()
			continue
		}
		f := &outFrame{kind: frameData, stream: s, data: p[:n], room: room, done: make(chan struct{})}
		own := c.enqueue(f, true)
		s.smu.Unlock()
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
// error. For a TCP source it holds no buffer while the source is idle. When
// the stream fails or is closed while ReadFrom waits on r, r's read
// deadline is set in the past to wake it: ReadFrom then returns the
// stream's error.
func (s *Stream) ReadFrom(r io.Reader) (total int64, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if src, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		s.mu.Lock()
		s.src = src
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			s.src = nil
			s.mu.Unlock()
		}()
		// A stream that failed before src was known never woke it.
		if err := s.sendErr(); err != nil {
			return 0, err
		}
	}
	defer func() {
		if err != nil && err != io.EOF {
			// A source woken because the stream ended says so.
			if serr := s.sendErr(); serr != nil && serr != errWriteAfterCloseWrite {
				err = serr
			}
		}
	}()
	idle := sockio.IdleReader(r, frameHeaderLen)
	large := s.c.large
	var (
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
		credit, err := s.credit(size-frameHeaderLen, releaseAll)
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
	s.smu.Lock()
	if s.sendClosed {
		s.smu.Unlock()
		return nil
	}
	s.sendClosed = true
	if s.reset.Load() {
		s.smu.Unlock()
		return ErrStreamReset
	}
	f := &outFrame{kind: frameData, stream: s, end: true}
	own := c.enqueue(f, true)
	s.smu.Unlock()
	var err error
	if own {
		err = c.writeNow(f)
	}
	c.post(request{kind: reqEndSent, s: s})
	return err
}

// Close ends the stream, like closing a TCP socket: with unread data
// buffered, the stream is reset; otherwise END_STREAM is sent (if it was
// not already) and data the peer sends afterwards resets the stream. A
// peer that never finishes is reset after lingerTimeout. Blocked reads and
// writes return net.ErrClosed; a ReadFrom waiting on its source is woken.
func (s *Stream) Close() error {
	if !s.markClosed() {
		return nil
	}
	s.mu.Lock()
	unread := len(s.chunks) > 0
	for _, ch := range s.chunks {
		if ch.buf != nil {
			putBuf(ch.buf, s.c.large)
		}
	}
	s.chunks = nil
	s.mu.Unlock()
	if !unread {
		s.CloseWrite()
	}
	var n int64
	if unread {
		n = 1
	}
	s.c.post(request{kind: reqClose, s: s, n: n})
	return nil
}

// markClosed marks the stream closed for its user and wakes whatever
// waits on it; it reports false if it was already closed.
func (s *Stream) markClosed() bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.closed = true
	src := s.src
	s.mu.Unlock()
	s.notifyRead()
	s.wakeSend()
	if src != nil {
		src.SetReadDeadline(aLongTimeAgo)
	}
	s.rdl.set(time.Time{})
	s.wdl.set(time.Time{})
	return true
}

// errAborted is why an aborted stream's own reads and writes fail.
var errAborted = errors.New("tunnel: stream aborted")

// Abort ends the stream at once, as a TCP reset ends a connection: the peer
// gets RST_STREAM with CONNECT_ERROR (RFC 9113 §8.5: the connection the
// stream carries was reset or failed), nothing queued for the stream is
// sent, and the stream is closed here. A proxy calls it when its side of a
// tunnel ends in an error, so the error reaches the other end as one and a
// truncated transfer is never taken for a complete one.
func (s *Stream) Abort() error {
	s.smu.Lock()
	s.sendClosed = true
	s.smu.Unlock()
	s.reset.Store(true)
	s.mu.Lock()
	if s.rerr == nil {
		s.rerr = errAborted
	}
	s.mu.Unlock()
	s.markClosed()
	s.c.post(request{kind: reqReset, s: s, code: http2.ErrCodeConnect, err: errAborted})
	return nil
}

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

// SetWriteDeadline sets the write deadline and wakes a blocked writer.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	s.wdl.set(t)
	s.wakeSend()
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
