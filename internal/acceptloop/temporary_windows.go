package acceptloop

import (
	"errors"

	"golang.org/x/sys/windows"
)

// osTemporary reports Windows' own codes for running out of sockets and
// buffers, which syscall.Errno does not count as temporary: its EMFILE and
// ENOBUFS are Go's invented numbers, not the WSAE ones accept returns.
func osTemporary(err error) bool {
	return errors.Is(err, windows.WSAEMFILE) || errors.Is(err, windows.WSAENOBUFS)
}
