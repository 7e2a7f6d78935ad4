package sockio

// Refused reports whether err says that the target refused the connection
// (ECONNREFUSED; on Windows also Winsock's WSAECONNREFUSED, which the Go
// runtime does not translate).
func Refused(err error) bool { return isRefused(err) }

// Reset reports whether err says that the peer reset the connection
// (ECONNRESET; on Windows also WSAECONNRESET).
func Reset(err error) bool { return isReset(err) }
