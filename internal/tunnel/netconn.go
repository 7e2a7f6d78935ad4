package tunnel

import (
	"bufio"
	"crypto/tls"
	"net"
	"sync"
)

// NewBufferedConn wraps the TCP connection that TLS runs over, so a tunnel
// connection makes few system calls: reads come through a 64 KiB buffer
// (one read fetches many TLS records), and the records a connection's write
// loop produces for one batch of frames go out in one write. Use it beneath
// TLS on both sides: tls.Client(NewBufferedConn(raw), cfg).
//
// Outside a write-loop batch (the TLS handshake, alerts) writes go straight
// through.
func NewBufferedConn(c net.Conn) net.Conn {
	return &bufferedConn{
		Conn: c,
		r:    bufio.NewReaderSize(c, 64<<10),
		w:    bufio.NewWriterSize(c, 128<<10),
	}
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader // used only by the TLS reader, which crypto/tls serializes

	// mu serializes writes to the socket, the way crypto/tls serializes
	// record writes. It guards w and batching and nothing else, and is never
	// held while waiting for anything but the socket.
	mu       sync.Mutex
	w        *bufio.Writer
	batching bool
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.batching {
		return b.w.Write(p)
	}
	if b.w.Buffered() > 0 {
		if err := b.w.Flush(); err != nil {
			return 0, err
		}
	}
	return b.Conn.Write(p)
}

func (b *bufferedConn) startBatch() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// endBatch writes what the batch gathered.
func (b *bufferedConn) endBatch() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batching = false
	return b.w.Flush()
}

// batcherOf finds the bufferedConn beneath nc, if any.
func batcherOf(nc net.Conn) *bufferedConn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	bc, _ := nc.(*bufferedConn)
	return bc
}

// rawConn is the connection beneath TLS, closed first when a connection
// fails so that no write can keep it waiting.
func rawConn(nc net.Conn) net.Conn {
	if tc, ok := nc.(*tls.Conn); ok {
		return tc.NetConn()
	}
	return nc
}
