package sockio

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
)

// A dial to a closed port is refused, on every system, as the system itself
// reports it; other errors are not.
func TestRefusedIsWhatTheSystemSaysForAClosedPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	if err == nil {
		t.Skip("something else took the port")
	}
	if !Refused(err) || !Refused(fmt.Errorf("dial: %w", err)) {
		t.Errorf("dial to the closed port %s: %v (%#v) not seen as refused", addr, err, errors.Unwrap(err))
	}
	if Reset(err) {
		t.Errorf("a refusal seen as a reset: %v", err)
	}
	for _, other := range []error{nil, errors.New("connection refused"), net.ErrClosed} {
		if Refused(other) || Reset(other) {
			t.Errorf("%v seen as refused or reset", other)
		}
	}
}

// A second listen on a taken port is AddrInUse, as the system reports it.
func TestAddrInUseIsWhatTheSystemSaysForATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	second, err := net.Listen("tcp", ln.Addr().String())
	if err == nil {
		second.Close()
		t.Fatalf("a second listen on %s worked", ln.Addr())
	}
	if !AddrInUse(err) || !AddrInUse(fmt.Errorf("listen: %w", err)) {
		t.Errorf("listen on the taken port %s: %v (%#v) not seen as in use", ln.Addr(), err, errors.Unwrap(err))
	}
	for _, other := range []error{nil, errors.New("address already in use"), net.ErrClosed} {
		if AddrInUse(other) {
			t.Errorf("%v seen as in use", other)
		}
	}
}

func TestOutOfSockets(t *testing.T) {
	for _, err := range outOfSocketsErrors {
		wrapped := &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept", err)}
		if !OutOfSockets(wrapped) {
			t.Errorf("OutOfSockets(%v) = false", wrapped)
		}
	}
	for _, other := range []error{nil, errors.New("too many open files"), net.ErrClosed, syscall.ECONNRESET} {
		if OutOfSockets(other) {
			t.Errorf("OutOfSockets(%v) = true", other)
		}
	}
}
