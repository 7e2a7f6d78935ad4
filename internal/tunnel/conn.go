package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"fluidity/internal/proxystatus"
)

// Config tunes one HTTP/2 connection. A zero Config is valid.
type Config struct {
	// StreamWindow is each stream's receive window in bytes: how much a
	// peer may send on one stream before the reader consumes it. It bounds
	// the memory a stalled reader pins. If zero, 4 MiB is used.
	StreamWindow int
	// MaxFrameSize is the largest frame payload this side accepts and the
	// largest DATA frame it sends (the peer's limit permitting). If zero,
	// 1 MiB is used. It must be between 16 KiB and 16 MiB-1.
	MaxFrameSize int
	// MaxStreams is how many streams the peer may have open at once
	// (servers only). If zero, 10000 is used.
	MaxStreams int
	// MaxHeaderBytes bounds the decoded size of a header block. If zero,
	// 16 KiB is used.
	MaxHeaderBytes int
	// PingInterval is how often the connection sends a PING; PingTimeout is
	// how long it waits for the answer before declaring the connection dead
	// and closing it. If PingInterval is zero, no pings are sent. If
	// PingTimeout is zero, 10s is used.
	PingInterval, PingTimeout time.Duration
	// StreamIdleTimeout resets a stream on which nothing has been sent or
	// received for this long, freeing both ends. If zero, streams may idle
	// forever (a quiet SSH session is a legitimate open stream).
	StreamIdleTimeout time.Duration
	// LinkIdleTimeout closes the connection (with GOAWAY) once it has had no
	// open stream for this long. If zero, idle connections stay up.
	LinkIdleTimeout time.Duration
	// ShutdownTimeout (servers only) is how long open streams may finish
	// once Serve's context ends: the server sends GOAWAY, refuses new
	// streams and closes the connection when the last stream ends or the
	// time is up. If zero, the connection closes at once.
	ShutdownTimeout time.Duration
	// Logger receives connection-level events. Nil discards them.
	Logger *slog.Logger
}

const (
	defaultStreamWindow = 4 << 20
	defaultMaxFrame     = 1 << 20
	defaultMaxStreams   = 10000
	defaultHeaderBytes  = 16 << 10
	defaultPingTimeout  = 10 * time.Second
	// connWindow is the connection-level receive window. Credit is returned
	// on receipt (see the package comment), so it only needs to exceed what
	// can be in flight on the wire.
	connWindow      = 1 << 30
	initialWindow   = 65535 // RFC 9113 §6.9.2
	minFrameSize    = 16 << 10
	maxFrameSizeLim = 1<<24 - 1
)

func (c Config) withDefaults() (Config, error) {
	if c.StreamWindow == 0 {
		c.StreamWindow = defaultStreamWindow
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = defaultMaxFrame
	}
	if c.MaxStreams == 0 {
		c.MaxStreams = defaultMaxStreams
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultHeaderBytes
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = defaultPingTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.StreamWindow < initialWindow || c.StreamWindow > 1<<31-1:
		return c, fmt.Errorf("tunnel: stream window %d out of range [%d, 2^31-1]", c.StreamWindow, initialWindow)
	case c.MaxFrameSize < minFrameSize || c.MaxFrameSize > maxFrameSizeLim:
		return c, fmt.Errorf("tunnel: max frame size %d out of range [16384, 16777215]", c.MaxFrameSize)
	case c.MaxStreams < 0 || c.MaxHeaderBytes < 0 || c.PingInterval < 0 || c.PingTimeout < 0 ||
		c.StreamIdleTimeout < 0 || c.LinkIdleTimeout < 0:
		return c, errors.New("tunnel: negative limit in config")
	}
	return c, nil
}

// Conn is one HTTP/2 connection carrying tunnel streams, in the client or
// the server role.
type Conn struct {
	// Immutable after construction.
	nc       net.Conn
	isServer bool
	cfg      Config
	log      *slog.Logger
	large    *bufPool // buffers of cfg.MaxFrameSize
	handler  Handler  // server only
	baseCtx  context.Context
	done     chan struct{} // closed by fail when the connection ends
	goAway   chan struct{} // closed by markGoingAway when no new streams may open
	wake     chan struct{} // cap 1; pokes writeLoop when frames are queued; never closed
	wg       sync.WaitGroup
	rtt      atomic.Int64 // last measured PING round trip, ns
	lastRead atomic.Int64 // unix nanos of the last frame read

	// Owned by readLoop.
	fr          *http2.Framer
	recvUnacked int64 // connection-level bytes received, not yet given back

	// Owned by writeLoop.
	batch    *bufferedConn // beneath TLS, if the caller used NewBufferedConn; nil otherwise
	bw       *bufio.Writer
	wfr      *http2.Framer
	henc     *hpack.Encoder
	hbuf     bytes.Buffer
	batching bool // a batch is open on batch

	// Read by writeLoop, set by readLoop.
	peerMaxFrame  atomic.Uint32
	peerTableSize atomic.Uint32

	wmu     sync.Mutex  // guards ctrl, data, their spares and writing; never held across I/O
	ctrl    []*outFrame // control frames: written before data
	data    []*outFrame // HEADERS and DATA, in order
	writing bool        // a goroutine holds the writer role: it alone uses the fields "owned by the writer"
	// Emptied slices, reused for the next frames queued.
	spareCtrl, spareData []*outFrame

	mu             sync.Mutex // guards the fields below; never held across I/O or channel sends
	streams        map[uint32]*Stream
	nextID         uint32 // client: the next stream ID to open
	maxPeerID      uint32 // server: the highest stream ID the peer opened
	peerMaxStreams uint32
	peerInitWindow int64
	sendWindow     int64         // connection-level send credit
	sendWake       chan struct{} // closed and replaced when send credit grows or a stream's send state changes
	idleWake       chan struct{} // closed and replaced when a stream is removed
	goingAway      bool          // no new streams: the peer sent GOAWAY or Shutdown began; see markGoingAwayLocked
	pings          map[[8]byte]chan struct{}
	err            error        // why the connection ended; set once by fail
	goAwayErr      *GoAwayError // the peer's GOAWAY, if it carried an error code
}

