package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"fluidity/internal/httpproxy"
	"fluidity/internal/lifecycle"
	"fluidity/internal/metrics"
	"fluidity/internal/socks5"
	"fluidity/internal/tunnel"
)

// Dial opens a stream through the tunnel, as the front-ends do: it is
// counted in the agent's stream figures until it is closed.
func (a *Agent) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	c, err := a.client.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	a.obs.StreamOpened(time.Since(start))
	st, ok := c.(*tunnel.Stream)
	if !ok {
		return c, nil
	}
	a.noteIdentity(st.ResponseHeader())
	s := &stream{Stream: st, set: &a.streams}
	a.streams.add(s)
	return s, nil
}

// DialEarly opens a stream through the tunnel optimistically, carrying
// first (see tunnel.Client.DialEarly), counted as Dial's streams are. Its
// setup time is not observed: the exit has not answered yet.
func (a *Agent) DialEarly(ctx context.Context, network, addr string, first []byte) (net.Conn, error) {
	c, err := a.client.DialEarly(ctx, network, addr, first)
	if err != nil {
		return nil, err
	}
	st, ok := c.(*tunnel.Stream)
	if !ok {
		return c, nil
	}
	s := &stream{Stream: st, set: &a.streams, agent: a}
	a.streams.add(s)
	return s, nil
}

// noteIdentity records the identity the exit says it verified, from the
// header of its answer to a stream.
func (a *Agent) noteIdentity(h http.Header) {
	if id := h.Get(tunnel.IdentityHeader); id != "" && id != a.exitIdentity() {
		a.verified.Store(&id)
	}
}

// stream is a tunnel stream counted in a streamSet until it is closed. It
// keeps every method of *tunnel.Stream (ReadFrom, WriteTo, CloseWrite), so
// relaying through it costs nothing per byte.
type stream struct {
	*tunnel.Stream
	set *streamSet
	// agent is set on a stream opened early, whose answer (and the
	// identity the exit verified) is read when it ends.
	agent *Agent
	once  sync.Once
}

func (s *stream) Close() error {
	err := s.Stream.Close()
	s.once.Do(s.ended)
	return err
}

// Abort resets the stream (see tunnel.Stream.Abort) and stops counting it.
func (s *stream) Abort() error {
	err := s.Stream.Abort()
	s.once.Do(s.ended)
	return err
}

func (s *stream) ended() {
	s.set.remove(s)
	if s.agent != nil {
		if status, h, ok := s.Answer(); ok && status/100 == 2 {
			s.agent.noteIdentity(h)
		}
	}
}

// streamSet counts the agent's tunnel streams and the bytes they carried.
type streamSet struct {
	mu       sync.Mutex
	open     map[*stream]struct{} // guarded by mu
	total    int64                // guarded by mu; streams opened
	up, down int64                // guarded by mu; bytes of closed streams
}

func (ss *streamSet) add(s *stream) {
	ss.mu.Lock()
	ss.open[s] = struct{}{}
	ss.total++
	ss.mu.Unlock()
}

func (ss *streamSet) remove(s *stream) {
	ss.mu.Lock()
	delete(ss.open, s)
	ss.up += s.BytesSent()
	ss.down += s.BytesReceived()
	ss.mu.Unlock()
}

// counts returns the open and total streams and the bytes carried so far,
// open streams included.
func (ss *streamSet) counts() (open, total, up, down int64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	up, down = ss.up, ss.down
	for s := range ss.open {
		up += s.BytesSent()
		down += s.BytesReceived()
	}
	return int64(len(ss.open)), ss.total, up, down
}

// connCounter counts client connections against MaxConnections.
type connCounter struct {
	open     atomic.Int64
	refused  atomic.Int64
	lastWarn atomic.Int64 // unix nanos of the last "limit reached" log line
}

func (c *connCounter) acquire(max int) bool {
	if c.open.Add(1) > int64(max) {
		c.open.Add(-1)
		c.refused.Add(1)
		return false
	}
	return true
}

func (c *connCounter) release() { c.open.Add(-1) }

// refuseConn closes a connection over MaxConnections, logging it at most
// once a second.
func (a *Agent) refuseConn(nc net.Conn) {
	// Log before closing: whoever sees the connection end can find the line.
	defer nc.Close()
	now := time.Now().UnixNano()
	last := a.conns.lastWarn.Load()
	if now-last < int64(time.Second) || !a.conns.lastWarn.CompareAndSwap(last, now) {
		return
	}
	a.log.Warn("client connection refused: too many open connections; raise max_connections (--max-connections) if this load is expected",
		"client", nc.RemoteAddr().String(), "max_connections", a.cfg.MaxConnections, "refused_total", a.conns.refused.Load())
}

