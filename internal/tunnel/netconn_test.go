package tunnel

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if b = <-accepted; b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestBufferedConnHoldsNoBufferOnceDrained(t *testing.T) {
	a, b := tcpPair(t)
	bc := NewBufferedConn(a).(*bufferedConn)
	if _, err := b.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	p := make([]byte, 2)
	if _, err := io.ReadFull(bc, p); err != nil {
		t.Fatal(err)
	}
	if bc.rbuf == nil || bc.Buffered() != 3 {
		t.Fatalf("after reading 2 of 5 bytes: buffer %v, %d buffered; want the buffer and 3", bc.rbuf != nil, bc.Buffered())
	}
	rest := make([]byte, 3)
	if _, err := io.ReadFull(bc, rest); err != nil || string(p)+string(rest) != "hello" {
		t.Fatalf("read %q%q, %v", p, rest, err)
	}
	if bc.rbuf != nil {
		t.Fatal("a drained connection still holds its read buffer")
	}

	// A batch gathers writes, including one larger than the buffer, and
	// gives the buffer back when it is written.
	big := bytes.Repeat([]byte("x"), 2*linkBufSize)
	want := append(append([]byte("first "), big...), " last"...)
	got := make(chan []byte)
	go func() {
		buf := make([]byte, len(want))
		io.ReadFull(b, buf)
		got <- buf
	}()
	bc.startBatch()
	for _, p := range [][]byte{[]byte("first "), big, []byte(" last")} {
		if _, err := bc.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	if bc.wbuf == nil {
		t.Fatal("no write buffer during a batch")
	}
	if err := bc.endBatch(); err != nil {
		t.Fatal(err)
	}
	if bc.wbuf != nil {
		t.Fatal("the write buffer is still held after the batch")
	}
	if !bytes.Equal(<-got, want) {
		t.Fatal("the peer received the batch out of order or incomplete")
	}
	// Outside a batch writes go straight through.
	if _, err := bc.Write([]byte("now")); err != nil {
		t.Fatal(err)
	}
	if bc.wbuf != nil {
		t.Fatal("a write outside a batch took a buffer")
	}
	q := make([]byte, 3)
	if _, err := io.ReadFull(b, q); err != nil || string(q) != "now" {
		t.Fatalf("read %q, %v", q, err)
	}
}

func TestBufferedConnReturnsDataBeforeTheError(t *testing.T) {
	a, b := net.Pipe()
	bc := NewBufferedConn(a)
	go func() {
		b.Write([]byte("bye"))
		b.Close()
	}()
	got, err := io.ReadAll(bc)
	if err != nil || string(got) != "bye" {
		t.Fatalf("ReadAll = %q, %v; want \"bye\", nil", got, err)
	}
	a.Close()
}

func TestReadSizeGrowsWithFullReadsAndShrinksWithShortOnes(t *testing.T) {
	large := largePool(1 << 20)
	size := poolFor(1, large).size
	var grown []int
	for range 6 {
		size = nextReadSize(size, size-frameHeaderLen, large)
		grown = append(grown, size)
	}
	wantGrown := []int{16 << 10, 64 << 10, 256 << 10, 1 << 20, 1 << 20, 1 << 20}
	if !slices.Equal(grown, wantGrown) {
		t.Fatalf("full reads grow sizes %v, want %v", grown, wantGrown)
	}
	if s := nextReadSize(1<<20, 300<<10, large); s != 1<<20 {
		t.Fatalf("a 300 KiB read shrank a 1 MiB buffer to %d", s)
	}
	var shrunk []int
	for range 5 {
		size = nextReadSize(size, 100, large)
		shrunk = append(shrunk, size)
	}
	wantShrunk := []int{256 << 10, 64 << 10, 16 << 10, 4 << 10, 4 << 10}
	if !slices.Equal(shrunk, wantShrunk) {
		t.Fatalf("short reads shrink sizes %v, want %v", shrunk, wantShrunk)
	}

	// A frame size that is no class is the largest buffer.
	odd := largePool(100_000)
	if s := nextReadSize(64<<10, 64<<10, odd); s != 100_000 {
		t.Fatalf("grew to %d, want the frame size 100000", s)
	}
	b := getBuf(100_000, odd)
	if cap(*b) != 100_000 {
		t.Fatalf("getBuf(100000) has %d bytes", cap(*b))
	}
	putBuf(b, odd)
}

func TestBufferedConnWritesWaitForRoomAndHonourDeadlines(t *testing.T) {
	a, b := tcpPair(t)
	// Fixed small socket buffers: left to autotune, the kernel may grow
	// them (up to 32 MiB on some hosts) until they hold all of want.
	if err := a.(*net.TCPConn).SetWriteBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	if err := b.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	bc := NewBufferedConn(a)
	// Far more than the socket buffers hold: the write must wait for the
	// reader, then complete, in order.
	want := make([]byte, 16<<20)
	for i := range want {
		want[i] = byte(i / 4096)
	}
	got := make(chan []byte)
	go func() {
		buf, _ := io.ReadAll(io.LimitReader(b, int64(len(want))))
		got <- buf
	}()
	if n, err := bc.Write(want); err != nil || n != len(want) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if !bytes.Equal(<-got, want) {
		t.Fatal("the reader got other bytes than were written")
	}

	// Nobody reads now: a deadline ends the write with a timeout.
	bc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
	n, err := bc.Write(want)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write to a peer that reads nothing = %d, %v; want a deadline error", n, err)
	}
	if n <= 0 || n >= len(want) {
		t.Fatalf("wrote %d of %d bytes before the deadline; want a part", n, len(want))
	}
}

// emptyReads is a connection whose reads return nothing and no error a
// few times before its data, as io.Reader permits.
type emptyReads struct {
	net.Conn
	empty int
	data  []byte
}

func (c *emptyReads) Read(p []byte) (int, error) {
	if c.empty > 0 {
		c.empty--
		return 0, nil
	}
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

func TestBufferedConnPassesOnEmptyReads(t *testing.T) {
	bc := NewBufferedConn(&emptyReads{empty: 3, data: []byte("data")})
	var got []byte
	p := make([]byte, 8)
	for range 10 {
		n, err := bc.Read(p)
		got = append(got, p[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "data" {
		t.Fatalf("read %q, want \"data\"", got)
	}
}
