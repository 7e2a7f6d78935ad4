package upstream

import (
	"encoding/base64"
	"fmt"

	"github.com/Azure/go-ntlmssp"
)

// ntlm returns the next NTLM message with the configured credentials: a
// NEGOTIATE to start, an AUTHENTICATE in answer to the proxy's CHALLENGE.
// A user name DOMAIN\user or user@domain carries its domain.
func (ex *exchange) ntlm(challenge []byte) (string, error) {
	if challenge == nil {
		msg, err := ntlmssp.NewNegotiateMessage("", "")
		if err != nil {
			return "", fmt.Errorf("upstream proxy %s: ntlm: %w", ex.proxy.Host, err)
		}
		return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
	}
	if ex.sentPWD {
		// A second CHALLENGE after our AUTHENTICATE: refused.
		return "", &AuthError{Proxy: ex.proxy.Host, Sent: "NTLM", User: ex.user}
	}
	msg, err := ntlmssp.NewAuthenticateMessage(challenge, ex.user, ex.pass, nil)
	if err != nil {
		return "", fmt.Errorf("upstream proxy %s: its NTLM challenge: %w", ex.proxy.Host, err)
	}
	ex.sentPWD = true
	return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
}
