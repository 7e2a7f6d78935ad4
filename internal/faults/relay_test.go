package faults

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
)

// linkRelay is a TCP relay between the agent and the exit that the test
// controls. In pass mode it forwards both ways. blackhole makes every
// connection it carries go silent, as a network that drops all packets:
// bytes are read and thrown away, and neither side sees a FIN or a reset.
// Connections that were blackholed stay so; connections accepted after pass
// forward again. reset closes every connection with RST.
type linkRelay struct {
	ln     net.Listener
	target string // immutable
	wg     sync.WaitGroup

	mu        sync.Mutex
	blackhole bool                // guarded by mu
	pairs     map[*relayPair]bool // guarded by mu
}

// relayPair is one relayed connection.
type relayPair struct {
	client, server net.Conn // server is nil for a connection accepted while blackholed
	mu             sync.Mutex
	dead           bool // guarded by mu: drop everything, forever
}

func (p *relayPair) isDead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dead
}

// newLinkRelay starts a relay on loopback to target. It is closed, with
// every connection, when the test ends.
func newLinkRelay(t testing.TB, target string) *linkRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &linkRelay{ln: ln, target: target, pairs: map[*relayPair]bool{}}
	r.wg.Add(1)
	go r.acceptLoop()
	t.Cleanup(r.Close)
	return r
}

func (r *linkRelay) Addr() string { return r.ln.Addr().String() }

func (r *linkRelay) acceptLoop() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.wg.Add(1)
		go r.serve(c)
	}
}

// serve relays one connection until either side ends it.
func (r *linkRelay) serve(c net.Conn) {
	defer r.wg.Done()
	p := &relayPair{client: c}
	r.mu.Lock()
	p.dead = r.blackhole
	r.pairs[p] = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pairs, p)
		r.mu.Unlock()
	}()
	if p.isDead() {
		// A blackholed network: the connection is never answered.
		discard(c)
		c.Close()
		return
	}
	s, err := net.Dial("tcp", r.target)
	if err != nil {
		resetConn(c)
		return
	}
	p.mu.Lock()
	p.server = s
	dead := p.dead
	p.mu.Unlock()
	if dead {
		// blackholed while dialing
		s.Close()
		discard(c)
		c.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.forward(p, c, s)
	}()
	r.forward(p, s, c)
	wg.Wait()
	// Both peers have ended their side (or the relay is closing).
	c.Close()
	s.Close()
}

// forward copies src to dst while p is alive. Once p is dead it reads and
// drops what src sends and never closes dst, so the peer sees silence.
func (r *linkRelay) forward(p *relayPair, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.isDead() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				if !p.isDead() {
					src.Close()
					dst.Close()
				}
				return
			}
		}
		if err != nil {
			if !p.isDead() {
				// Pass the end on: a FIN as a FIN, anything else as RST.
				if tc, ok := dst.(*net.TCPConn); ok && errors.Is(err, io.EOF) {
					tc.CloseWrite()
				} else {
					dst.Close()
				}
				return
			}
			// Dead: the other side must not learn that src went away.
			// Wait until the relay closes dst.
			return
		}
	}
}

// setBlackhole makes every open connection silent (on) or lets new
// connections forward again (off).
func (r *linkRelay) setBlackhole(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blackhole = on
	if !on {
		return
	}
	for p := range r.pairs {
		p.mu.Lock()
		p.dead = true
		p.mu.Unlock()
	}
}

// resetAll closes every connection with a TCP RST on both sides.
func (r *linkRelay) resetAll() {
	r.mu.Lock()
	pairs := make([]*relayPair, 0, len(r.pairs))
	for p := range r.pairs {
		pairs = append(pairs, p)
	}
	r.mu.Unlock()
	for _, p := range pairs {
		p.mu.Lock()
		s := p.server
		p.mu.Unlock()
		resetConn(p.client)
		if s != nil {
			resetConn(s)
		}
	}
}

func (r *linkRelay) Close() {
	r.ln.Close()
	r.resetAll()
	r.wg.Wait()
}

// resetConn closes c with RST rather than FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// discard reads c until it ends.
func discard(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
