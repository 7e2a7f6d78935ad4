package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Config tunes one HTTP/2 connection. A zero Config is valid.
type Config struct {
	// StreamWindow is each stream's receive window in bytes: how much a
	// peer may send on one stream before the reader consumes it. It bounds
	// the memory a stalled reader pins. If zero, 4 MiB is used.
	StreamWindow int
	// MaxStreamWindow, if above StreamWindow, lets a stream's receive
	// window grow up to it while the window limits a fast reader on a
	// long path (see growWindow): a reader that stalls after running fast
	// then pins up to MaxStreamWindow, not StreamWindow. If zero, windows
	// do not grow.
	MaxStreamWindow int
	// MaxFrameSize is the largest frame payload this side accepts and the
	// largest DATA frame it sends (the peer's limit permitting). If zero,
	// 1 MiB is used. It must be between 16 KiB and 16 MiB-1.
	MaxFrameSize int
	// MaxStreams is how many streams the peer may have open at once
	// (servers only). A stream counts until it has ended and its handler
	// has returned. If zero, 10000 is used.
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
	initialWindow       = 65535 // RFC 9113 §6.9.2
	maxWindow           = 1<<31 - 1
	minFrameSize        = 16 << 10
	maxFrameSizeLim     = 1<<24 - 1
)

// connWindow is the connection-level receive window. Credit is returned on
// receipt (see the package comment), so it only needs to exceed what can be
// in flight on the wire. A variable, so a test can make it small enough to
// overrun.
var connWindow int64 = 1 << 30

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
	case c.StreamWindow < initialWindow || c.StreamWindow > maxWindow:
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
//
// One goroutine, run, owns the connection's state: the streams and their
// RFC 9113 §5.1 states, the flow-control windows, the settings of both
// sides, pings, GOAWAY and the abuse limits. Everyone else talks to it
// through two bounded queues: readLoop hands it the frames it reads (in),
// and stream goroutines and the API hand it requests (req). It never waits
// for any of them: it delivers data into a stream's buffer under the
// stream's own lock, queues frames for the writer, and wakes goroutines
// with non-blocking sends. See the package comment for how frames are
// written.
type Conn struct {
	// Immutable after construction.
	nc       net.Conn
	isServer bool
	cfg      Config
	log      *slog.Logger
	large    *bufPool // buffers of cfg.MaxFrameSize
	handler  Handler  // server only
	// baseCtx is the parent of the server's stream contexts: it ends when
	// the connection does (not when Serve's ctx does: streams may drain).
	baseCtx    context.Context
	cancelBase context.CancelFunc

	in       chan inMsg    // readLoop → run; bounded; never closed
	req      chan request  // anyone → run; bounded; never closed
	done     chan struct{} // closed by run (fail) when the connection has ended
	goAway   chan struct{} // closed by run when no new streams may open
	wake     chan struct{} // cap 1; pokes writeLoop when frames are queued; never closed
	loops    sync.WaitGroup
	handlers sync.WaitGroup // server handlers; Serve waits for them

	// Published by run for other goroutines.
	heard         atomic.Int64  // unix nanos when a frame last arrived
	rtt           atomic.Int64  // last measured PING round trip, ns
	numStreams    atomic.Int64  // streams in the table
	peerMaxFrame  atomic.Uint32 // the peer's SETTINGS_MAX_FRAME_SIZE, read by writers
	peerTableSize atomic.Uint32 // the peer's SETTINGS_HEADER_TABLE_SIZE, read by the writer
	goAwayErr     atomic.Pointer[GoAwayError]
	// err is why the connection ended. Written by run before done is
	// closed, and read only after.
	err error

	// Shared by run and the writers of DATA (see conn_flow.go).
	refund      atomic.Int64 // conn-level credit taken for DATA that was never sent
	outstanding atomic.Int64 // credit granted to streams and not yet spent

	// writeErr is the first failed write, set by the writer: run ends the
	// connection with it when readLoop ends on the socket closed after it.
	writeErr atomic.Pointer[error]

	// Owned by readLoop.
	fr *http2.Framer

	// Owned by the writer role (see conn_write.go).
	batch    *bufferedConn // beneath TLS, if the caller used NewBufferedConn; nil otherwise
	bw       *bufio.Writer
	wfr      *http2.Framer
	henc     *hpack.Encoder
	hbuf     bytes.Buffer
	batching bool // a batch is open on batch

	wmu     sync.Mutex  // guards ctrl, data, their spares and writing; never held across I/O
	ctrl    []*outFrame // control frames: written before data
	data    []*outFrame // HEADERS and DATA, in order
	writing bool        // a goroutine holds the writer role
	// Emptied slices, reused for the next frames queued.
	spareCtrl, spareData []*outFrame
	// ctrlQueued counts control frames queued and not yet written: run
	// adds, the writer subtracts. Past maxQueuedControlFrames the peer is
	// not reading what it provokes, and the connection is closed.
	ctrlQueued atomic.Int64

	own ownerState // owned by run
}

