package sockio

import (
	"errors"
	"fmt"
	"net"
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
