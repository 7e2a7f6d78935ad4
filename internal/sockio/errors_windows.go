//go:build windows

package sockio

import (
	"errors"
	"syscall"

	"golang.org/x/sys/windows"
)

// Winsock reports its own codes, which errors.Is does not match with the
// syscall package's Unix-style constants.

func isRefused(err error) bool {
	return errors.Is(err, windows.WSAECONNREFUSED) || errors.Is(err, syscall.ECONNREFUSED)
}

func isReset(err error) bool {
	return errors.Is(err, windows.WSAECONNRESET) || errors.Is(err, syscall.ECONNRESET)
}