// ownerState is the connection state that run alone reads and writes.
type ownerState struct {
	streams         map[uint32]*Stream
	nextID          uint32 // client: the next stream ID to open
	maxPeerID       uint32 // server: the highest stream ID the peer opened
	pending         []*Stream
	peerMaxStreams  uint32
	peerInitWindow  int64
	sendWindow      int64 // conn-level send credit not yet granted to a stream
	recvWindow      int64 // conn-level credit the peer has left
	recvUnacked     int64 // conn-level bytes received, not yet given back
	connWindow      int64 // the connection-level receive window this side keeps
	grown           int64 // receive window growth of the open streams (see growWindow)
	waiters         []*Stream
	reclaimed       bool // budgets were reclaimed since the conn window last grew
	cur             *Stream
	curID           uint32 // the stream of the DATA frame being read
	recentResets    [64]uint32
	nextReset       int
	unackedSettings int
	goingAway       bool
	sentGoAway      bool
	drained         []chan struct{} // closed when no stream is left, after Shutdown
	slots           int             // server: streams open or with a handler running
	pings           map[[8]byte]pingWait
	pingOut         [8]byte // the data of the pending keep-alive PING
	pingSent        bool
	pingTimer       *time.Timer
	pingTicker      *time.Ticker
	idleTicker      *time.Ticker
	emptySince      time.Time
	junk            tokenBucket // PING, SETTINGS, PRIORITY, empty DATA, unknown frames
	resets          tokenBucket // server: early resets and refused streams
}

type pingWait struct {
	ch    chan struct{}
	start time.Time
}

// Handler serves one CONNECT (or other) request on a server connection. It
// must answer with s.Accept or s.Reject; if it returns without doing so,
// the stream is refused with 502. The stream is closed when Handler
// returns, and counts against Config.MaxStreams until then. ctx is the
// stream's own: it is cancelled when the peer resets the stream or the
// connection ends, so a dial in progress stops at once.
type Handler func(ctx context.Context, req *Request, s *Stream)

// Request is a request received on a server connection.
type Request struct {
	Method    string // "CONNECT" for tunnels
	Authority string // host:port
	Header    http.Header
	Conn      *Conn
}

// Queue lengths: how far readLoop may read ahead of run, and how many
// requests may wait for it. Senders wait while a queue is full.
const (
	inQueueLen  = 64
	reqQueueLen = 256
)

func newConn(nc net.Conn, isServer bool, cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		nc:       nc,
		isServer: isServer,
		cfg:      cfg,
		log:      cfg.Logger,
		large:    largePool(cfg.MaxFrameSize),
		in:       make(chan inMsg, inQueueLen),
		req:      make(chan request, reqQueueLen),
		done:     make(chan struct{}),
		goAway:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
	}
	c.own = ownerState{
		streams:         make(map[uint32]*Stream),
		nextID:          1,
		peerMaxStreams:  100, // until the peer's SETTINGS says otherwise (RFC 9113 recommends ≥ 100)
		peerInitWindow:  initialWindow,
		sendWindow:      initialWindow,
		recvWindow:      connWindow, // our first WINDOW_UPDATE raises it from 65535
		connWindow:      connWindow,
		pings:           make(map[[8]byte]pingWait),
		unackedSettings: 1,
		emptySince:      time.Now(),
		junk:            newTokenBucket(junkBurst, junkRate),
		resets:          newTokenBucket(resetBurst, resetRate),
	}
	c.heard.Store(time.Now().UnixNano())
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
	c.baseCtx, c.cancelBase = context.WithCancel(context.Background())
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
	c.queueCtrl(&outFrame{kind: framePreface})
	c.queueCtrl(&outFrame{kind: frameSettings, settings: []http2.Setting{
		{ID: http2.SettingEnablePush, Val: 0},
		{ID: http2.SettingInitialWindowSize, Val: uint32(c.cfg.StreamWindow)},
		{ID: http2.SettingMaxFrameSize, Val: uint32(c.cfg.MaxFrameSize)},
		{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.cfg.MaxHeaderBytes)},
	}})
	c.queueCtrl(&outFrame{kind: frameWindowUpdate, incr: uint32(c.own.connWindow - initialWindow)})
	c.start()
	return c, nil
}

// Serve runs the server side of a tunnel connection on nc (a TLS connection
// whose handshake is complete) until the connection ends, calling h in a new
// goroutine for each request. When ctx ends, the connection shuts down: it
// sends GOAWAY, lets open streams finish for up to Config.ShutdownTimeout,
// then closes. Serve returns after every goroutine of the connection,
// handlers included, has returned.
func Serve(ctx context.Context, nc net.Conn, cfg Config, h Handler) error {
	c, err := newConn(nc, true, cfg)
	if err != nil {
		nc.Close()
		return err
	}
	c.handler = h
	c.queueCtrl(&outFrame{kind: frameSettings, settings: []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: uint32(c.cfg.MaxStreams)},
		{ID: http2.SettingInitialWindowSize, Val: uint32(c.cfg.StreamWindow)},
		{ID: http2.SettingMaxFrameSize, Val: uint32(c.cfg.MaxFrameSize)},
		{ID: http2.SettingMaxHeaderListSize, Val: uint32(c.cfg.MaxHeaderBytes)},
	}})
	c.queueCtrl(&outFrame{kind: frameWindowUpdate, incr: uint32(c.own.connWindow - initialWindow)})
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
	<-c.done
	c.loops.Wait()
	c.handlers.Wait()
	if !stop() {
		<-stopped
	}
	return c.Err()
}

