package tunnel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"time"
)

// ClientConfig configures a Client. TLS is required, and Addr or Locator.
type ClientConfig struct {
	// Addr is the exit server's host:port, for an exit at a fixed address.
	Addr string
	// Links is how many links the client keeps to the exit, a pool: each
	// new stream opens on the one with the fewest open streams and stays
	// there. On a lossy path a lost segment holds every stream of its TCP
	// connection until it is sent again, so several links keep one loss
	// from holding them all (see docs/design.md, "One link or a pool").
	// Link 0 locates and wakes the exit; the others follow it to the
	// address where it came up. If zero, 1.
	Links int
	// Locator, if set, finds an exit that is started on demand and may
	// move (see Locator); Addr is then ignored. The client connects only
	// when a stream needs a link (or at once with WakeOnStart), and goes
	// asleep when the exit has gone.
	Locator Locator
	// WakeOnStart, with a Locator, wakes the exit when Run starts instead
	// of at the first Dial.
	WakeOnStart bool
	// TLS is the client's TLS configuration: its certificate, the CA to
	// verify the exit with, and the exit's stable name in ServerName. It
	// must offer "h2" in NextProtos.
	TLS *tls.Config
	// Conn tunes the HTTP/2 connection. If Conn.PingInterval is zero, 5s is
	// used, so a dead link is noticed within PingInterval+PingTimeout.
	Conn Config
	// DialTimeout bounds TCP connect, TLS handshake and the first PING.
	// If zero, 10s is used.
	DialTimeout time.Duration
	// WaitTimeout is how long Dial waits for a link while none is up.
	// If zero, 30s is used.
	WaitTimeout time.Duration
	// BackoffMin and BackoffMax bound the delay between reconnection
	// attempts, which doubles per failure with jitter. If zero, 250ms and
	// 30s are used. Reconnection never gives up.
	BackoffMin, BackoffMax time.Duration
	// Header, if set, returns extra headers for each CONNECT request.
	Header func(ctx context.Context) (http.Header, error)
	// OnDrain, if set, is called when the exit asks a link to go
	// away gracefully (GOAWAY without error, as when it shuts down): open
	// streams keep the old link while a new one takes new streams, so pooled
	// idle connections on the old link should be closed now, or they keep
	// it (and the exit's shutdown) waiting.
	OnDrain func()
	// NetDial dials the TCP connection. If nil, a net.Dialer is used.
	// The agent's goes through an upstream proxy where one is configured.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ExplainHandshake, if set, rewrites the error of a failed TLS
	// handshake with the exit at addr before it is logged and reported:
	// the agent names TLS interception there.
	ExplainHandshake func(addr string, err error) error
	// Logger receives link events. Nil discards them.
	Logger *slog.Logger
}

// Locator finds an exit that is started on demand, such as a task in the
// cloud: it may be asleep (not running), and its address may change when it
// is replaced.
type Locator interface {
	// Locate returns the exit's address, host:port. With wake set, a
	// stream is waiting for a link: Locate starts the exit if it is not
	// running and waits until it is ready, bounded by ctx and its own
	// timeout. Without wake it only looks, and returns "" and no error if
	// the exit is not running.
	Locate(ctx context.Context, wake bool) (addr string, err error)
}

// LinkState is the state of a Client's link.
type LinkState string

const (
	StateConnecting LinkState = "connecting"
	StateUp         LinkState = "up"
	StateDown       LinkState = "down"
	StateStopped    LinkState = "stopped"
	// StateAsleep: the exit is not running and nothing has asked for it
	// (only with a Locator). The next Dial wakes it.
	StateAsleep LinkState = "asleep"
)

// Status is a snapshot of a Client's links.
type Status struct {
	// State is up while any link is up; otherwise that of link 0, which
	// locates the exit: connecting, down or asleep; stopped after Run.
	State      LinkState
	Since      time.Time // when State began
	Addr       string    // exit address
	Reconnects int       // links established after the first, over all links
	LastError  string    // why the last link or attempt failed
	Streams    int       // open streams, over all links
	RTT        time.Duration
	Links      []LinkStatus // each link of the pool
}

// LinkStatus is a snapshot of one link of a Client's pool.
type LinkStatus struct {
	State     LinkState // connecting, up, down, asleep or stopped
	Since     time.Time
	Streams   int
	RTT       time.Duration // 0 while down
	LastError string
}