// Handler serves one CONNECT (or other) request on a server connection. It
// must answer with s.Accept or s.Reject; if it returns without doing so,
// the stream is refused with 502. The stream is closed when Handler returns.
// ctx is cancelled when the connection ends.
type Handler func(ctx context.Context, req *Request, s *Stream)

// Request is a request received on a server connection.
type Request struct {
	Method    string // "CONNECT" for tunnels
	Authority string // host:port
	Header    http.Header
	Conn      *Conn
}

func newConn(nc net.Conn, isServer bool, cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		nc:             nc,
		isServer:       isServer,
		cfg:            cfg,
		log:            cfg.Logger,
		large:          largePool(cfg.MaxFrameSize),
		done:           make(chan struct{}),
		goAway:         make(chan struct{}),
		wake:           make(chan struct{}, 1),
		streams:        make(map[uint32]*Stream),
		nextID:         1,
		peerMaxStreams: 100, // until the peer's SETTINGS says otherwise (RFC 9113 recommends ≥ 100)
		peerInitWindow: initialWindow,
		sendWindow:     initialWindow,
		sendWake:       make(chan struct{}),
		idleWake:       make(chan struct{}),
		pings:          make(map[[8]byte]chan struct{}),
	}
	c.peerMaxFrame.Store(minFrameSize)
	c.peerTableSize.Store(4096)
	c.fr = http2.NewFramer(nil, nc)
	c.fr.SetMaxReadFrameSize(uint32(cfg.MaxFrameSize))
	c.fr.MaxHeaderListSize = uint32(cfg.MaxHeaderBytes)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	// Above TLS only small frames are gathered, into full records.
	c.bw = bufio.NewWriterSize(nc, 16<<10)
	c.batch = batcherOf(nc)
	c.wfr = http2.NewFramer(c.bw, nil)
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c, nil
}

// NewClientConn starts the client side of a tunnel connection on nc, which
// should be a TLS connection that negotiated "h2". It sends the connection
// preface and starts the connection's goroutines.
func NewClientConn(nc net.Conn, cfg Config) (*Conn, error) {
	c, err := newConn(nc, false, cfg)
	if err != nil {
		return nil, err
	}
	c.baseCtx = context.Background()
	c.queueCtrl(&outFrame{kind: framePreface})
	c.queueCtrl(&outFrame{kind: frameSettings, settings: []http2.Setting{
		{ID: http2.SettingEnablePush, Val: 0},
		{ID: http2.SettingInitialWindowSize, Val: uint32(c.cfg.StreamWindow)},
		{ID: http2.SettingMaxFrameSize, Val: uint32(c.cfg.MaxFrameSize)},
		{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.cfg.MaxHeaderBytes)},
	}})
	c.queueCtrl(&outFrame{kind: frameWindowUpdate, incr: connWindow - initialWindow})
	c.start()
	return c, nil
}

// Serve runs the server side of a tunnel connection on nc (a TLS connection
// whose handshake is complete) until the connection ends, calling h in a new
// goroutine for each request. It returns after every handler has returned.
func Serve(ctx context.Context, nc net.Conn, cfg Config, h Handler) error {
	c, err := newConn(nc, true, cfg)
	if err != nil {
		nc.Close()
		return err
	}
	c.handler = h
	var cancel context.CancelFunc
	c.baseCtx, cancel = context.WithCancel(ctx)
	defer cancel()
	c.queueCtrl(&outFrame{kind: frameSettings, settings: []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: uint32(c.cfg.MaxStreams)},
		{ID: http2.SettingInitialWindowSize, Val: uint32(c.cfg.StreamWindow)},
		{ID: http2.SettingMaxFrameSize, Val: uint32(c.cfg.MaxFrameSize)},
		{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.cfg.MaxHeaderBytes)},
	}})
	c.queueCtrl(&outFrame{kind: frameWindowUpdate, incr: connWindow - initialWindow})
	c.start()
	stopped := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(stopped)
		if c.cfg.ShutdownTimeout <= 0 {
			c.Close()
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), c.cfg.ShutdownTimeout)
		defer cancel()
		c.Shutdown(sctx)
	})
	c.wg.Wait()
	if !stop() {
		<-stopped
	}
	return c.Err()
}

func (c *Conn) start() {
	c.wg.Add(2)
	go c.readLoop()
	go c.writeLoop()
	if c.cfg.PingInterval > 0 {
		c.wg.Add(1)
		go c.pingLoop()
	}
	if c.cfg.StreamIdleTimeout > 0 || c.cfg.LinkIdleTimeout > 0 {
		c.wg.Add(1)
		go c.idleLoop()
	}
}

// ErrIdle is the reason given for streams and connections closed for
// idleness.
var ErrIdle = errors.New("idle timeout")

