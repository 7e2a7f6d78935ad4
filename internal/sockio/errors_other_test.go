//go:build !windows

package sockio

import "syscall"

var outOfSocketsErrors = []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS}