// connKey carries the *httpConn of an HTTP server connection in its
// requests' contexts.
type connKey struct{}

// httpConn is the agent's record of one connection of the HTTP server.
type httpConn struct{ hijacked atomic.Bool }

// connContext records a new HTTP server connection.
func (a *Agent) connContext(ctx context.Context, c net.Conn) context.Context {
	rec := &httpConn{}
	a.httpConns.Store(c, rec)
	return context.WithValue(ctx, connKey{}, rec)
}

// connState releases the connection slot of an HTTP server connection when
// it closes. A hijacked connection is released by releaseIfHijacked when
// its handler returns, since the server no longer tracks it.
func (a *Agent) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateClosed:
		if _, ok := a.httpConns.LoadAndDelete(c); ok {
			a.conns.release()
		}
	case http.StateHijacked:
		if v, ok := a.httpConns.LoadAndDelete(c); ok {
			v.(*httpConn).hijacked.Store(true)
		}
	}
}

// releaseIfHijacked releases the slot of r's connection if r's handler
// took it over (and has now finished with it).
func (a *Agent) releaseIfHijacked(r *http.Request) {
	if rec, ok := r.Context().Value(connKey{}).(*httpConn); ok && rec.hijacked.CompareAndSwap(true, false) {
		a.conns.release()
	}
}

// idleBody cuts off a request body that sends nothing for timeout.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		// The server now starts a read of its own to notice the client
		// leaving; it must not inherit the deadline. After any other
		// error the deadline stays, so the server's discarding of the
		// rest of the body cannot wait forever either.
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// httpEnded classifies an ended HTTP proxy exchange for metrics and the log.
func (a *Agent) httpEnded(e httpproxy.Exchange) string {
	frontend := "forward"
	if e.Connect {
		frontend = "connect"
	}
	reason := resultReason(e.Err, e.BadRequest, e.Connected, false)
	a.obs.Result(frontend, reason)
	return reason
}

// socksEnded classifies an ended SOCKS5 connection.
func (a *Agent) socksEnded(s socks5.Session) string {
	reason := resultReason(s.Err, s.BadRequest, s.Connected, s.Canceled)
	a.obs.Result("socks5", reason)
	return reason
}

// resultReason maps how a client request ended to a metrics.Reason value.
func resultReason(err error, badRequest, connected, canceled bool) string {
	var ne net.Error
	var de *tunnel.DialError
	switch {
	case err == nil && !canceled:
		return metrics.ReasonOK
	case badRequest:
		return metrics.ReasonBadRequest
	case errors.As(err, &de) && !errors.Is(err, tunnel.ErrLinkDown):
		// The exit refused the stream: before the client was answered, or,
		// with fast open, after.
		return dialReason(de)
	case connected && errors.As(err, &ne) && ne.Timeout():
		return metrics.ReasonTimeout
	case connected:
		return metrics.ReasonReset
	case canceled, errors.Is(err, context.Canceled):
		return metrics.ReasonCanceled
	case errors.Is(err, tunnel.ErrLinkDown), errors.Is(err, tunnel.ErrLinkClosed), errors.Is(err, tunnel.ErrGoAway):
		return metrics.ReasonLinkDown
	}
	return metrics.ReasonDialFailed
}

// dialReason maps the exit's refusal of a stream to a metrics.Reason value.
func dialReason(de *tunnel.DialError) string {
	switch {
	case de.Status == http.StatusBadRequest:
		return metrics.ReasonBadRequest
	case de.Status == http.StatusUnauthorized, de.Status == http.StatusProxyAuthRequired, de.Status == http.StatusTooManyRequests:
		return metrics.ReasonAuthFailed
	case de.Status == http.StatusForbidden:
		return metrics.ReasonPolicy
	case de.Type == "connection_refused":
		return metrics.ReasonRefused
	case de.Status == http.StatusGatewayTimeout:
		return metrics.ReasonTimeout
	}
	return metrics.ReasonDialFailed
}

// certName is the common name of the client certificate in cfg.
func certName(cfg *tls.Config) string {
	if cfg == nil || len(cfg.Certificates) == 0 {
		return ""
	}
	c := cfg.Certificates[0]
	if c.Leaf != nil {
		return c.Leaf.Subject.CommonName
	}
	if len(c.Certificate) == 0 {
		return ""
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return ""
	}
	return leaf.Subject.CommonName
}

