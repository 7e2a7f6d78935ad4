package sockio

import (
	"syscall"

	"golang.org/x/sys/windows"
)

var outOfSocketsErrors = []error{windows.WSAEMFILE, windows.WSAENOBUFS, syscall.EMFILE, syscall.ENOBUFS}
