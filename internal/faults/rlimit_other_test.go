//go:build !unix

package faults

// openFilesLimit is 0 where there is no RLIMIT_NOFILE: the tests that need
// many open files scale down or skip.
var openFilesLimit uint64

// raiseOpenFiles does nothing where there is no RLIMIT_NOFILE.
func raiseOpenFiles() {}
