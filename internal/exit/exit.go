// Package exit is the exit server: it accepts mutually-authenticated TLS 1.3
// connections from agents (or any standard HTTPS-proxy client), serves
// HTTP/2 and HTTP/1.1 CONNECT requests on them, and dials the targets
// through the egress policy.
//
// Every connection completes its TLS handshake under a deadline before the
// server looks at the peer's certificate: reading the connection state any
// earlier would show no certificate at all.
package exit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"fluidity/internal/acceptloop"
	"fluidity/internal/metrics"
	"fluidity/internal/pki"
	"fluidity/internal/relay"
	"fluidity/internal/sockio"
	"fluidity/internal/tunnel"
)

// Config configures a Server. TLS and Dial are required.
type Config struct {
	// TLS is the server's TLS configuration (see pki.ServerConfig): TLS 1.3,
	// client certificates required and verified against the private CA.
	TLS *tls.Config
	// Dial connects to targets; it enforces the egress policy.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// HandshakeTimeout bounds the TLS handshake. If zero, 10s is used.
	HandshakeTimeout time.Duration
	// HeaderTimeout bounds reading an HTTP/1.1 CONNECT request. If zero,
	// 10s is used.
	HeaderTimeout time.Duration
	// MaxHeaderBytes bounds an HTTP/1.1 request header. If zero, 16 KiB.
	MaxHeaderBytes int
	// DialTimeout bounds one target dial. If zero, 10s is used.
	DialTimeout time.Duration
	// ShutdownTimeout is how long open streams may drain once the server
	// is told to stop. If zero, 10s is used.
	ShutdownTimeout time.Duration
	// Tunnel tunes the HTTP/2 connections. If Tunnel.PingInterval is zero,
	// 30s is used, so connections from vanished agents are closed.
	Tunnel tunnel.Config
	// Authorize, if set, checks every CONNECT request before anything is
	// dialed. client is the client certificate's name and header the
	// request's header fields. It returns the identity to log, or an error
	// that may carry StatusCode() and ProxyStatus(): 407 asks for
	// credentials, 403 refuses them, 503 says the check itself failed.
	Authorize func(ctx context.Context, client string, header http.Header) (identity string, err error)
	// MaxLinks bounds the client connections open at once after their TLS
	// handshake: HTTP/2 links and HTTP/1.1 CONNECT connections together.
	// If zero, 1024 is used.
	MaxLinks int
	// MaxLinksPerClient bounds the HTTP/2 links open at once per client
	// certificate name. An agent keeps a pool of links (3 by default), and
	// after a network change its old ones stay open here until a ping
	// finds them dead, so 16 is room for that twice over and for a second
	// machine with the same certificate, and still stops a runaway. If
	// zero, 16 is used.
	MaxLinksPerClient int
	// MaxTunnelsPerClient bounds the HTTP/1.1 CONNECT connections (each one
	// tunnel) open at once per client certificate name and, when Authorize
	// returns an identity, per identity. More get 429. If zero, 64: a
	// browser opens at most 32 connections to one proxy.
	MaxTunnelsPerClient int
	// Revoked, if set, says why the client certificate chain[0] (of a
	// verified chain, its issuer next) is revoked, or returns nil. It is
	// asked at every handshake, which fails when it says so (the reason is
	// "certificate revoked" when its error wraps pki.ErrRevoked), and again
	// for every open link by Recheck. It must be safe for concurrent use.
	Revoked func(chain []*x509.Certificate) error
	// Observer, if set, is told about handshakes, links and streams, for
	// metrics.
	Observer Observer
	// Logger receives one line per stream and per failed handshake. Nil
	// discards.
	Logger *slog.Logger
}

