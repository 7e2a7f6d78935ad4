package upstream

// sspiSession is one Negotiate or NTLM exchange with the logged-in user's
// credentials, through the operating system (SSPI on Windows). It is the
// one OS-specific part of this package: sspi_windows.go implements it with
// secur32.dll, sspi_other.go says that it is Windows-only.
type sspiSession interface {
	// Step takes the proxy's last token (nil at the start) and returns the
	// next token to send.
	Step(challenge []byte) ([]byte, error)
	// Close releases the security context and credentials.
	Close()
}
