package sockio

// The socket errors fluidity tells apart, on every system: Windows reports
// Winsock's own codes, which errors.Is does not match with the syscall
// package's Unix-style constants (on Windows those are numbers Go made up).

// Refused reports whether err says that the target refused the connection
// (ECONNREFUSED; on Windows also Winsock's WSAECONNREFUSED, which the Go
// runtime does not translate).
func Refused(err error) bool { return isRefused(err) }

// Reset reports whether err says that the peer reset the connection
// (ECONNRESET; on Windows also WSAECONNRESET).
func Reset(err error) bool { return isReset(err) }

// AddrInUse reports whether err, from a listen, says that the address is
// taken (EADDRINUSE; on Windows WSAEADDRINUSE).
func AddrInUse(err error) bool { return isAddrInUse(err) }

// OutOfSockets reports whether err says that the process or the system has
// run out of file descriptors or buffers for sockets (EMFILE, ENFILE,
// ENOBUFS; on Windows WSAEMFILE and WSAENOBUFS): a condition that passes.
func OutOfSockets(err error) bool { return isOutOfSockets(err) }
