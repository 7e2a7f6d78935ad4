//go:build !windows

package sockio

import (
	"errors"
	"syscall"
)

func isRefused(err error) bool   { return errors.Is(err, syscall.ECONNREFUSED) }
func isReset(err error) bool     { return errors.Is(err, syscall.ECONNRESET) }
func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

func isOutOfSockets(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS)
}