// idleLoop resets streams that have been idle for StreamIdleTimeout and
// closes the connection once it has had no stream for LinkIdleTimeout. One
// sweep looks at every stream, so 10,000 streams need no timer each; a
// stream is reset between one and 1¼ timeouts after its last byte.
func (c *Conn) idleLoop() {
	defer c.wg.Done()
	period := time.Hour
	for _, d := range []time.Duration{c.cfg.StreamIdleTimeout, c.cfg.LinkIdleTimeout} {
		if d > 0 {
			period = min(period, max(d/4, 10*time.Millisecond))
		}
	}
	t := time.NewTicker(period)
	defer t.Stop()
	emptySince := time.Now()
	var idle []*Stream
	for {
		select {
		case <-c.done:
			return
		case now := <-t.C:
			idle = idle[:0]
			c.mu.Lock()
			n := len(c.streams)
			if c.cfg.StreamIdleTimeout > 0 {
				cutoff := now.Add(-c.cfg.StreamIdleTimeout).UnixNano()
				for _, s := range c.streams {
					if s.lastActive.Load() < cutoff {
						idle = append(idle, s)
					}
				}
			}
			c.mu.Unlock()
			for _, s := range idle {
				c.log.Info("stream idle: reset", "remote", c.nc.RemoteAddr().String(), "stream", s.id, "idle_timeout", c.cfg.StreamIdleTimeout)
				c.resetStream(s, http2.ErrCodeCancel, fmt.Errorf("%w: nothing sent or received for %v", ErrIdle, c.cfg.StreamIdleTimeout))
			}
			if n > 0 {
				emptySince = now
			} else if c.cfg.LinkIdleTimeout > 0 && now.Sub(emptySince) >= c.cfg.LinkIdleTimeout {
				c.log.Info("link idle: closing", "remote", c.nc.RemoteAddr().String(), "idle_timeout", c.cfg.LinkIdleTimeout)
				c.sendGoAway(http2.ErrCodeNo, time.Second)
				c.fail(fmt.Errorf("%w: no stream for %v", ErrIdle, c.cfg.LinkIdleTimeout))
				return
			}
		}
	}
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err reports why the connection ended, or nil while it is up.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if errors.Is(c.err, errClosedLocally) {
		return nil
	}
	return c.err
}

// RTT is the round-trip time measured by the last PING, or 0.
func (c *Conn) RTT() time.Duration { return time.Duration(c.rtt.Load()) }

// NumStreams is the number of open streams.
func (c *Conn) NumStreams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.streams)
}

// RemoteAddr is the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// NetConn is the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

var errClosedLocally = errors.New("tunnel link closed locally")

// Close ends the connection at once: streams fail, goroutines end. It waits
// for the connection's own goroutines (not for server handlers).
func (c *Conn) Close() error {
	c.sendGoAway(http2.ErrCodeNo, 100*time.Millisecond)
	c.fail(errClosedLocally)
	return nil
}

// Shutdown stops new streams (sending GOAWAY as a server), waits until the
// open streams have finished or ctx ends, then closes the connection.
func (c *Conn) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	c.markGoingAwayLocked()
	last := c.maxPeerID
	c.mu.Unlock()
	if c.isServer {
		c.queueCtrl(&outFrame{kind: frameGoAway, code: http2.ErrCodeNo, streamID: last})
	}
	for {
		c.mu.Lock()
		n, wake := len(c.streams), c.idleWake
		c.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-wake:
		case <-c.done:
			return c.Err()
		case <-ctx.Done():
			c.fail(errClosedLocally)
			return ctx.Err()
		}
	}
	c.fail(errClosedLocally)
	return nil
}

// fail ends the connection with err (the first error wins).
func (c *Conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if c.goAwayErr != nil && !errors.Is(err, errClosedLocally) {
		// The connection ends because the peer said why: say that, not
		// the read error that followed.
		err = c.goAwayErr
	}
	c.err = err
	streams := make([]*Stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	clear(c.streams)
	close(c.sendWake)
	c.sendWake = make(chan struct{})
	close(c.idleWake)
	c.idleWake = make(chan struct{})
	c.mu.Unlock()
	close(c.done)
	if !errors.Is(err, errClosedLocally) {
		// A dead peer: close the socket beneath TLS first, so closing TLS
		// does not wait to send close_notify into a connection that is stuck.
		rawConn(c.nc).Close()
	}
	c.nc.Close()
	streamErr := err
	if errors.Is(err, errClosedLocally) {
		streamErr = ErrLinkClosed
	} else {
		streamErr = fmt.Errorf("%w: %w", ErrLinkClosed, err)
	}
	for _, s := range streams {
		s.failRecv(streamErr)
	}
	if !errors.Is(err, errClosedLocally) {
		c.log.Debug("tunnel connection ended", "remote", c.nc.RemoteAddr().String(), "err", err)
	}
}

// Ping sends a PING and waits for its answer.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	var data [8]byte
	rand.Read(data[:])
	ch := make(chan struct{})
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, ErrLinkClosed
	}
	c.pings[data] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pings, data)
		c.mu.Unlock()
	}()
	start := time.Now()
	c.queueCtrl(&outFrame{kind: framePing, ping: data})
	select {
	case <-ch:
		rtt := time.Since(start)
		c.rtt.Store(int64(rtt))
		return rtt, nil
	case <-c.done:
		return 0, ErrLinkClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (c *Conn) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.PingTimeout)
		_, err := c.Ping(ctx)
		cancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				c.fail(ErrPingTimeout)
			}
			return
		}
	}
}

// ---- writing ----

type frameKind uint8

const (
	framePreface frameKind = iota
	frameSettings
	frameSettingsAck
	framePing
	framePingAck
	frameWindowUpdate
	frameRST
	frameGoAway
	frameHeaders
	frameData
)

// outFrame is a frame waiting for writeLoop.
type outFrame struct {
	kind     frameKind
	stream   *Stream // HEADERS, DATA, RST
	streamID uint32  // WINDOW_UPDATE, GOAWAY (last stream ID)
	settings []http2.Setting
	ping     [8]byte
	incr     uint32
	code     http2.ErrCode
	fields   []hpack.HeaderField
	data     []byte
	room     []byte        // DATA: if set, 9 bytes of header room followed by data, in one buffer
	end      bool          // END_STREAM
	done     chan struct{} // DATA: closed once data has been copied out (nil: nobody waits)
}

