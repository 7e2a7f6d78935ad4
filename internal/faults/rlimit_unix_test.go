//go:build unix

package faults

import "syscall"

// openFilesLimit is the soft RLIMIT_NOFILE after raiseOpenFiles, which
// child processes inherit.
var openFilesLimit uint64

// raiseOpenFiles raises the soft limit on open files to the hard limit (and
// the hard limit too, where the process may), for this process and the
// processes it starts.
func raiseOpenFiles() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 16, Max: max(lim.Max, 1<<16)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		openFilesLimit = lim.Cur
	}
}
