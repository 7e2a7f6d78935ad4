package proctest

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// Target is a raw TCP server in the test process, for the processes under
// test to connect to. When the test ends, the listener and every open
// connection are closed and the handlers waited for.
type Target struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool // guarded by mu
}

// NewTarget serves each connection with handle on a loopback port.
func NewTarget(t testing.TB, handle func(net.Conn)) *Target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Target{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.acceptLoop(handle)
	t.Cleanup(s.Close)
	return s
}

// Addr is the target's host:port.
func (s *Target) Addr() string { return s.ln.Addr().String() }

func (s *Target) acceptLoop(handle func(net.Conn)) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and the like
			continue
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			handle(c)
		}()
	}
}

// Close stops the target: the listener, every open connection, and waits
// for the handlers. It is safe to call more than once.
func (s *Target) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
