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
	// OnDrain, if set, is called when the exit asks the current link to go
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

// Status is a snapshot of a Client's link.
type Status struct {
	State      LinkState
	Since      time.Time // when State began
	Addr       string    // exit address
	Reconnects int       // links established after the first
	LastError  string    // why the last link or attempt failed
	Streams    int       // open streams on the current link
	RTT        time.Duration
}

// Client keeps one tunnel link to an exit server up and opens streams on it.
type Client struct {
	cfg ClientConfig // immutable after NewClient
	log *slog.Logger

	// demand is signalled by Dial when it starts to wait for a link, so
	// an asleep Run wakes the exit. Buffered (1), never closed.
	demand chan struct{}

	mu           sync.Mutex // guards the fields below
	link         *Conn
	up           chan struct{} // closed while a link is up; replaced when it goes down
	failed       chan struct{} // closed when a wake failed, releasing waiting Dials; then replaced
	waiting      int           // Dials waiting for a link and not yet released by a failed wake
	wakeFailures int           // failed wakes so far: tells a Dial whether a failure released it
	addr         string        // the exit's address: Addr, or the last one located
	state        LinkState
	since        time.Time
	lastErr      error
	links        int
	closed       bool
	runStarted   bool
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
	}
	switch {
	case cfg.Locator == nil:
		c.addr = cfg.Addr
	case !cfg.WakeOnStart:
		c.state = StateAsleep
	}
	return c, nil
}

// Run connects to the exit and keeps the link up, reconnecting with
// backoff whenever it fails, until ctx ends. It then closes the link and
// returns nil.
//
// With a Locator, Run connects only when a stream needs a link: it locates
// (and wakes) the exit, keeps the link up while the exit runs, locates it
// again whenever a link is lost (a replaced exit has a new address), and
// goes asleep when the exit is no longer running, or when waking it failed,
// until the next Dial.
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
	loc := c.cfg.Locator
	// With a Locator, addr is "" until the exit is located; proven says a
	// link came up at addr, and fresh counts failed attempts at an addr
	// that is not proven yet (an exit just started may not listen yet).
	addr, proven, fresh := c.cfg.Addr, false, 0
	asleep, wake := loc != nil && !c.cfg.WakeOnStart, c.cfg.WakeOnStart
	failures, flaps := 0, 0
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
				c.sleep(err)
				continue
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
		msg, failed := "tunnel link failed", true
		var upAt time.Time
		if err == nil {
			upAt, proven = time.Now(), true
			c.setUp(link)
			select {
			case <-link.Done():
			case <-link.GoingAway():
				if link.GoAwayErr() == nil {
					// A graceful GOAWAY: the old link drains while a new one
					// takes new streams, at once.
					c.setDown(ErrGoAway)
					c.log.Info("exit is going away; opening a new link", "exit", addr)
					draining.Add(1)
					go func() {
						defer draining.Done()
						link.Shutdown(drainCtx)
					}()
					if c.cfg.OnDrain != nil {
						c.cfg.OnDrain()
					}
					failures = 0
					if loc != nil {
						// It may be going to sleep, or be replaced.
						addr = ""
					}
					continue
				}
				link.Close()
			case <-ctx.Done():
				link.Close()
				return nil
			}
			if err = link.GoAwayErr(); err != nil {
				// The exit refused the link, saying why (a limit, a protocol
				// error): a failed attempt, backing off like one.
				msg = "tunnel link refused by the exit"
			} else {
				msg, failed = "tunnel link lost", false
				if err = link.Err(); err == nil {
					err = ErrLinkClosed
				}
			}
		}
		if loc != nil {
			// Ask again where the exit is when a link was lost, or when
			// the address does not answer.
			if !failed || proven {
				addr = ""
			} else if fresh++; fresh >= freshAttempts {
				addr = ""
			}
		}
		var delay time.Duration
		if failed {
			delay = c.backoff(failures)
			failures++
		} else {
			// A link that came up proved the exit reachable: its loss
			// starts a new series of attempts, retried at once (within the
			// jitter). Links that die young escalate on their own scale,
			// capped at maxFlapDelay, so an exit that accepts and then
			// drops is not hammered, and one that restarts often is not
			// left waiting.
			failures = 0
			if time.Since(upAt) < flapThreshold {
				flaps++
			} else {
				flaps = 0
			}
			delay = min(c.backoff(flaps), maxFlapDelay)
		}
		c.setDown(err)
		c.log.Warn(msg, "exit", c.Status().Addr, "err", err, "retry_in", delay.Round(time.Millisecond))
		if !sleepCtx(ctx, delay) {
			return nil
		}
	}
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
	if c.state != StateConnecting {
		c.state = StateConnecting
		c.since = time.Now()
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
	c.state = StateAsleep
	c.since = time.Now()
	c.lastErr = err
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

func (c *Client) setUp(link *Conn) {
	c.mu.Lock()
	c.link = link
	c.state = StateUp
	c.since = time.Now()
	c.lastErr = nil
	c.links++
	close(c.up)
	addr := c.addr
	c.mu.Unlock()
	c.log.Info("tunnel link up", "exit", addr, "rtt", link.RTT().Round(time.Microsecond))
}

func (c *Client) setDown(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link != nil {
		c.up = make(chan struct{})
		c.link = nil
	}
	if c.state != StateDown {
		c.state = StateDown
		c.since = time.Now()
	}
	c.lastErr = err
}

// setDownIf marks the link down if link is still the current one.
func (c *Client) setDownIf(link *Conn, err error) {
	c.mu.Lock()
	current := c.link == link
	c.mu.Unlock()
	if current {
		c.setDown(err)
	}
}

func (c *Client) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.link != nil {
		c.up = make(chan struct{})
		c.link = nil
	}
	c.closed = true
	c.state = StateStopped
	c.since = time.Now()
}

// Up reports whether a link is up.
func (c *Client) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.link != nil
}

// Status reports the link's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{State: c.state, Since: c.since, Addr: c.addr, Reconnects: max(c.links-1, 0)}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	if c.link != nil {
		st.Streams = c.link.NumStreams()
		st.RTT = c.link.RTT()
	}
	return st
}

// currentLink returns the link that is up, waiting for one until ctx ends
// or, with a Locator, until waking the exit fails.
func (c *Client) currentLink(ctx context.Context) (*Conn, error) {
	for {
		c.mu.Lock()
		link, up, failed, closed, lastErr, gen := c.link, c.up, c.failed, c.closed, c.lastErr, c.wakeFailures
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
				// Dead but not yet noticed by Run: wait for the next one.
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