// Observer is told what a Server does, for metrics. Its methods are called
// on the connection's or the stream's goroutine, a few times per link or
// stream (never per byte), and must return quickly.
type Observer interface {
	// HandshakeFailed reports a failed TLS handshake and its reason
	// (pki.HandshakeFailure).
	HandshakeFailed(reason string)
	// LinkRefused reports a connection refused after its handshake because
	// a limit was reached: "max_links", "max_links_per_client" or
	// "max_tunnels_per_client".
	LinkRefused(reason string)
	// LinkRevoked reports an open connection closed by Recheck because its
	// client certificate is revoked.
	LinkRevoked()
	// LinkOpened and LinkClosed bracket an accepted connection.
	LinkOpened()
	LinkClosed()
	// StreamStarted reports a stream whose target was dialed, setup after
	// its request arrived.
	StreamStarted(setup time.Duration)
	// StreamEnded reports how a CONNECT request ended (one of the
	// metrics.Reason values), once per request; started says whether
	// StreamStarted was called for it. identity is the IAM identity the
	// stream proved, else the client certificate's name. up and down are the
	// bytes relayed to and from the target.
	StreamEnded(identity, reason string, started bool, up, down int64)
}

type nopObserver struct{}

func (nopObserver) HandshakeFailed(string)                         {}
func (nopObserver) LinkRefused(string)                             {}
func (nopObserver) LinkRevoked()                                   {}
func (nopObserver) LinkOpened()                                    {}
func (nopObserver) LinkClosed()                                    {}
func (nopObserver) StreamStarted(time.Duration)                    {}
func (nopObserver) StreamEnded(string, string, bool, int64, int64) {}

