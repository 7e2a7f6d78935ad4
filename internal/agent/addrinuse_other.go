//go:build !windows

package agent

import (
	"errors"
	"syscall"
)

// addrInUse reports whether err is a listen's "address already in use".
func addrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }
