// Package agent is the local proxy: one localhost port that speaks HTTP
// proxy (absolute-URI requests, CONNECT, WebSocket) and SOCKS5, told apart
// by the first byte, with every client connection carried as one stream of
// the tunnel link to the exit server.
package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"fluidity/internal/acceptloop"
	"fluidity/internal/admin"
	"fluidity/internal/fastopen"
	"fluidity/internal/httpproxy"
	"fluidity/internal/lifecycle"
	"fluidity/internal/route"
	"fluidity/internal/sockio"
	"fluidity/internal/socks5"
	"fluidity/internal/tunnel"
)

// Config configures an Agent. TLS is required, and Exit or Lifecycle.
type Config struct {
	// Exit is the exit server's host:port, for an exit that is always
	// running.
	Exit string
	// Lifecycle, if set, finds and wakes an exit that runs on demand;
	// Exit is then ignored. The agent wakes it at the first client
	// connection (WakeOnStart: at once).
	Lifecycle *lifecycle.Exit
	// WakeOnStart wakes the Lifecycle's exit when Serve starts.
	WakeOnStart bool
	// TLS is the client TLS configuration (see pki.ClientConfig).
	TLS *tls.Config
	// Tunnel tunes the link: ping interval and timeout, windows, backoff,
	// how long new connections wait while the link is down.
	Tunnel tunnel.ClientConfig
	// HeaderTimeout bounds reading a request header, and the wait for a new
	// client's first byte. If zero, 10s is used.
	HeaderTimeout time.Duration
	// IdleTimeout closes idle keep-alive client connections. If zero, 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request header. If zero, 64 KiB.
	MaxHeaderBytes int
	// SOCKSTimeout bounds the SOCKS5 negotiation. If zero, 10s is used.
	SOCKSTimeout time.Duration
	// ShutdownTimeout is how long open connections may drain on shutdown.
	// If zero, 10s is used.
	ShutdownTimeout time.Duration
	// MaxConnections bounds the client connections open at once; more are
	// closed as soon as they are accepted, with a log line. If zero, 4096.
	MaxConnections int
	// Direct, if set, names the targets that are dialed directly rather
	// than through the exit (split routing). The same rules are served as a
	// PAC file at /proxy.pac on the proxy port, so browsers that use it
	// send those targets direct in the first place.
	Direct *route.Rules
	// DirectDial dials the targets Direct names. If nil, a net.Dialer is
	// used.
	DirectDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DisableFastOpen turns fast open off: every CONNECT and SOCKS5
	// request waits for the exit to reach its target before the client is
	// answered, so a refusal reaches it as a status or reply code. With
	// fast open (the default), tunnels to FastOpenPorts are answered at
	// once and carry the client's first bytes with their request, a round
	// trip to the exit sooner (see package fastopen).
	DisableFastOpen bool
	// FastOpenPorts are the target ports where clients speak first. If
	// empty, fastopen.DefaultPorts (443).
	FastOpenPorts []int
	// IAM describes the IAM identity the agent proves, for Report ("" if
	// none).
	IAM string
	// Observer, if set, is told about streams and results, for metrics.
	Observer Observer
	// Logger receives one line per stream and link events. Nil discards.
	Logger *slog.Logger
}

// Observer is told what an Agent does, for metrics. Its methods are called
// on the client connection's goroutine, once per stream or request (never
// per byte), and must return quickly.
type Observer interface {
	// StreamOpened reports a tunnel stream opened, setup after it was
	// asked for.
	StreamOpened(setup time.Duration)
	// Result reports how a client request ended: frontend is "connect",
	// "forward" or "socks5", reason one of the metrics.Reason values.
	Result(frontend, reason string)
}

type nopObserver struct{}

func (nopObserver) StreamOpened(time.Duration) {}
func (nopObserver) Result(string, string)      {}

// Agent is a running local proxy.
type Agent struct {
	cfg      Config // immutable after New
	log      *slog.Logger
	obs      Observer // never nil
	identity string   // the client certificate's name
	client   *tunnel.Client
	http     *httpproxy.Handler
	socks    *socks5.Server

	listenAddr atomic.Pointer[string]              // set by Serve while it listens; nil otherwise
	accept     atomic.Pointer[acceptloop.Listener] // set by Serve
	verified   atomic.Pointer[string]              // the identity the exit last verified (IAM ARN); nil until then
	conns      connCounter
	httpConns  sync.Map // net.Conn → *httpConn: connections the HTTP server owns
	streams    streamSet

	// busy counts HTTP requests being served (a CONNECT tunnel or an
	// upgraded connection is served until it ends) and SOCKS5 connections.
	// Shutdown drains on it rather than on the link's streams, which
	// include idle keep-alive connections to origins.
	busy atomic.Int64
}