func (c *Conn) start() {
	c.loops.Add(3)
	go c.run()
	go c.readLoop()
	go c.writeLoop()
}

// post hands r to run. It waits while the queue is full, and reports false
// if the connection has ended.
func (c *Conn) post(r request) bool {
	select {
	case c.req <- r:
		return true
	case <-c.done:
		return false
	}
}

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err reports why the connection ended, or nil while it is up or when it
// was closed locally.
func (c *Conn) Err() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	if errors.Is(c.err, errClosedLocally) {
		return nil
	}
	return c.err
}

// probeIfSilent sends the keep-alive PING now, and starts its deadline,
// if nothing has arrived from the peer for longer than d: a stream about
// to be opened on a link that may have died under it (a laptop that woke
// on another network) learns so within PingTimeout, not a PingInterval
// later.
func (c *Conn) probeIfSilent(d time.Duration) {
	if c.cfg.PingInterval <= 0 || time.Since(time.Unix(0, c.heard.Load())) <= d {
		return
	}
	select {
	case c.req <- request{kind: reqProbe}:
	default: // run is busy, so the link is not idle: no probe needed
	}
}

// RTT is the round-trip time measured by the last PING, or 0.
func (c *Conn) RTT() time.Duration { return time.Duration(c.rtt.Load()) }

// NumStreams is the number of open streams.
func (c *Conn) NumStreams() int { return int(c.numStreams.Load()) }

// RemoteAddr is the peer's network address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// NetConn is the underlying connection.
func (c *Conn) NetConn() net.Conn { return c.nc }

// GoingAway is closed once no new streams can be opened on c.
func (c *Conn) GoingAway() <-chan struct{} { return c.goAway }

// GoAwayErr is the peer's GOAWAY error, if it sent one with an error code.
func (c *Conn) GoAwayErr() error {
	if ge := c.goAwayErr.Load(); ge != nil {
		return ge
	}
	return nil
}

var errClosedLocally = errors.New("tunnel link closed locally")

// Close ends the connection at once: it tells the peer (GOAWAY, waiting a
// moment for it to be written), fails every stream, and waits for the
// connection's own goroutines (run, readLoop, writeLoop) to return. It does
// not wait for server handlers, which Serve waits for; a handler may call
// it.
func (c *Conn) Close() error {
	c.post(request{kind: reqCloseConn})
	c.loops.Wait()
	return nil
}

// Shutdown stops new streams (sending GOAWAY as a server), waits until the
// open streams have finished (on a server, until their handlers have
// returned too) or ctx ends, then closes the connection as Close does.
func (c *Conn) Shutdown(ctx context.Context) error {
	drained := make(chan struct{})
	if !c.post(request{kind: reqShutdown, ch: drained}) {
		c.loops.Wait()
		return c.Err()
	}
	select {
	case <-drained:
		c.Close()
		return nil
	case <-c.done:
		c.loops.Wait()
		return c.Err()
	case <-ctx.Done():
		c.Close()
		return ctx.Err()
	}
}

// Ping sends a PING and waits for its answer.
func (c *Conn) Ping(ctx context.Context) (time.Duration, error) {
	ch := make(chan struct{})
	start := time.Now()
	if !c.post(request{kind: reqPing, ch: ch}) {
		return 0, ErrLinkClosed
	}
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

// connError is a connection-level protocol error with a reason, which run
// sends as GOAWAY's debug data.
type connError struct {
	code   http2.ErrCode
	reason string
}

func (e *connError) Error() string { return fmt.Sprintf("%v: %s", e.code, e.reason) }

func (e *connError) Is(target error) bool {
	ce, ok := target.(http2.ConnectionError)
	return ok && http2.ErrCode(ce) == e.code
}

func connErrorf(code http2.ErrCode, format string, args ...any) error {
	return &connError{code: code, reason: fmt.Sprintf(format, args...)}
}

// errorCode is the GOAWAY code for an error that ends the connection:
// a protocol error's own, else none (the connection simply ends).
func errorCode(err error) (http2.ErrCode, string, bool) {
	var ce *connError
	if errors.As(err, &ce) {
		return ce.code, ce.reason, true
	}
	var hce http2.ConnectionError
	if errors.As(err, &hce) {
		return http2.ErrCode(hce), "", true
	}
	return 0, "", false
}