// Server is an exit server.
type Server struct {
	cfg Config // immutable after New
	log *slog.Logger

	obs Observer // immutable after New; never nil

	start   time.Time                           // immutable after New
	wg      sync.WaitGroup                      // one per connection goroutine
	streams atomic.Int64                        // open tunnel streams
	total   atomic.Int64                        // streams served
	lastAct atomic.Int64                        // unix nanos of the last stream start or end
	accept  atomic.Pointer[acceptloop.Listener] // set by Serve

	mu        sync.Mutex
	links     int                      // guarded by mu; accepted connections open
	perClient map[string]int           // guarded by mu; HTTP/2 links open per client certificate name
	tunnels   map[string]int           // guarded by mu; HTTP/1.1 connections open per certificate name ("cert:NAME") and identity ("id:ARN")
	open      map[*clientConn]struct{} // guarded by mu; admitted connections, for Recheck
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.TLS == nil {
		return nil, errors.New("exit: TLS config is required")
	}
	if cfg.Dial == nil {
		return nil, errors.New("exit: a dialer is required")
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.HeaderTimeout == 0 {
		cfg.HeaderTimeout = 10 * time.Second
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 16 << 10
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Tunnel.PingInterval == 0 {
		cfg.Tunnel.PingInterval = 30 * time.Second
	}
	if cfg.MaxLinks == 0 {
		cfg.MaxLinks = 1024
	}
	if cfg.MaxLinksPerClient == 0 {
		cfg.MaxLinksPerClient = 16
	}
	if cfg.MaxTunnelsPerClient == 0 {
		cfg.MaxTunnelsPerClient = 64
	}
	if cfg.MaxLinks < 0 || cfg.MaxLinksPerClient < 0 || cfg.MaxTunnelsPerClient < 0 {
		return nil, errors.New("exit: negative link limit")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if revoked := cfg.Revoked; revoked != nil {
		// Refused at the handshake: the client learns it there, with a
		// bad_certificate alert.
		cfg.TLS = cfg.TLS.Clone()
		verify := cfg.TLS.VerifyConnection
		cfg.TLS.VerifyConnection = func(cs tls.ConnectionState) error {
			if verify != nil {
				if err := verify(cs); err != nil {
					return err
				}
			}
			return revoked(peerChain(cs))
		}
	}
	cfg.Tunnel.Logger = cfg.Logger
	s := &Server{cfg: cfg, log: cfg.Logger, obs: cfg.Observer, perClient: make(map[string]int), tunnels: make(map[string]int),
		open: make(map[*clientConn]struct{})}
	if s.obs == nil {
		s.obs = nopObserver{}
	}
	s.start = time.Now()
	s.lastAct.Store(s.start.UnixNano())
	return s, nil
}

// OpenStreams is the number of streams open now.
func (s *Server) OpenStreams() int64 { return s.streams.Load() }

// LastActivity is when a stream last started or ended.
func (s *Server) LastActivity() time.Time { return time.Unix(0, s.lastAct.Load()) }

// Serve accepts connections on ln until ctx ends, then stops accepting,
// lets open streams drain for up to ShutdownTimeout and returns after every
// connection has been closed. Temporary accept failures (the process out
// of file descriptors) are retried with backoff, and reported by Ready
// while they last.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	al := acceptloop.New(ln, s.log)
	s.accept.Store(al)
	stop := context.AfterFunc(ctx, func() { al.Close() })
	defer stop()
	// When ctx ends, HTTP/2 connections send GOAWAY and drain for up to
	// ShutdownTimeout (see tunnel.Config); HTTP/1.1 tunnels get the same
	// time before hardCtx closes them.
	hardCtx, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		t := time.AfterFunc(s.cfg.ShutdownTimeout, cancelHard)
		s.wg.Wait()
		t.Stop()
		cancelHard()
	}()
	for {
		nc, err := al.Accept()
		if err != nil {
			if ctx.Err() != nil {
				s.log.Info("exit server stopping", "open_streams", s.streams.Load())
				return nil
			}
			return fmt.Errorf("exit: accept: %w", err)
		}
		s.wg.Add(1)
		go s.serveConn(ctx, hardCtx, nc)
	}
}

// Ready reports why the server cannot take new connections, or nil: while
// accepting them fails (out of file descriptors), the error says so.
func (s *Server) Ready() error {
	al := s.accept.Load()
	if al == nil {
		return errors.New("the exit is not serving yet")
	}
	return al.Err()
}

// serveConn serves one connection. ctx ends when the server begins to stop;
// hardCtx when it must stop now.
func (s *Server) serveConn(ctx, hardCtx context.Context, nc net.Conn) {
	defer s.wg.Done()
	tc := tls.Server(tunnel.NewBufferedConn(nc), s.cfg.TLS)
	hctx, cancel := context.WithTimeout(hardCtx, s.cfg.HandshakeTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		reason := pki.HandshakeFailure(err)
		s.obs.HandshakeFailed(reason)
		s.log.Warn("tls handshake failed", "remote", nc.RemoteAddr().String(), "reason", reason, "err", err)
		nc.Close()
		return
	}
	// Only now, after the handshake, is the peer certificate known.
	state := tc.ConnectionState()
	if len(state.PeerCertificates) == 0 {
		// Unreachable with a config from pki.ServerConfig; refuse anyway.
		s.obs.HandshakeFailed("no client certificate")
		s.log.Warn("tls handshake failed", "remote", nc.RemoteAddr().String(), "reason", "no client certificate")
		nc.Close()
		return
	}
	cc := &clientConn{
		s:        s,
		identity: state.PeerCertificates[0].Subject.CommonName,
		remote:   nc.RemoteAddr().String(),
		chain:    peerChain(state),
		nc:       nc,
	}
	h2 := state.NegotiatedProtocol == "h2"
	release, refusal := s.admitLink(cc.identity, h2)
	if refusal != nil {
		cc.refused(refusal)
		refuseLink(tc, h2, refusal)
		return
	}
	defer release()
	defer s.track(cc)()
	if cc.cutOffIfRevoked() {
		// Revoked between its handshake and now; Recheck may have missed it.
		return
	}
	if h2 {
		tcfg := s.cfg.Tunnel
		tcfg.ShutdownTimeout = s.cfg.ShutdownTimeout
		err = tunnel.Serve(ctx, tc, tcfg, cc.serveStream)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("tunnel connection ended", "client", cc.identity, "remote", cc.remote, "err", err)
		}
		return
	}
	cc.serveHTTP1(hardCtx, tc)
}

// clientConn is one authenticated connection.
type clientConn struct {
	s        *Server
	identity string              // client certificate common name
	remote   string              //
	chain    []*x509.Certificate // immutable; the verified chain of its certificate
	nc       net.Conn            // immutable; closed to cut it off
	cut      atomic.Bool         // it was cut off by Recheck
}

// peerChain is the verified chain of the client's certificate, or what
// it sent if there is none.
func peerChain(cs tls.ConnectionState) []*x509.Certificate {
	if len(cs.VerifiedChains) > 0 {
		return cs.VerifiedChains[0]
	}
	return cs.PeerCertificates
}