// queueCtrl queues a control frame for the write loop.
func (c *Conn) queueCtrl(f *outFrame) {
	c.wmu.Lock()
	c.ctrl = append(c.ctrl, f)
	c.wmu.Unlock()
	c.poke()
}

// enqueue queues f behind the frames already waiting. If mayWrite is set
// and no one is writing and nothing waits, it queues nothing and instead
// gives the caller the writer role: the caller must then call writeNow(f),
// after releasing any lock it holds. Only stream goroutines may write: the
// read loop must never wait on the socket's write side.
func (c *Conn) enqueue(f *outFrame, mayWrite bool) (own bool) {
	c.wmu.Lock()
	if mayWrite && !c.writing && len(c.ctrl) == 0 && len(c.data) == 0 {
		c.writing = true
		c.wmu.Unlock()
		return true
	}
	c.data = append(c.data, f)
	c.wmu.Unlock()
	c.poke()
	return false
}

// writeNow writes f and flushes, as the holder of the writer role, which it
// then gives back. It saves the hand-off to the write loop when the
// connection is otherwise quiet.
func (c *Conn) writeNow(f *outFrame) error {
	err := c.writeFrame(f)
	if err == nil {
		err = c.gather()
	}
	if err == nil {
		err = c.flush()
	}
	c.releaseWriter()
	if err != nil {
		c.fail(fmt.Errorf("write: %w", err))
		return ErrLinkClosed
	}
	return nil
}

// gatherBelow is the size under which a batch waits for frames that
// goroutines ready to run are about to queue, before it is written.
const gatherBelow = 64 << 10

// gather lets the goroutines that are ready to run go first when the batch
// is small, and then writes the frames they queued meanwhile, so that the
// frames of many busy streams leave in one write, not one write each. It
// costs nothing when no other goroutine is ready (a quiet link).
func (c *Conn) gather() error {
	if c.buffered() >= gatherBelow {
		return nil
	}
	runtime.Gosched()
	return c.writeQueued()
}

// buffered is how much the writer has buffered and not yet sent.
func (c *Conn) buffered() int {
	n := c.bw.Buffered()
	if c.batch != nil {
		n += c.batch.batched()
	}
	return n
}

// writeQueued writes the queued frames into the buffers, control frames
// first, until none is left, as the writer. On error the frames not
// written are released.
func (c *Conn) writeQueued() error {
	c.wmu.Lock()
	for len(c.ctrl) > 0 || len(c.data) > 0 {
		ctrl, data := c.ctrl, c.data
		c.ctrl, c.data = c.spareCtrl[:0], c.spareData[:0]
		c.wmu.Unlock()
		for _, f := range ctrl {
			if err := c.writeFrame(f); err != nil {
				c.drain(ctrl, data)
				return err
			}
		}
		for _, f := range data {
			if err := c.writeFrame(f); err != nil {
				c.drain(ctrl, data)
				return err
			}
		}
		clear(ctrl)
		clear(data)
		c.wmu.Lock()
		c.spareCtrl, c.spareData = ctrl, data
	}
	c.wmu.Unlock()
	return nil
}

// releaseWriter gives up the writer role, waking the write loop if frames
// arrived meanwhile.
func (c *Conn) releaseWriter() {
	c.wmu.Lock()
	c.writing = false
	waiting := len(c.ctrl) > 0 || len(c.data) > 0
	c.wmu.Unlock()
	if waiting {
		c.poke()
	}
}

func (c *Conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued frames, control frames first, gathering
// everything queued at once into one flush.
func (c *Conn) writeLoop() {
	defer c.wg.Done()
	for {
		c.wmu.Lock()
		if c.writing || len(c.ctrl) == 0 && len(c.data) == 0 {
			// Nothing to do, or a stream goroutine is writing; it pokes
			// when it is done if frames are waiting.
			c.wmu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.done:
				c.drain(nil, nil)
				return
			}
		}
		c.writing = true
		c.wmu.Unlock()
		err := c.writeQueued()
		if err == nil {
			err = c.gather()
		}
		if err == nil {
			err = c.flush()
		}
		c.releaseWriter()
		if err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			c.drain(nil, nil)
			return
		}
	}
}

// flush writes everything buffered: the frames into TLS records, and the
// records, gathered beneath TLS, to the socket.
func (c *Conn) flush() error {
	if c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return err
		}
	}
	if c.batching {
		c.batching = false
		return c.batch.endBatch()
	}
	return nil
}

// drain releases the writers of frames that will never be written.
func (c *Conn) drain(ctrl, data []*outFrame) {
	c.wmu.Lock()
	data = append(data, c.data...)
	c.data = nil
	c.ctrl = nil
	c.wmu.Unlock()
	for _, f := range data {
		if f.done != nil {
			select {
			case <-f.done:
			default:
				close(f.done)
			}
		}
	}
}

