//go:build unix

package supervisor

import "syscall"

// alive reports whether a process pid exists (and is not a zombie of ours:
// the killed supervisor's child is reparented, and reaped by init).
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }
