package agent

import (
	"errors"

	"golang.org/x/sys/windows"
)

// addrInUse reports whether err is a listen's "address already in use".
func addrInUse(err error) bool { return errors.Is(err, windows.WSAEADDRINUSE) }
