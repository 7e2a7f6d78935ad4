package acceptloop

import (
	"net"
	"os"
	"testing"

	"golang.org/x/sys/windows"
)

func TestTemporaryOnWindows(t *testing.T) {
	for _, code := range []error{windows.WSAEMFILE, windows.WSAENOBUFS} {
		err := &net.OpError{Op: "accept", Err: os.NewSyscallError("acceptex", code)}
		if !Temporary(err) {
			t.Errorf("Temporary(%v) = false; an accept out of sockets must be retried", err)
		}
	}
}