// Report is the agent's status, as /status serves it and 'fluidity status'
// prints it.
type Report struct {
	State    string    `json:"state"` // connecting, up, down, asleep or stopped
	Since    time.Time `json:"since"` // when State began
	Exit     string    `json:"exit"`
	Listen   string    `json:"listen"`   // the proxy port; "" while not listening
	Identity string    `json:"identity"` // the client certificate's name
	IAM      string    `json:"iam,omitempty"`
	// Verified is the identity the exit last verified for this agent's
	// streams (its canonical IAM ARN); "" until one was.
	Verified     string  `json:"verified_identity,omitempty"`
	OpenStreams  int64   `json:"open_streams"`
	StreamsTotal int64   `json:"streams_total"`
	Connections  int64   `json:"connections"` // client connections open
	BytesUp      int64   `json:"bytes_up"`    // to the exit, since start
	BytesDown    int64   `json:"bytes_down"`
	Reconnects   int     `json:"reconnects"`
	LastError    string  `json:"last_error,omitempty"`
	RTTSeconds   float64 `json:"rtt_seconds"` // last ping round trip, the least over the links up; 0 while none is
	// Links is each link of the agent's pool to the exit.
	Links []LinkReport `json:"links"`
	// Lifecycle is the exit on demand: woken or asleep, its task, this
	// month's hours; nil for an exit at a fixed address.
	Lifecycle *lifecycle.Status `json:"lifecycle,omitempty"`
}

// LinkReport is one link of the agent's pool, in a Report.
type LinkReport struct {
	State      string    `json:"state"` // connecting, up, down, asleep or stopped
	Since      time.Time `json:"since"`
	Streams    int       `json:"streams"` // open on this link
	RTTSeconds float64   `json:"rtt_seconds"`
	LastError  string    `json:"last_error,omitempty"`
}

// Report returns the agent's status.
func (a *Agent) Report() Report {
	st := a.client.Status()
	open, total, up, down := a.streams.counts()
	r := Report{
		State: string(st.State), Since: st.Since, Exit: st.Addr, Identity: a.identity, IAM: a.cfg.IAM, Verified: a.exitIdentity(),
		OpenStreams: open, StreamsTotal: total, Connections: a.conns.open.Load(),
		BytesUp: up, BytesDown: down, Reconnects: st.Reconnects, LastError: st.LastError, RTTSeconds: st.RTT.Seconds(),
	}
	for _, l := range st.Links {
		r.Links = append(r.Links, LinkReport{State: string(l.State), Since: l.Since, Streams: l.Streams,
			RTTSeconds: l.RTT.Seconds(), LastError: l.LastError})
	}
	if p := a.listenAddr.Load(); p != nil {
		r.Listen = *p
	}
	if a.cfg.Lifecycle != nil {
		st := a.cfg.Lifecycle.Status()
		r.Lifecycle = &st
	}
	return r
}

// exitIdentity is the identity the exit last reported verifying, or "".
func (a *Agent) exitIdentity() string {
	if p := a.verified.Load(); p != nil {
		return *p
	}
	return ""
}

// Ready reports why the agent is not ready to carry connections, or nil:
// it is ready while it listens, accepting connections works, and its link
// to the exit is up or the exit is asleep (the next connection wakes it).
func (a *Agent) Ready() error {
	if a.listenAddr.Load() == nil {
		return errors.New("the proxy port is not listening")
	}
	if al := a.accept.Load(); al != nil {
		if err := al.Err(); err != nil {
			return fmt.Errorf("the proxy port: %w", err)
		}
	}
	st := a.client.Status()
	if st.State != tunnel.StateUp && st.State != tunnel.StateAsleep {
		msg := fmt.Sprintf("tunnel link to %s is %s since %s", st.Addr, st.State, st.Since.Format(time.RFC3339))
		if st.LastError != "" {
			msg += ": " + st.LastError
		}
		return errors.New(msg)
	}
	return nil
}

// Snapshot returns the figures the agent's metrics read at scrape time.
func (a *Agent) Snapshot() metrics.AgentSnapshot {
	st := a.client.Status()
	open, total, up, down := a.streams.counts()
	return metrics.AgentSnapshot{
		LinkState: string(st.State), LinkSince: st.Since, LinksUp: linksUp(st), Reconnects: st.Reconnects, RTT: st.RTT,
		ConnsOpen: a.conns.open.Load(), ConnsRefused: a.conns.refused.Load(),
		StreamsOpen: open, StreamsTotal: total, BytesUp: up, BytesDown: down,
	}
}

// linksUp counts the links of st that are up.
func linksUp(st tunnel.Status) int {
	n := 0
	for _, l := range st.Links {
		if l.State == tunnel.StateUp {
			n++
		}
	}
	return n
}