// Client keeps a pool of tunnel links to an exit server up (one by
// default) and opens streams on them.
type Client struct {
	cfg ClientConfig // immutable after NewClient
	log *slog.Logger

	// demand is signalled by Dial when it starts to wait for a link, so
	// an asleep Run wakes the exit. Buffered (1), never closed.
	demand chan struct{}

	mu           sync.Mutex    // guards the fields below
	slots        []slot        // one per link of the pool
	upCount      int           // slots with a link up
	next         int           // where the next tie among links starts, so ties take turns
	up           chan struct{} // closed while a link is up; replaced when none is
	failed       chan struct{} // closed when a wake failed, releasing waiting Dials; then replaced
	waiting      int           // Dials waiting for a link and not yet released by a failed wake
	wakeFailures int           // failed wakes so far: tells a Dial whether a failure released it
	addr         string        // the exit's address: Addr, or the last one located
	state        LinkState     // the pool's, as Status reports it
	since        time.Time
	lastErr      error
	closed       bool
	runStarted   bool
}

// slot is one link of the pool.
type slot struct {
	link    *Conn // nil while down
	state   LinkState
	since   time.Time
	lastErr error
	ups     int // links established in this slot
}

// NewClient checks cfg and returns a Client. Call Run to connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Addr == "" && cfg.Locator == nil {
		return nil, errors.New("tunnel: exit address is required")
	}
	if cfg.TLS == nil {
		return nil, errors.New("tunnel: TLS config is required")
	}
	if cfg.Conn.PingInterval == 0 {
		cfg.Conn.PingInterval = 5 * time.Second
	}
	if _, err := cfg.Conn.withDefaults(); err != nil {
		return nil, err
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.WaitTimeout == 0 {
		cfg.WaitTimeout = 30 * time.Second
	}
	if cfg.BackoffMin == 0 {
		cfg.BackoffMin = 250 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 30 * time.Second
	}
	if cfg.Links == 0 {
		cfg.Links = 1
	}
	if cfg.Links < 0 || cfg.Links > MaxLinks {
		return nil, fmt.Errorf("tunnel: links must be from 1 to %d, not %d", MaxLinks, cfg.Links)
	}
	if cfg.NetDial == nil {
		d := &net.Dialer{}
		cfg.NetDial = d.DialContext
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.Conn.Logger = log
	c := &Client{
		cfg:    cfg,
		log:    log,
		demand: make(chan struct{}, 1),
		up:     make(chan struct{}),
		failed: make(chan struct{}),
		state:  StateConnecting,
		since:  time.Now(),
		slots:  make([]slot, cfg.Links),
	}
	switch {
	case cfg.Locator == nil:
		c.addr = cfg.Addr
	case !cfg.WakeOnStart:
		c.state = StateAsleep
	}
	for i := range c.slots {
		c.slots[i] = slot{state: c.state, since: c.since}
	}
	return c, nil
}

// MaxLinks bounds ClientConfig.Links: an exit limits the links of one
// client (8 by default), and a few links already take a lossy path's
// head-of-line blocking away.
const MaxLinks = 8

// Run connects to the exit and keeps the pool's links up, reconnecting
// each with backoff whenever it fails, until ctx ends. It then closes the
// links and returns nil.
//
// With a Locator, Run connects only when a stream needs a link: link 0
// locates (and wakes) the exit, keeps its link up while the exit runs,
// locates it again whenever that link is lost (a replaced exit has a new
// address), and goes asleep when the exit is no longer running, or when
// waking it failed, until the next Dial; the other links follow it.
func (c *Client) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.runStarted {
		c.mu.Unlock()
		return errors.New("tunnel: Client.Run called twice")
	}
	c.runStarted = true
	c.mu.Unlock()
	defer c.stop()
	// Links the exit asked to go away keep serving their open streams
	// while a new link takes new ones; they close when drained.
	var draining sync.WaitGroup
	defer draining.Wait()
	drainCtx, stopDraining := context.WithCancel(context.Background())
	defer stopDraining()
	drain := func(link *Conn) {
		draining.Add(1)
		go func() {
			defer draining.Done()
			link.Shutdown(drainCtx)
		}()
	}
	// The pool's other links follow link 0 to the address where it came
	// up, and stop while the exit sleeps or when it has moved.
	extra := &extraLinks{c: c, ctx: ctx, drain: drain}
	defer extra.halt()
	loc := c.cfg.Locator
	// With a Locator, addr is "" until the exit is located; proven says a
	// link came up at addr, and fresh counts failed attempts at an addr
	// that is not proven yet (an exit just started may not listen yet).
	addr, proven, fresh := c.cfg.Addr, false, 0
	asleep, wake := loc != nil && !c.cfg.WakeOnStart, c.cfg.WakeOnStart
	var r retrier
	for {
		if loc != nil && addr == "" {
			if asleep {
				if !c.awaitDemand(ctx) {
					return nil
				}
				if !c.demanded() {
					continue // the Dial that asked has given up
				}
				asleep, wake = false, true
			}
			c.setConnecting()
			a, err := loc.Locate(ctx, wake || c.demanded())
			if ctx.Err() != nil {
				return nil
			}
			if err != nil || a == "" {
				asleep = true
				extra.halt()
				c.sleep(err)
				continue
			}
			if a != extra.addr {
				extra.halt()
			}
			addr, proven, fresh, wake = a, false, 0, false
			c.setAddr(a)
		}
		link, err := c.connect(ctx, addr)
		if ctx.Err() != nil {
			if link != nil {
				link.Close()
			}
			return nil
		}
		var end linkEnd
		if err == nil {
			proven = true
			extra.follow(addr)
			end = c.hold(ctx, nil, 0, link, addr, drain)
			if ctx.Err() != nil {
				return nil
			}
			if end.drained {
				r.failures = 0
				if loc != nil {
					// It may be going to sleep, or be replaced.
					addr = ""
				}
				continue
			}
		} else {
			end.err = err
		}
		if loc != nil {
			// Ask again where the exit is when a link was lost (or
			// refused), or when a new address does not answer.
			if proven {
				addr = ""
			} else if fresh++; fresh >= freshAttempts {
				addr = ""
			}
		}
		if !c.retry(ctx, &r, 0, end) {
			return nil
		}
	}
}