// track counts cc among the open connections that Recheck looks at, until
// the func it returns is called.
func (s *Server) track(cc *clientConn) (untrack func()) {
	s.mu.Lock()
	s.open[cc] = struct{}{}
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		delete(s.open, cc)
		s.mu.Unlock()
	}
}

// Recheck asks Config.Revoked again about the client certificate of every
// open connection, and closes those it says are revoked: each is logged
// and counted, and its streams end. It returns how many it closed. Call it
// after the revocations have changed.
func (s *Server) Recheck() int {
	if s.cfg.Revoked == nil {
		return 0
	}
	s.mu.Lock()
	open := make([]*clientConn, 0, len(s.open))
	for cc := range s.open {
		open = append(open, cc)
	}
	s.mu.Unlock()
	n := 0
	for _, cc := range open {
		if cc.cutOffIfRevoked() {
			n++
		}
	}
	return n
}

// cutOffIfRevoked closes the connection if its client certificate is
// revoked now, and reports whether it did.
func (cc *clientConn) cutOffIfRevoked() bool {
	if cc.s.cfg.Revoked == nil {
		return false
	}
	err := cc.s.cfg.Revoked(cc.chain)
	if err == nil || !cc.cut.CompareAndSwap(false, true) {
		return false
	}
	cc.s.obs.LinkRevoked()
	cc.s.log.Warn("link cut off: its client certificate is revoked", "client", cc.identity, "remote", cc.remote, "err", err)
	cc.nc.Close()
	return true
}

// refused counts and logs a refusal of the connection by a limit.
func (cc *clientConn) refused(r *linkRefusal) {
	cc.s.obs.LinkRefused(r.reason)
	cc.s.log.Warn("link refused", "client", cc.identity, "remote", cc.remote, "reason", r.reason, "err", r.msg)
}

// serveStream serves one HTTP/2 CONNECT stream.
func (cc *clientConn) serveStream(ctx context.Context, req *tunnel.Request, st *tunnel.Stream) {
	x := cc.newStream(req.Authority)
	identity, err := cc.authorize(ctx, req.Header)
	x.identity = identity
	if err != nil {
		// The reason is settled before the refusal is sent: a client that
		// has its answer may reset the stream, which is no cancellation.
		reason := metrics.ReasonAuthFailed
		if ctx.Err() != nil {
			reason = metrics.ReasonCanceled
		}
		status, typ := classify(err, http.StatusForbidden)
		st.RejectWith(status, authHeader(status), typ, err.Error())
		x.end(reason, 0, 0, err)
		return
	}
	target, err := cc.dial(ctx, req.Authority)
	if err != nil {
		reason := dialReason(ctx, err) // before the client has its answer, as above
		status, typ := classify(err, http.StatusBadGateway)
		st.Reject(status, typ, err.Error())
		x.end(reason, 0, 0, err)
		return
	}
	x.started()
	var h http.Header
	if identity != "" {
		// The client's own verified identity: lets an agent show whom the
		// exit took it for.
		h = http.Header{tunnel.IdentityHeader: {identity}}
	}
	if err := st.AcceptWith(h); err != nil {
		// The client reset the stream while the target was dialed.
		relay.Abort(target)
		x.end(metrics.ReasonCanceled, 0, 0, err)
		return
	}
	// The target goes first: when the link dies, closing the target is
	// what unblocks the copy that reads from it.
	res := relay.Pipe(target, st)
	x.end(relayReason(res.Err), res.BToA, res.AToB, res.Err)
}

// authorize runs Config.Authorize, if any. Without it, the identity is the
// client certificate's name.
func (cc *clientConn) authorize(ctx context.Context, h http.Header) (string, error) {
	if cc.s.cfg.Authorize == nil {
		return "", nil
	}
	return cc.s.cfg.Authorize(ctx, cc.identity, h)
}

// authHeader is the header a refusal carries: a 407 says how to
// authenticate (RFC 9110 §11.7.1).
func authHeader(status int) http.Header {
	if status == http.StatusProxyAuthRequired {
		return http.Header{"Proxy-Authenticate": {`Bearer realm="fluidity"`}}
	}
	return nil
}

