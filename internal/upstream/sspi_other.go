//go:build !windows

package upstream

// sspiAvailable says whether newOSSSPI can authenticate as the logged-in
// user.
const sspiAvailable = false

// sspiUnavailable explains why a proxy's Negotiate or NTLM challenge
// cannot be answered without a password here.
const sspiUnavailable = "signing in to the proxy as the logged-in user (Negotiate or NTLM through SSPI) works on Windows only"

func newOSSSPI(pkg, target string) (sspiSession, error) { return nil, errNoSSPI }