// extraLinks runs the pool's links after link 0 (see ClientConfig.Links).
type extraLinks struct {
	c     *Client
	ctx   context.Context // Run's
	drain func(*Conn)
	addr  string             // where they connect; "" while halted
	stop  context.CancelFunc // halts them
	wg    sync.WaitGroup
}

// follow starts the extra links to addr, where link 0 came up, unless
// they already connect there.
func (e *extraLinks) follow(addr string) {
	if len(e.c.slots) == 1 || e.addr == addr {
		return
	}
	e.halt()
	ctx, stop := context.WithCancel(e.ctx)
	e.addr, e.stop = addr, stop
	for i := 1; i < len(e.c.slots); i++ {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.c.keepLink(e.ctx, ctx, i, addr, e.drain)
		}()
	}
}

// halt stops the extra links and waits until they have: a link that is up
// drains, keeping its open streams while no new ones open on it.
func (e *extraLinks) halt() {
	if e.stop == nil {
		return
	}
	e.stop()
	e.wg.Wait()
	e.addr, e.stop = "", nil
}

// keepLink keeps link i up to addr until halt ends (a halted link that is
// up drains) or ctx does (it closes): link 0's loop without the locating.
func (c *Client) keepLink(ctx, halt context.Context, i int, addr string, drain func(*Conn)) {
	defer c.setAsleep(i)
	var r retrier
	for {
		link, err := c.connect(halt, addr)
		if halt.Err() != nil {
			if link != nil {
				link.Close()
			}
			return
		}
		var end linkEnd
		if err == nil {
			end = c.hold(ctx, halt, i, link, addr, drain)
			if halt.Err() != nil {
				return
			}
			if end.drained {
				r.failures = 0
				continue
			}
		} else {
			end.err = err
		}
		if !c.retry(halt, &r, i, end) {
			return
		}
	}
}

// linkEnd is how a link ended, or an attempt to connect failed.
type linkEnd struct {
	upAt    time.Time // when the link came up; zero if the attempt failed
	drained bool      // the exit asked it to go away, or the pool halted it: it drains in the background
	refused bool      // the exit refused it with a GOAWAY error
	err     error     // why it ended, unless drained
}