// writeFrame writes one frame into the buffers, as the writer.
func (c *Conn) writeFrame(f *outFrame) error {
	if c.batch != nil && !c.batching {
		c.batch.startBatch()
		c.batching = true
	}
	switch f.kind {
	case framePreface:
		_, err := io.WriteString(c.bw, http2.ClientPreface)
		return err
	case frameSettings:
		return c.wfr.WriteSettings(f.settings...)
	case frameSettingsAck:
		return c.wfr.WriteSettingsAck()
	case framePing:
		return c.wfr.WritePing(false, f.ping)
	case framePingAck:
		return c.wfr.WritePing(true, f.ping)
	case frameWindowUpdate:
		return c.wfr.WriteWindowUpdate(f.streamID, f.incr)
	case frameGoAway:
		err := c.wfr.WriteGoAway(f.streamID, f.code, nil)
		if err == nil {
			err = c.flush()
		}
		if f.done != nil {
			close(f.done)
		}
		return err
	case frameRST:
		s := f.stream
		if s == nil {
			return c.wfr.WriteRSTStream(f.streamID, f.code)
		}
		// A stream whose HEADERS were never written is idle for the peer,
		// and RST_STREAM on an idle stream is a connection error.
		if !s.opened.Load() {
			return nil
		}
		return c.wfr.WriteRSTStream(s.id, f.code)
	case frameHeaders:
		s := f.stream
		if s.resetSent.Load() {
			return nil
		}
		s.opened.Store(true)
		return c.writeHeaders(s.id, f.fields, f.end)
	case frameData:
		s := f.stream
		var err error
		if !s.resetSent.Load() {
			err = c.writeData(s.id, f, f.end)
		} else if len(f.data) > 0 {
			c.refund(len(f.data))
		}
		if f.done != nil {
			close(f.done)
		}
		return err
	}
	return fmt.Errorf("unknown frame kind %d", f.kind)
}

func (c *Conn) writeHeaders(id uint32, fields []hpack.HeaderField, end bool) error {
	if ts := c.peerTableSize.Load(); ts < 4096 {
		c.henc.SetMaxDynamicTableSizeLimit(ts)
	}
	c.hbuf.Reset()
	for _, hf := range fields {
		if err := c.henc.WriteField(hf); err != nil {
			return err
		}
	}
	block := c.hbuf.Bytes()
	max := int(c.peerMaxFrame.Load())
	first := true
	for len(block) > 0 || first {
		n := min(len(block), max)
		frag := block[:n]
		block = block[n:]
		var err error
		if first {
			err = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = c.wfr.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeData writes one DATA frame without copying the payload into the
// framer. A frame whose payload has header room in front of it goes to TLS
// in one write, straight from its buffer; others go through the buffered
// writer, which gathers small frames into full TLS records.
func (c *Conn) writeData(id uint32, f *outFrame, end bool) error {
	p := f.data
	if f.room != nil && c.bw.Buffered() == 0 {
		hdr := f.room[:9]
		putFrameHeader(hdr, id, len(p), end)
		_, err := c.nc.Write(f.room[:9+len(p)])
		return err
	}
	var hdr [9]byte
	putFrameHeader(hdr[:], id, len(p), end)
	if _, err := c.bw.Write(hdr[:]); err != nil {
		return err
	}
	_, err := c.bw.Write(p)
	return err
}

func putFrameHeader(hdr []byte, id uint32, n int, end bool) {
	hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
	hdr[3] = byte(http2.FrameData)
	hdr[4] = 0
	if end {
		hdr[4] = byte(http2.FlagDataEndStream)
	}
	hdr[5], hdr[6], hdr[7], hdr[8] = byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id)
}

// maxPayload is the largest DATA payload to send: the peer's limit, and
// ours, rounded so that header and payload fill whole 16 KiB TLS records.
func (c *Conn) maxPayload() int {
	m := min(int(c.peerMaxFrame.Load()), c.cfg.MaxFrameSize)
	if m >= minFrameSize {
		m = (m+9)/minFrameSize*minFrameSize - 9
	}
	return m
}

// refund returns connection-level send credit for data that was never sent.
func (c *Conn) refund(n int) {
	c.mu.Lock()
	c.sendWindow += int64(n)
	c.broadcastSendLocked()
	c.mu.Unlock()
}

func (c *Conn) broadcastSendLocked() {
	close(c.sendWake)
	c.sendWake = make(chan struct{})
}

// ---- reading ----

func (c *Conn) readLoop() {
	defer c.wg.Done()
	err := c.readFrames()
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		c.sendGoAway(http2.ErrCode(ce), time.Second)
	}
	c.fail(err)
}

// sendGoAway queues a GOAWAY and waits up to max for it to be written, so
// the peer learns why before the connection is torn down.
func (c *Conn) sendGoAway(code http2.ErrCode, max time.Duration) {
	c.mu.Lock()
	last := c.maxPeerID
	c.mu.Unlock()
	f := &outFrame{kind: frameGoAway, code: code, streamID: last, done: make(chan struct{})}
	c.queueCtrl(f)
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-f.done:
	case <-c.done:
	case <-t.C:
	}
}

// connError is a connection-level protocol error with a reason.
func connError(code http2.ErrCode, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{http2.ConnectionError(code)}, args...)...)
}

func (c *Conn) readFrames() error {
	if c.isServer {
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var preface [len(http2.ClientPreface)]byte
		if _, err := io.ReadFull(c.nc, preface[:]); err != nil {
			return fmt.Errorf("read client preface: %w", err)
		}
		if string(preface[:]) != http2.ClientPreface {
			return errors.New("bad client preface: not HTTP/2")
		}
		c.nc.SetReadDeadline(time.Time{})
	}
	first := true
	for {
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			if errors.Is(err, http2.ErrFrameTooLarge) {
				return connError(http2.ErrCodeFrameSize, "frame of %d bytes exceeds %d", fh.Length, c.cfg.MaxFrameSize)
			}
			return fmt.Errorf("read: %w", err)
		}
		c.lastRead.Store(time.Now().UnixNano())
		if first && fh.Type != http2.FrameSettings {
			return connError(http2.ErrCodeProtocol, "first frame is %v, not SETTINGS", fh.Type)
		}
		first = false
		if fh.Type == http2.FrameData {
			if err := c.readData(fh); err != nil {
				return err
			}
			continue
		}
		f, err := c.fr.ReadFrameForHeader(fh)
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				c.resetByID(se.StreamID, se.Code)
				continue
			}
			return err
		}
		if err := c.handleFrame(f); err != nil {
			return err
		}
	}
}