// New checks cfg and builds an Agent.
func New(cfg Config) (*Agent, error) {
	if cfg.Exit == "" && cfg.Lifecycle == nil {
		return nil, errors.New("agent: the exit server address is required (--server HOST:PORT)")
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 2 * time.Minute
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 64 << 10
	}
	if cfg.SOCKSTimeout == 0 {
		cfg.SOCKSTimeout = 10 * time.Second
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{}
	tcfg := cfg.Tunnel
	tcfg.Addr = cfg.Exit
	if cfg.Lifecycle != nil {
		tcfg.Locator = cfg.Lifecycle
		tcfg.WakeOnStart = cfg.WakeOnStart
	}
	tcfg.TLS = cfg.TLS
	tcfg.Logger = cfg.Logger
	// A draining link keeps only the streams in use: pooled idle upstream
	// connections would hold it, and the exit's shutdown, for their idle
	// timeout.
	tcfg.OnDrain = func() { a.http.CloseIdleConnections() }
	client, err := tunnel.NewClient(tcfg)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	*a = Agent{
		cfg:      cfg,
		log:      cfg.Logger,
		obs:      cfg.Observer,
		identity: certName(cfg.TLS),
		client:   client,
	}
	if a.obs == nil {
		a.obs = nopObserver{}
	}
	a.streams.open = make(map[*stream]struct{})
	streamLog := cfg.Logger.With("identity", a.identity)
	var fast *fastopen.Dialer
	if !cfg.DisableFastOpen {
		fast = &fastopen.Dialer{Ports: cfg.FastOpenPorts, Dial: a.DialEarly,
			Ready: func(addr string) bool { return client.Up() && !a.routedDirect(addr) }}
	}
	a.http = &httpproxy.Handler{Dial: a.dialRouted, FastOpen: fast, Logger: streamLog, Hooks: httpproxy.Hooks{Ended: a.httpEnded}}
	a.socks = &socks5.Server{Dial: a.dialRouted, FastOpen: fast, Logger: streamLog, HandshakeTimeout: cfg.SOCKSTimeout,
		Hooks: socks5.Hooks{Ended: a.socksEnded}}
	return a, nil
}

// Status reports the tunnel link's state.
func (a *Agent) Status() tunnel.Status { return a.client.Status() }

// Listen opens the agent's listener. A non-loopback address is refused
// unless allowNonLoopback is set: an open proxy on a LAN is a hazard.
func Listen(addr string, allowNonLoopback bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("agent: listen address %q: %w (example: 127.0.0.1:8080)", addr, err)
	}
	if !allowNonLoopback && !admin.LocalHost(host) {
		return nil, fmt.Errorf("agent: refusing to listen on %q: it is not a loopback address, so anyone who can reach it could use your exit; use 127.0.0.1 or pass --allow-non-loopback", addr)
	}
	// Clients are local: TCP keep-alive probes would find nothing a closed
	// socket does not, and setting them up costs system calls per accept.
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if sockio.AddrInUse(err) {
		return nil, addrTakenError(addr)
	}
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	return ln, nil
}

// ErrAddrInUse means the listen address is taken by another program.
var ErrAddrInUse = errors.New("address already in use")

// addrTakenError is ErrAddrInUse with the address and the fix, said once.
type addrTakenError string

func (a addrTakenError) Error() string {
	return fmt.Sprintf("agent: %s is taken: another program (another agent?) listens there; stop it, or choose a free port with --listen (example: --listen 127.0.0.1:8090)", string(a))
}

func (a addrTakenError) Is(target error) bool { return target == ErrAddrInUse }

// Serve runs the link to the exit and serves clients on ln until ctx ends.
// Then it stops accepting, lets open connections finish for up to
// ShutdownTimeout, closes the link and returns.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	linkCtx, stopLink := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.client.Run(linkCtx)
	}()
	defer func() {
		stopLink()
		wg.Wait()
	}()

	httpLn := newChanListener(ln.Addr())
	srv := &http.Server{
		Handler:           http.HandlerFunc(a.serveHTTP),
		ReadHeaderTimeout: a.cfg.HeaderTimeout,
		IdleTimeout:       a.cfg.IdleTimeout,
		MaxHeaderBytes:    a.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
		ConnContext:       a.connContext,
		ConnState:         a.connState,
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Serve(httpLn)
	}()

	// connCtx ends when the drain time is up: SOCKS connections close.
	connCtx, cancelConns := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelConns()
	var conns sync.WaitGroup
	al := acceptloop.New(ln, a.log)
	a.accept.Store(al)
	stop := context.AfterFunc(ctx, func() { al.Close() })
	defer stop()
	addr := ln.Addr().String()
	a.listenAddr.Store(&addr)
	defer a.listenAddr.Store(nil)
	exit := a.cfg.Exit
	if a.cfg.Lifecycle != nil {
		exit = "on demand"
	}
	a.log.Info("agent listening", "addr", addr, "exit", exit, "identity", a.identity)
	var acceptErr error
	for {
		// Temporary failures (out of file descriptors) are retried inside
		// with backoff, and reported by Ready while they last.
		nc, err := al.Accept()
		if err != nil {
			if ctx.Err() == nil {
				acceptErr = fmt.Errorf("agent: accept: %w", err)
			}
			break
		}
		if !a.conns.acquire(a.cfg.MaxConnections) {
			a.refuseConn(nc)
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			if !a.serveConn(connCtx, nc, httpLn) {
				a.conns.release()
			}
		}()
	}

	// Shutdown: no new connections; give open ones ShutdownTimeout.
	a.log.Info("agent stopping", "open_streams", a.client.Status().Streams)
	httpLn.Close()
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx) // waits for requests in flight; hijacked tunnels are counted below
	a.waitIdle(sctx)
	cancelConns()
	srv.Close()
	a.http.Close()
	conns.Wait()
	return acceptErr
}