// hold marks link up as link i and waits until it ends: lost, asked by the
// exit to go away (it drains while a new link takes new streams, at once),
// halted (it drains) or ctx ended (it closes). halt may be nil.
func (c *Client) hold(ctx, halt context.Context, i int, link *Conn, addr string, drain func(*Conn)) linkEnd {
	c.setUp(i, link)
	upAt := time.Now()
	var halted <-chan struct{}
	if halt != nil {
		halted = halt.Done()
	}
	select {
	case <-link.Done():
	case <-link.GoingAway():
		if link.GoAwayErr() == nil {
			c.setDown(i, ErrGoAway)
			c.log.Info("exit is going away; opening a new link", "link", i, "exit", addr)
			drain(link)
			if c.cfg.OnDrain != nil {
				c.cfg.OnDrain()
			}
			return linkEnd{upAt: upAt, drained: true}
		}
		link.Close()
	case <-halted:
		if ctx.Err() == nil {
			c.setDown(i, nil)
			drain(link)
			return linkEnd{upAt: upAt, drained: true}
		}
		link.Close()
		return linkEnd{upAt: upAt, err: ctx.Err()}
	case <-ctx.Done():
		link.Close()
		return linkEnd{upAt: upAt, err: ctx.Err()}
	}
	if err := link.GoAwayErr(); err != nil {
		// The exit refused the link, saying why (a limit, a protocol
		// error): a failed attempt, backing off like one.
		return linkEnd{upAt: upAt, refused: true, err: err}
	}
	err := link.Err()
	if err == nil {
		err = ErrLinkClosed
	}
	return linkEnd{upAt: upAt, err: err}
}

// retrier counts the failures that set the delay before the next attempt
// of one link.
type retrier struct {
	failures int // failed attempts in a row
	flaps    int // links in a row lost young
}

// retry records how link i's attempt or link ended, logs it and waits
// before the next attempt. It reports false if ctx ended first.
func (c *Client) retry(ctx context.Context, r *retrier, i int, end linkEnd) bool {
	msg := "tunnel link lost"
	var delay time.Duration
	if end.upAt.IsZero() || end.refused {
		msg = "tunnel link failed"
		if end.refused {
			msg = "tunnel link refused by the exit"
		}
		delay = c.backoff(r.failures)
		r.failures++
	} else {
		// A link that came up proved the exit reachable: its loss starts a
		// new series of attempts, retried at once (within the jitter).
		// Links that die young escalate on their own scale, capped at
		// maxFlapDelay, so an exit that accepts and then drops is not
		// hammered, and one that restarts often is not left waiting.
		r.failures = 0
		if time.Since(end.upAt) < flapThreshold {
			r.flaps++
		} else {
			r.flaps = 0
		}
		delay = min(c.backoff(r.flaps), maxFlapDelay)
	}
	c.setDown(i, end.err)
	c.log.Warn(msg, "link", i, "exit", c.Status().Addr, "err", end.err, "retry_in", delay.Round(time.Millisecond))
	return sleepCtx(ctx, delay)
}

// freshAttempts is how many failed attempts a newly located exit gets
// before it is located again: it may have been reported ready a moment
// before it listens.
const freshAttempts = 4

// A link lost less than flapThreshold after it came up is a flap; the
// delay before reconnecting after flaps grows up to maxFlapDelay.
const (
	flapThreshold = time.Second
	maxFlapDelay  = 2 * time.Second
)

// backoff is the delay before attempt n+1: exponential with "equal jitter"
// (half fixed, half random), capped at BackoffMax.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.BackoffMax
	if n < 30 {
		d = min(c.cfg.BackoffMin<<n, c.cfg.BackoffMax)
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// connect dials, handshakes and proves the link with one PING: in TLS 1.3
// the server rejects a client certificate only after the client's side of
// the handshake has finished, so the PING is what surfaces that.
func (c *Client) connect(ctx context.Context, addr string) (*Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	raw, err := c.cfg.NetDial(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial exit %s: %w", addr, err)
	}
	tc := tls.Client(NewBufferedConn(raw), c.cfg.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		if c.cfg.ExplainHandshake != nil {
			err = c.cfg.ExplainHandshake(addr, err)
		}
		return nil, fmt.Errorf("dial exit %s: tls handshake: %w", addr, err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		tc.Close()
		return nil, fmt.Errorf("dial exit %s: server did not negotiate HTTP/2 (ALPN %q)", addr, p)
	}
	link, err := NewClientConn(tc, c.cfg.Conn)
	if err != nil {
		tc.Close()
		return nil, err
	}
	if _, err := link.Ping(ctx); err != nil {
		link.Close()
		if lerr := link.Err(); lerr != nil {
			err = lerr
		}
		return nil, fmt.Errorf("dial exit %s: %w", addr, err)
	}
	return link, nil
}

// awaitDemand waits until a Dial needs a link, or ctx ends.
func (c *Client) awaitDemand(ctx context.Context) bool {
	select {
	case <-c.demand:
		return true
	case <-ctx.Done():
		return false
	}
}

// demanded reports whether a Dial is waiting for a link.
func (c *Client) demanded() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiting > 0
}

func (c *Client) setConnecting() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setStateLocked(0, StateConnecting)
}

