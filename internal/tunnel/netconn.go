package tunnel

import (
	"crypto/tls"
	"net"
	"sync"

	"fluidity/internal/sockio"
)

// linkBufSize is the size of the buffers beneath TLS: one read fetches up
// to this much, and one write sends a whole batch of frames, including a
// largest DATA frame with the overhead of its TLS records.
const linkBufSize = 1<<20 + 64<<10

var linkBufs = newBufPool(linkBufSize)

// NewBufferedConn wraps the TCP connection that TLS runs over, so a tunnel
// connection makes few system calls: one read fetches everything the
// socket holds, up to about a megabyte (many TLS records), and the records
// a connection's write loop produces for one batch of frames go out in one
// write instead of one per 16 KiB record. Both buffers come from a pool
// and go back to it as soon as they are empty, so an idle connection holds
// neither. Use it beneath TLS on both sides:
// tls.Client(NewBufferedConn(raw), cfg).
//
// Outside a write-loop batch (the TLS handshake, alerts) writes go straight
// through.
func NewBufferedConn(c net.Conn) net.Conn {
	b := &bufferedConn{Conn: c, fill: sockio.IdleReader(c, 0), write: sockio.WriterOf(c)}
	if b.write == nil {
		b.write = c.Write
	}
	return b
}

type bufferedConn struct {
	net.Conn

	// The read side is used only by the TLS reader, which crypto/tls
	// serializes. rbuf holds the unread bytes rbuf[rr:w], and is nil when
	// there are none; rerr came with the last of them, and is returned
	// once they are taken.
	fill  sockio.IdleRead // nil: not a TCP connection
	rbuf  *[]byte
	rr, w int
	rerr  error

	// mu serializes writes to the socket, the way crypto/tls serializes
	// record writes. It guards wbuf and batching and nothing else, and is
	// never held while waiting for anything but the socket.
	mu       sync.Mutex
	wbuf     *[]byte // during a batch: the records gathered so far
	batching bool
	write    func([]byte) (int, error) // writes to Conn
}

func (b *bufferedConn) Read(p []byte) (int, error) {
	if b.rbuf == nil {
		if err := b.rerr; err != nil {
			b.rerr = nil
			return 0, err
		}
		if err := b.fillBuf(); err != nil || b.rbuf == nil {
			return 0, err // nil: the connection read nothing, without an error
		}
	}
	n := copy(p, (*b.rbuf)[b.rr:b.w])
	b.rr += n
	if b.rr == b.w {
		linkBufs.put(b.rbuf)
		b.rbuf = nil
	}
	return n, nil
}

// fillBuf reads what the socket holds into a pooled buffer. For a TCP
// connection the buffer is taken only once there is something to read.
func (b *bufferedConn) fillBuf() error {
	var (
		buf *[]byte
		n   int
		err error
	)
	if b.fill != nil {
		buf, n, err = b.fill(linkBufs.get, linkBufs.put, nil)
	} else {
		buf = linkBufs.get()
		n, err = b.Conn.Read(*buf)
		if n == 0 {
			linkBufs.put(buf)
			buf = nil
		} else {
			b.rerr, err = err, nil
		}
	}
	if buf == nil {
		return err
	}
	b.rbuf, b.rr, b.w = buf, 0, n
	return nil
}

// NetConn is the connection beneath the buffers, for callers that need
// the TCP connection itself (to abort it with a reset, for one).
func (b *bufferedConn) NetConn() net.Conn { return b.Conn }

// Buffered is how many bytes were read from the socket and not yet taken.
func (b *bufferedConn) Buffered() int {
	if b.rbuf == nil {
		return 0
	}
	return b.w - b.rr
}

func (b *bufferedConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.batching {
		if err := b.flushLocked(); err != nil {
			return 0, err
		}
		return b.write(p)
	}
	if b.wbuf == nil {
		b.wbuf = linkBufs.get()
		*b.wbuf = (*b.wbuf)[:0]
	}
	if len(*b.wbuf)+len(p) > cap(*b.wbuf) {
		if err := b.writeOut(); err != nil {
			return 0, err
		}
		if len(p) > cap(*b.wbuf) {
			return b.write(p)
		}
	}
	*b.wbuf = append(*b.wbuf, p...)
	return len(p), nil
}

// writeOut writes the gathered records, keeping the buffer.
func (b *bufferedConn) writeOut() error {
	_, err := b.write(*b.wbuf)
	*b.wbuf = (*b.wbuf)[:0]
	return err
}

// flushLocked writes what a batch gathered and gives the buffer back.
func (b *bufferedConn) flushLocked() error {
	if b.wbuf == nil {
		return nil
	}
	var err error
	if len(*b.wbuf) > 0 {
		err = b.writeOut()
	}
	*b.wbuf = (*b.wbuf)[:cap(*b.wbuf)]
	linkBufs.put(b.wbuf)
	b.wbuf = nil
	return err
}

// batched is how much the current batch has gathered.
func (b *bufferedConn) batched() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.wbuf == nil {
		return 0
	}
	return len(*b.wbuf)
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
	return b.flushLocked()
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