// serveHTTP serves one request with the HTTP front-end, counted in busy.
// A request body that sends nothing for IdleTimeout is cut off: the
// server's ReadHeaderTimeout covers only the header.
func (a *Agent) serveHTTP(w http.ResponseWriter, r *http.Request) {
	a.busy.Add(1)
	defer a.busy.Add(-1)
	defer a.releaseIfHijacked(r)
	if a.servePAC(w, r) {
		return
	}
	if r.Method != http.MethodConnect && r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: a.cfg.IdleTimeout}
	}
	a.http.ServeHTTP(w, r)
}

// waitIdle waits until no request or SOCKS5 connection is being served, or
// ctx ends.
func (a *Agent) waitIdle(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for a.busy.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveConn tells SOCKS5 from HTTP by the first byte. It reports whether
// it handed the connection to the HTTP server, which then owns it; else the
// connection is closed when serveConn returns.
func (a *Agent) serveConn(ctx context.Context, nc net.Conn, httpLn *chanListener) (handedOff bool) {
	nc.SetReadDeadline(time.Now().Add(a.cfg.HeaderTimeout))
	first, conn, err := peekFirstByte(nc)
	if err != nil {
		a.log.Debug("client sent nothing", "client", nc.RemoteAddr().String(), "err", err)
		nc.Close()
		return false
	}
	conn.SetReadDeadline(time.Time{})
	switch first {
	case 0x05:
		a.busy.Add(1)
		defer a.busy.Add(-1)
		a.socks.ServeConn(ctx, conn)
		return false
	case 'C':
		// Most tunnels begin with CONNECT: serve those on the bare socket,
		// without an HTTP server's buffers and goroutine hand-offs.
		if conn = a.serveLeadingConnect(conn); conn == nil {
			return false
		}
	}
	if !httpLn.deliver(conn) {
		conn.Close()
		return false
	}
	return true
}

// serveLeadingConnect reads the first request head. A CONNECT is served
// here and nil returned; anything else (another method starting with C, a
// malformed request) comes back as a connection that replays the bytes read,
// for the HTTP server to handle.
func (a *Agent) serveLeadingConnect(conn net.Conn) net.Conn {
	conn.SetReadDeadline(time.Now().Add(a.cfg.HeaderTimeout))
	rec := &recorder{r: io.LimitReader(conn, int64(a.cfg.MaxHeaderBytes))}
	br := bufio.NewReaderSize(rec, 4<<10)
	req, err := http.ReadRequest(br)
	if err != nil || req.Method != http.MethodConnect {
		// A header still arriving at the deadline can surface as a parse
		// error of the part read so far: the read error tells the truth.
		if errors.Is(rec.err, os.ErrDeadlineExceeded) {
			conn.Close()
			return nil
		}
		conn.SetReadDeadline(time.Time{})
		return &prefixConn{Conn: conn, prefix: rec.buf}
	}
	conn.SetReadDeadline(time.Time{})
	var early []byte
	if n := br.Buffered(); n > 0 {
		early, _ = br.Peek(n)
	}
	req.RemoteAddr = conn.RemoteAddr().String()
	a.busy.Add(1)
	defer a.busy.Add(-1)
	a.http.ServeConnect(conn, req, early)
	return nil
}

// recorder keeps a copy of what is read through it, and the last error.
type recorder struct {
	r   io.Reader
	buf []byte
	err error
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf = append(r.buf, p[:n]...)
	if err != nil {
		r.err = err
	}
	return n, err
}

// chanListener is a net.Listener fed by the first-byte demultiplexer.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn // never closed
	done   chan struct{} // closed by Close
	closer sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.closer.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