// setStateLocked sets link i's state, then the pool's. c.mu must be held.
func (c *Client) setStateLocked(i int, state LinkState) {
	s := &c.slots[i]
	now := time.Now()
	if s.state != state {
		s.state, s.since = state, now
	}
	// The pool is up while any link is; otherwise it is where link 0,
	// which locates the exit, is.
	pool := c.slots[0].state
	switch {
	case c.closed:
		pool = StateStopped
	case c.upCount > 0:
		pool = StateUp
	}
	if c.state != pool {
		c.state, c.since = pool, now
	}
}

func (c *Client) setAddr(addr string) {
	c.mu.Lock()
	c.addr = addr
	c.mu.Unlock()
}

// sleep records that the exit is not running (err nil), or could not be
// woken (err says why). Dials waiting for a link fail with err, so only the
// next Dial wakes the exit again.
func (c *Client) sleep(err error) {
	c.mu.Lock()
	c.lastErr, c.slots[0].lastErr = err, err
	c.setStateLocked(0, StateAsleep)
	if err != nil {
		close(c.failed)
		c.failed = make(chan struct{})
		c.waiting = 0 // released: their demand is spent
		c.wakeFailures++
	}
	c.mu.Unlock()
	if err == nil {
		c.log.Info("exit asleep; the next connection wakes it")
	} else {
		c.log.Warn("exit unavailable; the next connection tries again", "err", err)
	}
}

// setAsleep records that link i stopped: the pool's other links follow link
// 0, and it has no exit to connect to.
func (c *Client) setAsleep(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(i)
	c.setStateLocked(i, StateAsleep)
}

func (c *Client) setUp(i int, link *Conn) {
	c.mu.Lock()
	s := &c.slots[i]
	s.link, s.lastErr = link, nil
	s.ups++
	c.lastErr = nil
	if c.upCount++; c.upCount == 1 {
		close(c.up)
	}
	c.setStateLocked(i, StateUp)
	addr := c.addr
	c.mu.Unlock()
	c.log.Info("tunnel link up", "link", i, "exit", addr, "rtt", link.RTT().Round(time.Microsecond))
}

// dropLocked takes link i out of the pool: new streams no longer open on it.
func (c *Client) dropLocked(i int) {
	if c.slots[i].link == nil {
		return
	}
	c.slots[i].link = nil
	if c.upCount--; c.upCount == 0 {
		c.up = make(chan struct{})
	}
}

// setDown records that link i is down, and why (err nil: it was halted or
// closed here, not failed).
func (c *Client) setDown(i int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.setDownLocked(i, err)
}

func (c *Client) setDownLocked(i int, err error) {
	c.dropLocked(i)
	c.slots[i].lastErr = err
	if err != nil {
		c.lastErr = err
	}
	c.setStateLocked(i, StateDown)
}

// setDownIf marks the link down if it is still in the pool.
func (c *Client) setDownIf(link *Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.slots {
		if c.slots[i].link == link {
			c.setDownLocked(i, err)
			return
		}
	}
}

func (c *Client) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for i := range c.slots {
		c.dropLocked(i)
		c.setStateLocked(i, StateStopped)
	}
}

// Up reports whether a link is up.
func (c *Client) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.upCount > 0
}

// Status reports the state of the pool and of each of its links.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{State: c.state, Since: c.since, Addr: c.addr, Links: make([]LinkStatus, len(c.slots))}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	for i, s := range c.slots {
		ls := LinkStatus{State: s.state, Since: s.since}
		st.Reconnects += max(s.ups-1, 0)
		if s.lastErr != nil {
			ls.LastError = s.lastErr.Error()
		}
		if s.link != nil {
			ls.Streams, ls.RTT = s.link.NumStreams(), s.link.RTT()
			st.Streams += ls.Streams
			if st.RTT == 0 || ls.RTT < st.RTT {
				st.RTT = ls.RTT
			}
		}
		st.Links[i] = ls
	}
	return st
}

