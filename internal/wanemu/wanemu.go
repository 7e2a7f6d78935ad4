// Package wanemu is a userspace emulator of a wide-area network path: a TCP
// relay that listens on loopback and forwards every connection it accepts
// to one target, adding what a long path adds.
//
// Each direction of the path has a one-way delay, a bandwidth limit and a
// bottleneck queue in front of it. The limit and the queue are shared by all
// the connections through the relay, as a real path's bottleneck is: bytes
// read from one side wait their turn in the queue (while it is full the
// relay stops reading, and TCP's flow control pushes back on the sender),
// are sent at the path's rate, and arrive Delay later. A new connection
// pays for TCP's handshake: the client's connect returns at once on
// loopback, so the relay holds its first bytes until one round trip after
// the accept, when a real client's connect would have returned. A stall
// holds every byte in flight, in both directions, until it ends, as a path
// that drops everything for a while and then recovers does; nothing is
// lost.
//
// A connection can also stall on its own (Config.StallFor, StallConn):
// that is what a lost packet looks like from outside one TCP connection.
// The receiver gets nothing of that connection past the hole until the
// sender retransmits, one retransmission timeout later for a tail loss;
// the other connections on the path go on flowing. Such a stall holds one
// direction of one connection and loses nothing.
//
// What it does not model: packet loss and reordering inside TCP as such
// (a loss's hole is emulated by the stall above, not its effect on the
// sender's congestion window; the relay's own TCP connections are
// loopback ones, which lose nothing), jitter, and a delay that
// depends on the packet size. The round trip TCP's congestion control would
// measure is loopback's, so a sender's window grows at once; a real path's
// slow start is not reproduced.
package wanemu

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Config describes the emulated path. A zero Config is a path with no
// delay and no limit.
type Config struct {
	// Delay is the one-way delay of each direction: a round trip is
	// twice Delay.
	Delay time.Duration
	// Rate is each direction's bandwidth in bytes per second. If zero,
	// bandwidth is unlimited.
	Rate int64
	// Queue is how many bytes each direction's bottleneck queue holds
	// before the relay stops reading. If zero, one bandwidth-delay product
	// of the round trip (2 × Delay × Rate), at least 64 KiB; with no Rate,
	// 32 MiB.
	Queue int64
	// StallFor and StallBytes emulate loss inside each connection: every
	// byte a connection carries, either way, has a 1-in-StallBytes chance
	// of being "lost", and then that direction of that connection delivers
	// nothing from that byte on for StallFor, as a retransmission timeout
	// would hold it. Other connections are not held. Loss is per byte, not
	// per second, so that a connection carrying more (one link carrying
	// many streams) stalls as often as the connections it stands for
	// would together. If either is zero, connections do not stall on
	// their own.
	StallFor   time.Duration
	StallBytes int64
}

// chunkSize is the most the relay reads at once: small enough that the
// serialisation time of one chunk (16 KiB at 50 Mbit/s: 2.6 ms) stays well
// under the delays that matter.
const chunkSize = 16 << 10

// Relay is a running emulated path to one target.
type Relay struct {
	target string
	cfg    Config
	ln     net.Listener
	up     *direction // client → target
	down   *direction // target → client

	closing chan struct{} // closed by Close: every wait ends

	mu         sync.Mutex
	stallUntil time.Time             // guarded by mu
	cutAt      time.Time             // guarded by mu; connections accepted before it are cut
	conns      map[net.Conn]struct{} // guarded by mu
	byClient   map[string]*connStall // guarded by mu; by the client's address
	closed     bool                  // guarded by mu

	wg sync.WaitGroup // the accept loop and every connection's goroutines
}

// New starts a relay on a free loopback port that forwards to target.
func New(target string, cfg Config) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{
		target:   target,
		cfg:      cfg,
		ln:       ln,
		conns:    make(map[net.Conn]struct{}),
		byClient: make(map[string]*connStall),
		closing:  make(chan struct{}),
	}
	r.up = newDirection(cfg)
	r.down = newDirection(cfg)
	r.wg.Add(1)
	go r.acceptLoop()
	return r, nil
}

// Addr is the relay's address: connect here to reach the target.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Stall holds everything in flight, both ways, for d from now: nothing
// arrives until the stall ends, then everything held arrives in order.
func (r *Relay) Stall(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if until := time.Now().Add(d); until.After(r.stallUntil) {
		r.stallUntil = until
	}
}