// readData reads a DATA frame's payload straight into buffers the stream
// delivers from. A large frame is delivered in pieces as it arrives, each
// piece what could be read without waiting on the socket, so a frame's
// size never delays its first bytes: the receiver forwards as fast as the
// link brings data, and in as few writes as the link's reads allow.
func (c *Conn) readData(fh http2.FrameHeader) error {
	if fh.StreamID == 0 {
		return connError(http2.ErrCodeProtocol, "DATA on stream 0")
	}
	r := c.nc
	n := int(fh.Length)
	pad := 0
	if fh.Flags.Has(http2.FlagDataPadded) {
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		pad = int(b[0])
		n--
		if pad > n {
			return connError(http2.ErrCodeProtocol, "DATA padding exceeds payload")
		}
		n -= pad
	}
	end := fh.Flags.Has(http2.FlagDataEndStream)
	// Connection-level credit goes back on receipt.
	c.recvUnacked += int64(fh.Length)
	if c.recvUnacked >= connWindow/2 {
		c.queueCtrl(&outFrame{kind: frameWindowUpdate, incr: uint32(c.recvUnacked)})
		c.recvUnacked = 0
	}
	s, err := c.streamForData(fh.StreamID)
	if s == nil {
		if err != nil {
			return err
		}
		if _, err := io.CopyN(io.Discard, r, int64(n+pad)); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return nil
	}
	if !s.windowHolds(int(fh.Length)) {
		// Refused whole, before any of it is delivered.
		s.deliver(nil, nil, int(fh.Length), false)
		if _, err := io.CopyN(io.Discard, r, int64(n+pad)); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return nil
	}
	// The pad length byte and the padding count against flow control
	// too; they are delivered with the last piece.
	extra := int(fh.Length) - n
	for left := n; left > 0; {
		buf := getBuf(c.pieceSize(left), c.large)
		got, err := c.readPiece((*buf)[:min(left, cap(*buf))])
		if err != nil {
			putBuf(buf, c.large)
			return fmt.Errorf("read: %w", err)
		}
		left -= got
		flow := got
		last := left == 0 && pad == 0
		if last {
			flow += extra
		}
		s.deliver(buf, (*buf)[:got], flow, last && end)
	}
	if pad > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(pad)); err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
	if n == 0 || pad > 0 {
		s.deliver(nil, nil, extra, end)
	}
	return nil
}

// pieceSize is how large a buffer to read the next piece of a frame into,
// with left bytes of its payload to come: about what the link has already
// brought in, so a piece rarely needs a second buffer and a trickle never
// holds a large one.
func (c *Conn) pieceSize(left int) int {
	if c.batch == nil {
		return min(left, c.large.size)
	}
	// TLS may hold up to a record decrypted and another partly read.
	return min(left, c.large.size, c.batch.Buffered()+32<<10)
}

// readPiece reads into p until it is full or the next read would have to
// wait on the socket (when the connection is a bufferedConn), and returns
// how much it read.
func (c *Conn) readPiece(p []byte) (int, error) {
	if c.batch == nil {
		return io.ReadFull(c.nc, p)
	}
	got := 0
	for got < len(p) {
		k, err := c.nc.Read(p[got:])
		got += k
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return got, err
		}
		if c.batch.Buffered() == 0 {
			break
		}
	}
	return got, nil
}

// streamForData finds the open stream for a DATA frame. A nil stream with a
// nil error means the frame is to be dropped.
func (c *Conn) streamForData(id uint32) (*Stream, error) {
	c.mu.Lock()
	s := c.streams[id]
	idle := c.idleIDLocked(id)
	c.mu.Unlock()
	if s != nil {
		return s, nil
	}
	if idle {
		return nil, connError(http2.ErrCodeProtocol, "DATA on idle stream %d", id)
	}
	// A stream we already closed or reset: the data is dropped.
	return nil, nil
}

// idleIDLocked reports whether id names a stream that was never opened.
func (c *Conn) idleIDLocked(id uint32) bool {
	if id%2 == 1 { // client-initiated
		if c.isServer {
			return id > c.maxPeerID
		}
		return id >= c.nextID
	}
	return true // no server-initiated streams exist here
}

func (c *Conn) handleFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		return c.handleSettings(f)
	case *http2.MetaHeadersFrame:
		if c.isServer {
			return c.handleRequest(f)
		}
		return c.handleResponse(f)
	case *http2.WindowUpdateFrame:
		return c.handleWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			c.mu.Lock()
			ch := c.pings[f.Data]
			delete(c.pings, f.Data)
			c.mu.Unlock()
			if ch != nil {
				close(ch)
			}
			return nil
		}
		c.queueCtrl(&outFrame{kind: framePingAck, ping: f.Data})
		return nil
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		s := c.streams[f.StreamID]
		idle := c.idleIDLocked(f.StreamID)
		c.mu.Unlock()
		if idle {
			return connError(http2.ErrCodeProtocol, "RST_STREAM on idle stream %d", f.StreamID)
		}
		if s != nil {
			s.peerReset(f.ErrCode)
		}
		return nil
	case *http2.GoAwayFrame:
		c.handleGoAway(f)
		return nil
	case *http2.PushPromiseFrame:
		return connError(http2.ErrCodeProtocol, "PUSH_PROMISE with push disabled")
	case *http2.ContinuationFrame:
		return connError(http2.ErrCodeProtocol, "unexpected CONTINUATION")
	default:
		return nil // PRIORITY, PRIORITY_UPDATE and unknown frames are ignored
	}
}