// pickLocked returns the link up with the fewest open streams, equals
// taking turns, or nil if none is up.
func (c *Client) pickLocked() *Conn {
	var best *Conn
	n := len(c.slots)
	for k := range n {
		l := c.slots[(c.next+k)%n].link
		if l != nil && (best == nil || l.NumStreams() < best.NumStreams()) {
			best = l
		}
	}
	c.next = (c.next + 1) % n
	return best
}

// currentLink returns a link that is up (see pickLocked), waiting for one
// until ctx ends or, with a Locator, until waking the exit fails.
func (c *Client) currentLink(ctx context.Context) (*Conn, error) {
	for {
		c.mu.Lock()
		link, up, failed, closed, lastErr, gen := c.pickLocked(), c.up, c.failed, c.closed, c.lastErr, c.wakeFailures
		if link == nil && !closed {
			c.waiting++
			select {
			case c.demand <- struct{}{}:
			default:
			}
		}
		c.mu.Unlock()
		if closed {
			return nil, ErrLinkClosed
		}
		if link != nil {
			select {
			case <-link.Done():
				// Dead but not yet noticed by its loop: take another
				// link, or wait for the next one.
				c.setDownIf(link, link.Err())
				continue
			case <-link.GoingAway():
				c.setDownIf(link, ErrGoAway)
				continue
			default:
				return link, nil
			}
		}
		var err error
		select {
		case <-up:
		case <-failed:
			c.mu.Lock()
			err = fmt.Errorf("%w: %w", ErrLinkDown, c.lastErr)
			c.mu.Unlock()
		case <-ctx.Done():
			err = ErrLinkDown
			if lastErr != nil {
				err = fmt.Errorf("%w: %w", ErrLinkDown, lastErr)
			}
		}
		c.mu.Lock()
		if c.wakeFailures == gen {
			c.waiting--
		}
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// DialEarly opens a tunnel stream to addr ("host:port") through the exit
// carrying first, without waiting for the exit's answer (see
// Conn.DialEarly): the exit's refusal fails the stream's first Read or
// WriteTo with its *DialError. It waits for a link as Dial does.
func (c *Client) DialEarly(ctx context.Context, network, addr string, first []byte) (net.Conn, error) {
	return c.dial(ctx, network, addr, first, true)
}

// Dial opens a tunnel stream to addr ("host:port") through the exit. While
// no link is up it waits up to WaitTimeout (or ctx), then fails with a 503
// *DialError. A stream refused by the exit fails with its *DialError. The
// network must be "tcp", "tcp4" or "tcp6".
func (c *Client) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return c.dial(ctx, network, addr, nil, false)
}

func (c *Client) dial(ctx context.Context, network, addr string, first []byte, early bool) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &DialError{Target: addr, Status: http.StatusBadRequest, Type: "http_request_error",
			Details: fmt.Sprintf("network %q is not supported: the tunnel carries TCP only", network)}
	}
	waitCtx, cancel := context.WithTimeout(ctx, c.cfg.WaitTimeout)
	defer cancel()
	for {
		link, err := c.currentLink(waitCtx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			details := fmt.Sprintf("no link to the exit after %v: %v", c.cfg.WaitTimeout, err)
			if waitCtx.Err() == nil {
				details = fmt.Sprintf("no link to the exit: %v", err)
			}
			return nil, &DialError{Target: addr, Status: http.StatusServiceUnavailable, Type: "proxy_internal_error",
				Details: details, Err: err}
		}
		// A link that has been silent for a ping interval may have died
		// under us: find out now, so this stream waits for at most the
		// PING's deadline and one reconnect.
		link.probeIfSilent(c.cfg.Conn.PingInterval)
		var hdr http.Header
		if c.cfg.Header != nil {
			if hdr, err = c.cfg.Header(ctx); err != nil {
				return nil, &DialError{Target: addr, Status: http.StatusServiceUnavailable, Type: "proxy_internal_error",
					Details: "cannot build credentials for the exit: " + err.Error(), Err: err}
			}
		}
		var s *Stream
		if early {
			s, err = link.DialEarly(ctx, addr, hdr, first)
		} else {
			s, err = link.Dial(ctx, addr, hdr)
		}
		if err == nil {
			return s, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, ErrLinkClosed) || errors.Is(err, ErrGoAway) {
			// The link died before the exit answered; nothing reached the
			// target, so the next link may try again.
			c.setDownIf(link, err)
			continue
		}
		return nil, err
	}
}