// dialReason is the result reason of a failed target dial. ctx is the
// stream's: it ends when the client resets the stream.
func dialReason(ctx context.Context, err error) string {
	var (
		sc interface{ StatusCode() int }
		ps interface{ ProxyStatus() string }
		ne net.Error
	)
	hasStatus := errors.As(err, &sc)
	hasType := errors.As(err, &ps)
	switch {
	case ctx.Err() != nil || errors.Is(err, context.Canceled):
		return metrics.ReasonCanceled
	case hasStatus && sc.StatusCode() == http.StatusForbidden:
		return metrics.ReasonPolicy
	case sockio.Refused(err), hasType && ps.ProxyStatus() == "connection_refused":
		return metrics.ReasonRefused
	case errors.Is(err, context.DeadlineExceeded), hasStatus && sc.StatusCode() == http.StatusGatewayTimeout,
		errors.As(err, &ne) && ne.Timeout():
		return metrics.ReasonTimeout
	}
	return metrics.ReasonDialFailed
}

// relayReason is the result reason of a relayed stream: ok when both
// directions finished normally, timeout when it was idle too long, reset
// when either end (or the link) aborted it.
func relayReason(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return metrics.ReasonOK
	case errors.Is(err, tunnel.ErrIdle), errors.Is(err, relay.ErrIdle), errors.As(err, &ne) && ne.Timeout():
		return metrics.ReasonTimeout
	}
	return metrics.ReasonReset
}

// stream is one CONNECT request being served, for its log line and
// metrics. It is owned by the request's goroutine.
type stream struct {
	cc       *clientConn
	target   string
	identity string // the IAM identity, once authorized; "" if none
	start    time.Time
	begun    bool // the target was dialed: counted as open
}

func (cc *clientConn) newStream(target string) *stream {
	return &stream{cc: cc, target: target, start: time.Now()}
}

// started counts the stream as open, its target dialed.
func (x *stream) started() {
	x.begun = true
	x.cc.s.streamStarted()
	x.cc.s.obs.StreamStarted(time.Since(x.start))
}

// end logs the stream's line and reports its result.
func (x *stream) end(reason string, up, down int64, err error) {
	if x.begun {
		x.cc.s.streamEnded()
	}
	who := x.identity
	if who == "" {
		who = x.cc.identity
	}
	x.cc.s.obs.StreamEnded(who, reason, x.begun, up, down)
	x.cc.logStream(x.target, x.identity, x.start, up, down, reason, err)
}

func (s *Server) streamStarted() {
	s.streams.Add(1)
	s.total.Add(1)
	s.lastAct.Store(time.Now().UnixNano())
}

// streamEnded records the time first: see Activity.
func (s *Server) streamEnded() {
	s.lastAct.Store(time.Now().UnixNano())
	s.streams.Add(-1)
}

func (cc *clientConn) dial(ctx context.Context, authority string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cc.s.cfg.DialTimeout)
	defer cancel()
	return cc.s.cfg.Dial(ctx, "tcp", authority)
}

// classify maps a dial error to an HTTP status and RFC 9209 error type,
// using the methods the egress dialer's errors carry.
func classify(err error, defaultStatus int) (int, string) {
	status, typ := defaultStatus, "destination_unavailable"
	if defaultStatus == http.StatusForbidden {
		typ = "http_request_denied"
	}
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) {
		status = sc.StatusCode()
	} else if errors.Is(err, context.DeadlineExceeded) {
		status, typ = http.StatusGatewayTimeout, "connection_timeout"
	}
	var ps interface{ ProxyStatus() string }
	if errors.As(err, &ps) && ps.ProxyStatus() != "" {
		typ = ps.ProxyStatus()
	}
	return status, typ
}

// logStream writes the one line a stream gets when it ends: reason is one
// of the metrics.Reason values, result the error's text or "ok".
func (cc *clientConn) logStream(target, identity string, start time.Time, up, down int64, reason string, err error) {
	result := "ok"
	level := slog.LevelInfo
	if err != nil {
		result = err.Error()
		level = slog.LevelWarn
	}
	cc.s.log.Log(context.Background(), level, "stream",
		"client", cc.identity,
		"identity", identity,
		"remote", cc.remote,
		"target", target,
		"up", up,
		"down", down,
		"duration", time.Since(start).Round(time.Microsecond),
		"reason", reason,
		"result", result)
}
