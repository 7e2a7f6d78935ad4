package sockio

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func tcpPair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// Each fast path either works on a TCP connection or says it is absent,
// and none claims anything else.
func TestFastPathsOnTCPAndAbsentElsewhere(t *testing.T) {
	a, b := tcpPair(t)
	pipeA, pipeB := net.Pipe()
	defer pipeA.Close()
	defer pipeB.Close()
	if IdleReader(pipeA, 0) != nil || SinkOf(pipeA) != nil || WriterOf(pipeA) != nil {
		t.Fatal("a fast path for a net.Pipe")
	}
	if _, ok, _ := PeekByte(pipeA); ok {
		t.Fatal("PeekByte claims a net.Pipe")
	}
	if !Fast {
		if IdleReader(a, 0) != nil || SinkOf(a) != nil || WriterOf(a) != nil {
			t.Fatal("the portable build has a fast path")
		}
		return
	}

	// Peek, then read what was peeked.
	b.Write([]byte("hello"))
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	c, ok, err := PeekByte(a)
	if !ok || err != nil || c != 'h' {
		t.Fatalf("PeekByte = %q, %v, %v", c, ok, err)
	}
	read := IdleReader(a, 2)
	get := func() *[]byte { p := make([]byte, 16); return &p }
	buf, n, err := read(get, func(*[]byte) {}, nil)
	if err != nil || string((*buf)[2:2+n]) != "hello" {
		t.Fatalf("IdleReader read %d, %v", n, err)
	}
	// An idle source with mayPark saying no returns at once, its buffer
	// given back.
	var put int
	buf, n, err = read(get, func(*[]byte) { put++ }, func() bool { return false })
	if buf != nil || n != 0 || err != nil || put != 1 {
		t.Fatalf("idle read = %v, %d, %v (put %d)", buf, n, err, put)
	}

	// Write without waiting, then with.
	sink := SinkOf(a)
	if n, err := sink.TryWrite([]byte("abc")); n != 3 || err != nil {
		t.Fatalf("TryWrite = %d, %v", n, err)
	}
	w := WriterOf(a)
	if n, err := w([]byte("def")); n != 3 || err != nil {
		t.Fatalf("writer = %d, %v", n, err)
	}
	got := make([]byte, 6)
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(b, got); err != nil || !bytes.Equal(got, []byte("abcdef")) {
		t.Fatalf("read %q, %v", got, err)
	}
	// The source's end is io.EOF.
	b.CloseWrite()
	if _, _, err := read(get, func(*[]byte) {}, nil); err != io.EOF {
		t.Fatalf("read at the end = %v, want io.EOF", err)
	}
}