func (c *Conn) handleSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxFrameSize:
			c.peerMaxFrame.Store(s.Val)
		case http2.SettingHeaderTableSize:
			c.peerTableSize.Store(s.Val)
		case http2.SettingMaxConcurrentStreams:
			c.mu.Lock()
			c.peerMaxStreams = s.Val
			c.broadcastSendLocked()
			c.mu.Unlock()
		case http2.SettingInitialWindowSize:
			c.mu.Lock()
			delta := int64(s.Val) - c.peerInitWindow
			c.peerInitWindow = int64(s.Val)
			for _, st := range c.streams {
				st.sendWindow += delta
				if st.sendWindow > 1<<31-1 {
					c.mu.Unlock()
					return connError(http2.ErrCodeFlowControl, "window overflow after SETTINGS")
				}
			}
			c.broadcastSendLocked()
			c.mu.Unlock()
		}
		return nil
	})
	if err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return err
		}
		return connError(http2.ErrCodeProtocol, "bad SETTINGS: %v", err)
	}
	c.queueCtrl(&outFrame{kind: frameSettingsAck})
	return nil
}

func (c *Conn) handleWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		c.sendWindow += int64(f.Increment)
		if c.sendWindow > 1<<31-1 {
			return connError(http2.ErrCodeFlowControl, "connection window overflow")
		}
		c.broadcastSendLocked()
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idleIDLocked(f.StreamID) {
			return connError(http2.ErrCodeProtocol, "WINDOW_UPDATE on idle stream %d", f.StreamID)
		}
		return nil
	}
	s.sendWindow += int64(f.Increment)
	if s.sendWindow > 1<<31-1 {
		c.mu.Unlock()
		c.resetStream(s, http2.ErrCodeFlowControl, fmt.Errorf("%w: peer overflowed the flow-control window", ErrStreamReset))
		c.mu.Lock()
		return nil
	}
	c.broadcastSendLocked()
	return nil
}

// GoingAway is closed once no new streams can be opened on c.
func (c *Conn) GoingAway() <-chan struct{} { return c.goAway }

func (c *Conn) markGoingAwayLocked() {
	if !c.goingAway {
		c.goingAway = true
		close(c.goAway)
	}
}

func (c *Conn) handleGoAway(f *http2.GoAwayFrame) {
	c.mu.Lock()
	c.markGoingAwayLocked()
	var refused []*Stream
	if !c.isServer {
		for id, s := range c.streams {
			if id > f.LastStreamID {
				refused = append(refused, s)
			}
		}
	}
	c.broadcastSendLocked()
	c.mu.Unlock()
	for _, s := range refused {
		s.failRecv(ErrGoAway)
		c.removeStream(s)
	}
	if f.ErrCode != http2.ErrCodeNo {
		ge := &GoAwayError{Code: f.ErrCode, Reason: string(f.DebugData())}
		c.mu.Lock()
		c.goAwayErr = ge
		c.mu.Unlock()
		c.log.Warn("peer closed tunnel connection", "err", ge)
	}
}

// GoAwayError is a peer's GOAWAY with an error code: why it closed the
// connection, in its own words.
type GoAwayError struct {
	Code   http2.ErrCode
	Reason string // the GOAWAY's debug data
}

func (e *GoAwayError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("peer closed the link (%v)", e.Code)
	}
	return fmt.Sprintf("peer closed the link: %s (%v)", e.Reason, e.Code)
}

// GoAwayErr is the peer's GOAWAY error, if it sent one with an error code.
func (c *Conn) GoAwayErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.goAwayErr == nil {
		return nil
	}
	return c.goAwayErr
}

// handleRequest opens a stream for a request HEADERS frame (server side).
func (c *Conn) handleRequest(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	c.mu.Lock()
	if id%2 == 0 || id <= c.maxPeerID {
		s := c.streams[id]
		c.mu.Unlock()
		if s != nil {
			// Trailers on a tunnel stream: treat END_STREAM only.
			if f.StreamEnded() {
				s.deliver(nil, nil, 0, true)
			}
			return nil
		}
		return connError(http2.ErrCodeProtocol, "HEADERS on closed or invalid stream %d", id)
	}
	c.maxPeerID = id
	if c.goingAway {
		c.mu.Unlock()
		c.queueCtrl(&outFrame{kind: frameRST, streamID: id, code: http2.ErrCodeRefusedStream})
		return nil
	}
	if len(c.streams) >= c.cfg.MaxStreams {
		c.mu.Unlock()
		c.log.Warn("stream refused: too many open streams", "remote", c.nc.RemoteAddr().String(), "limit", c.cfg.MaxStreams)
		c.queueCtrl(&outFrame{kind: frameRST, streamID: id, code: http2.ErrCodeRefusedStream})
		return nil
	}
	s := newStream(c, id)
	s.opened.Store(true)
	s.sendWindow = c.peerInitWindow
	c.streams[id] = s
	c.mu.Unlock()
	if f.Truncated {
		c.resetStream(s, http2.ErrCodeRefusedStream, errors.New("header block too large"))
		return nil
	}
	req := &Request{
		Method:    f.PseudoValue("method"),
		Authority: f.PseudoValue("authority"),
		Header:    make(http.Header),
		Conn:      c,
	}
	for _, hf := range f.RegularFields() {
		req.Header.Add(hf.Name, hf.Value)
	}
	if f.StreamEnded() {
		s.deliver(nil, nil, 0, true)
	}
	c.wg.Add(1)
	go c.serveStream(req, s, f.PseudoValue("scheme") != "" || f.PseudoValue("path") != "" || f.PseudoValue("protocol") != "")
	return nil
}