// Cut makes every connection open now go silent for good, as a path that
// changed under it (a laptop that moved to another network): what is in
// flight and what is sent later is never delivered, and neither side is
// told. Connections made after the cut work.
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cutAt = time.Now()
}

// StallConn holds both directions of the one connection whose client end
// is at client (the address the client dialled from) for d from now, as
// Stall does for all of them; other connections go on flowing. It reports
// false if no such connection is open.
func (r *Relay) StallConn(client net.Addr, d time.Duration) bool {
	r.mu.Lock()
	cs := r.byClient[client.String()]
	r.mu.Unlock()
	if cs == nil {
		return false
	}
	now := time.Now()
	cs.up.hold(now, now.Add(d))
	cs.down.hold(now, now.Add(d))
	return true
}

// connStall is one connection's own stalls, one per direction.
type connStall struct{ up, down stallWindow }

// stallWindow holds the segments that arrive from 'from' on until 'until':
// those behind a lost byte, until its retransmission.
type stallWindow struct {
	mu          sync.Mutex
	from, until time.Time // guarded by mu
}

// hold adds [from, until) to the window. One window is kept: a hold after
// the last one ended replaces it, any other joins it (StallConn's hold
// from now may begin before a loss's hold of segments still in flight).
func (w *stallWindow) hold(from, until time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.until.After(from) {
		w.from, w.until = from, until
		return
	}
	if from.Before(w.from) {
		w.from = from
	}
	if until.After(w.until) {
		w.until = until
	}
}

// heldUntil is when a segment arriving at arrive may be delivered, if the
// window holds it, or the zero time.
func (w *stallWindow) heldUntil(arrive time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !arrive.Before(w.from) && arrive.Before(w.until) {
		return w.until
	}
	return time.Time{}
}

// lose decides whether one of n bytes just read is lost (see
// Config.StallBytes).
func (r *Relay) lose(n int) bool {
	if r.cfg.StallFor <= 0 || r.cfg.StallBytes <= 0 {
		return false
	}
	return rand.Float64() < float64(n)/float64(r.cfg.StallBytes)
}

func (r *Relay) isCut(accepted time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.cutAt.IsZero() && accepted.Before(r.cutAt)
}

// stalledUntil is the end of the current stall, or the zero time.
func (r *Relay) stalledUntil() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stallUntil
}

// Close stops the relay, resets every connection through it and waits for
// its goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	if !r.closed {
		close(r.closing)
	}
	r.closed = true
	for c := range r.conns {
		abort(c)
	}
	r.mu.Unlock()
	err := r.ln.Close()
	r.up.close()
	r.down.close()
	r.wg.Wait()
	return err
}

func (r *Relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *Relay) acceptLoop() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		accepted := time.Now()
		r.wg.Add(1)
		go r.serve(client, accepted)
	}
}

// serve relays one connection. The target is dialled at once (it is local
// to the far end of the path); the emulated handshake is paid by holding
// the client's first bytes (see Config).
func (r *Relay) serve(client net.Conn, accepted time.Time) {
	defer r.wg.Done()
	server, err := net.Dial("tcp", r.target)
	if err != nil {
		// The client learns of the refusal one round trip later, as its
		// SYN's answer would tell it.
		r.sleepUntil(accepted.Add(2 * r.up.delay))
		abort(client)
		return
	}
	if !r.track(client) || !r.track(server) {
		abort(client)
		abort(server)
		return
	}
	defer r.untrack(client)
	defer r.untrack(server)
	cs := &connStall{}
	key := client.RemoteAddr().String()
	r.mu.Lock()
	r.byClient[key] = cs
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.byClient, key)
		r.mu.Unlock()
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	fail := func() { abort(client); abort(server) }
	// A real client's connect returns one round trip after the SYN: its
	// first bytes leave then at the earliest.
	go func() {
		defer wg.Done()
		r.pump(r.up, &cs.up, client, server, accepted, accepted.Add(2*r.up.delay), fail)
	}()
	go func() {
		defer wg.Done()
		r.pump(r.down, &cs.down, server, client, accepted, time.Time{}, fail)
	}()
	wg.Wait()
	client.Close()
	server.Close()
}

// sleepUntil waits until t, and reports false if the relay closed first.
func (r *Relay) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.closing:
		return false
	}
}

// segment is a piece of one connection's stream in flight: data, or the
// end of the stream (eof), with the time it arrives at the far side.
type segment struct {
	data   []byte
	eof    bool
	arrive time.Time
}

