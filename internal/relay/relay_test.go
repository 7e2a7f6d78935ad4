package relay

import (
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return c1.(*net.TCPConn), c2.(*net.TCPConn)
}

func TestPipeHalfClosesEachDirectionOnItsOwn(t *testing.T) {
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	defer client.Close()
	defer target.Close()
	done := make(chan Result, 1)
	go func() { done <- Pipe(a, b) }()

	// The client finishes sending first; the target still answers after
	// reading EOF, and the answer reaches the client.
	io.WriteString(client, "question")
	client.CloseWrite()
	got, err := io.ReadAll(target)
	if err != nil || string(got) != "question" {
		t.Fatalf("target read %q, %v", got, err)
	}
	io.WriteString(target, "a long answer")
	target.CloseWrite()
	got, err = io.ReadAll(client)
	if err != nil || string(got) != "a long answer" {
		t.Fatalf("client read %q, %v", got, err)
	}
	select {
	case res := <-done:
		if res.Err != nil || res.AToB != int64(len("question")) || res.BToA != int64(len("a long answer")) {
			t.Fatalf("result %+v", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return after both directions ended")
	}
}

func TestPipeErrorInOneDirectionEndsBoth(t *testing.T) {
	client, a := tcpPair(t)
	b, target := tcpPair(t)
	defer client.Close()
	done := make(chan Result, 1)
	go func() { done <- Pipe(a, b) }()
	// The target resets: the client side must not be left hanging.
	target.SetLinger(0)
	target.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(client); err != nil {
		var ne net.Error
		if ok := asNetErr(err, &ne); ok && ne.Timeout() {
			t.Fatal("client hangs after the target reset")
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not return")
	}
}

func asNetErr(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}