func (c *Conn) serveStream(req *Request, s *Stream, notPlainConnect bool) {
	defer c.wg.Done()
	defer s.Close()
	switch {
	case req.Method != http.MethodConnect:
		s.Reject(http.StatusMethodNotAllowed, "http_request_denied", "this is a CONNECT proxy: only CONNECT is served")
		return
	case notPlainConnect:
		s.Reject(http.StatusBadRequest, "http_request_error", "CONNECT must carry only :method and :authority")
		return
	}
	if _, port, err := net.SplitHostPort(req.Authority); err != nil || port == "" {
		s.Reject(http.StatusBadRequest, "http_request_error", fmt.Sprintf("bad CONNECT authority %q: want host:port", req.Authority))
		return
	}
	c.handler(c.baseCtx, req, s)
	if !s.responded.Load() {
		s.Reject(http.StatusBadGateway, "proxy_internal_error", "request not answered")
	}
}

// handleResponse delivers response HEADERS to a stream we opened (client).
func (c *Conn) handleResponse(f *http2.MetaHeadersFrame) error {
	c.mu.Lock()
	s := c.streams[f.StreamID]
	idle := c.idleIDLocked(f.StreamID)
	c.mu.Unlock()
	if idle {
		return connError(http2.ErrCodeProtocol, "HEADERS on idle stream %d", f.StreamID)
	}
	if s == nil {
		return nil
	}
	if s.gotResponse.Load() {
		// Trailers: only END_STREAM matters to a byte pipe.
		if f.StreamEnded() {
			s.deliver(nil, nil, 0, true)
		}
		return nil
	}
	status := parseStatus(f.PseudoValue("status"))
	if status == 0 {
		c.resetStream(s, http2.ErrCodeProtocol, fmt.Errorf("%w: bad :status %q", ErrStreamReset, f.PseudoValue("status")))
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
	s.gotResponse.Store(true)
	s.respOnce.Do(func() { close(s.resp) })
	if f.StreamEnded() {
		s.deliver(nil, nil, 0, true)
	}
	return nil
}

// resetByID resets a stream named by a stream-level read error.
func (c *Conn) resetByID(id uint32, code http2.ErrCode) {
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		c.resetStream(s, code, fmt.Errorf("%w: protocol error %v", ErrStreamReset, code))
		return
	}
	c.queueCtrl(&outFrame{kind: frameRST, streamID: id, code: code})
}

// resetStream sends RST_STREAM for s (once), fails it locally and forgets it.
func (c *Conn) resetStream(s *Stream, code http2.ErrCode, err error) {
	if !s.resetSent.CompareAndSwap(false, true) {
		return
	}
	c.queueCtrl(&outFrame{kind: frameRST, stream: s, code: code})
	s.failRecv(err)
	c.removeStream(s)
}

// removeStream forgets s and wakes anyone waiting for streams to finish.
func (c *Conn) removeStream(s *Stream) {
	s.mu.Lock()
	if s.linger != nil {
		s.linger.Stop()
	}
	s.mu.Unlock()
	c.mu.Lock()
	if c.streams[s.id] == s {
		delete(c.streams, s.id)
		close(c.idleWake)
		c.idleWake = make(chan struct{})
	}
	c.broadcastSendLocked()
	c.mu.Unlock()
}

// openStream sends a request HEADERS frame and returns the new stream
// (client side). It waits while the peer's stream limit is reached.
func (c *Conn) openStream(ctx context.Context, method, authority string, header http.Header) (*Stream, error) {
	fields := []hpack.HeaderField{
		{Name: ":method", Value: method},
		{Name: ":authority", Value: authority},
	}
	for k, vs := range header {
		lk := strings.ToLower(k)
		for _, v := range vs {
			fields = append(fields, hpack.HeaderField{Name: lk, Value: v, Sensitive: lk == "proxy-authorization"})
		}
	}
	for {
		c.mu.Lock()
		switch {
		case c.err != nil:
			c.mu.Unlock()
			return nil, ErrLinkClosed
		case c.goingAway:
			c.mu.Unlock()
			return nil, ErrGoAway
		case c.nextID > 1<<31-1:
			c.markGoingAwayLocked()
			c.mu.Unlock()
			return nil, ErrGoAway
		}
		if uint32(len(c.streams)) < c.peerMaxStreams {
			s := newStream(c, c.nextID)
			c.nextID += 2
			s.sendWindow = c.peerInitWindow
			c.streams[s.id] = s
			// Queue (or take the writer role) under mu, so HEADERS go out
			// in stream-ID order.
			f := &outFrame{kind: frameHeaders, stream: s, fields: fields}
			own := c.enqueue(f, true)
			c.mu.Unlock()
			if own {
				if err := c.writeNow(f); err != nil {
					return nil, err
				}
			}
			return s, nil
		}
		wake := c.sendWake
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.done:
			return nil, ErrLinkClosed
		}
	}
}

// Dial opens a CONNECT stream to addr (host:port) and waits for the
// server's answer. header carries extra request headers (may be nil). A
// refusal is returned as a *DialError.
func (c *Conn) Dial(ctx context.Context, addr string, header http.Header) (*Stream, error) {
	if c.isServer {
		return nil, errors.New("tunnel: Dial on a server connection")
	}
	s, err := c.openStream(ctx, http.MethodConnect, addr, header)
	if err != nil {
		return nil, err
	}
	select {
	case <-s.resp:
	case <-ctx.Done():
		c.resetStream(s, http2.ErrCodeCancel, ctx.Err())
		return nil, ctx.Err()
	}
	if !s.gotResponse.Load() {
		err := s.recvErr()
		s.Close()
		return nil, err
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