// pump carries src's bytes to dst through dir: a reader puts segments on
// the path, a writer delivers them when they arrive. Nothing leaves before
// notBefore; own holds what this connection's own stalls hold. An error
// either way calls fail, which resets both sides.
func (r *Relay) pump(dir *direction, own *stallWindow, src, dst net.Conn, accepted, notBefore time.Time, fail func()) {
	line := make(chan segment, 4096)
	done := make(chan struct{}) // closed by the writer when it stops
	go func() {
		defer close(done)
		// drain takes what is left out of flight, once nothing more is
		// delivered.
		drain := func() {
			for seg := range line {
				dir.delivered(len(seg.data))
			}
		}
		for seg := range line {
			for {
				ok := r.sleepUntil(seg.arrive)
				// A stall that began meanwhile holds the segment; a cut
				// holds it for good.
				if ok && r.isCut(accepted) {
					ok = r.sleepUntil(time.Now().Add(100 * 365 * 24 * time.Hour))
				}
				if until := r.stalledUntil(); ok && until.After(time.Now()) {
					ok = r.sleepUntil(until)
					if ok {
						continue
					}
				}
				if until := own.heldUntil(seg.arrive); ok && until.After(time.Now()) {
					ok = r.sleepUntil(until)
					if ok {
						continue
					}
				}
				if !ok {
					dir.delivered(len(seg.data))
					drain()
					return
				}
				break
			}
			if seg.eof {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
				}
				continue
			}
			_, err := dst.Write(seg.data)
			dir.delivered(len(seg.data))
			if err != nil {
				fail()
				drain()
				return
			}
		}
	}()
	defer func() {
		close(line)
		<-done
	}()
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			if !r.sleepUntil(notBefore) || !dir.admit(n) {
				return
			}
			arrive := dir.schedule(n)
			if r.lose(n) {
				// This segment and what follows it on this connection
				// arrive StallFor late: the retransmission's wait.
				own.hold(arrive, arrive.Add(r.cfg.StallFor))
			}
			line <- segment{data: buf[:n], arrive: arrive}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				line <- segment{eof: true, arrive: dir.schedule(0)}
			} else {
				fail()
			}
			return
		}
	}
}

// direction is one direction of the path: its bottleneck's queue and
// clock, shared by every connection.
type direction struct {
	delay time.Duration
	rate  int64
	limit int64 // bytes read and not yet delivered, at most

	mu       sync.Mutex
	cond     *sync.Cond
	inFlight int64     // guarded by mu
	txFree   time.Time // guarded by mu; when the bottleneck is next free to send
	closed   bool      // guarded by mu
}

func newDirection(cfg Config) *direction {
	d := &direction{delay: cfg.Delay, rate: cfg.Rate}
	q := cfg.Queue
	if q == 0 {
		q = 32 << 20
		if cfg.Rate > 0 {
			q = max(int64(2*cfg.Delay.Seconds()*float64(cfg.Rate)), 64<<10)
		}
	}
	// Bytes in flight are what the queue holds plus what is on the wire:
	// a bandwidth-delay product of the one-way delay.
	d.limit = q
	if cfg.Rate > 0 {
		d.limit += int64(cfg.Delay.Seconds() * float64(cfg.Rate))
	}
	d.cond = sync.NewCond(&d.mu)
	return d
}

// admit waits until n more bytes fit in flight, and reports false if the
// relay closed meanwhile.
func (d *direction) admit(n int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for !d.closed && d.inFlight > 0 && d.inFlight+int64(n) > d.limit {
		d.cond.Wait()
	}
	d.inFlight += int64(n)
	return !d.closed
}

// schedule puts n bytes through the bottleneck and returns when they
// arrive at the far side: after those queued before them have been sent,
// their own serialisation time, and the delay.
func (d *direction) schedule(n int) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	start := now
	if d.txFree.After(now) {
		start = d.txFree
	}
	end := start
	if d.rate > 0 {
		end = start.Add(time.Duration(float64(n) / float64(d.rate) * float64(time.Second)))
	}
	d.txFree = end
	return end.Add(d.delay)
}

// delivered takes n bytes out of flight.
func (d *direction) delivered(n int) {
	d.mu.Lock()
	d.inFlight -= int64(n)
	d.mu.Unlock()
	d.cond.Broadcast()
}

func (d *direction) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	d.cond.Broadcast()
}

// abort resets c: with SO_LINGER 0 the peer sees a reset, not an EOF.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
