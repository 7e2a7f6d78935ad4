//go:build !windows

package acceptloop

// osTemporary: syscall.Errno already knows this system's codes.
func osTemporary(error) bool { return false }
