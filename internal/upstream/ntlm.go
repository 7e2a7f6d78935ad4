package upstream

import (
	"encoding/base64"
	"encoding/binary"
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
	msg, err := ntlmssp.NewAuthenticateMessage(tolerateChallenge(challenge), ex.user, ex.pass, nil)
	if err != nil {
		return "", fmt.Errorf("upstream proxy %s: its NTLM challenge: %w", ex.proxy.Host, err)
	}
	ex.sentPWD = true
	return "NTLM " + base64.StdEncoding.EncodeToString(msg), nil
}

// tolerateChallenge returns an NTLM CHALLENGE message with any variable
// field that points outside the message (TargetName at byte 12, TargetInfo
// at byte 40) emptied. Some proxies' helpers (Squid's ntlm_fake_auth among
// them) send a TargetName with garbage offsets; the answer needs neither
// field's content from a proxy that sends it so, and curl ignores it too.
// It also marks the message as choosing Unicode when a server chose OEM
// strings only (ntlm_fake_auth does): the NTLM code answers in Unicode
// alone, which is what every NTLMv2 server accepts. A message too short to
// hold its fixed fields comes back unchanged, for the NTLM code to refuse.
func tolerateChallenge(msg []byte) []byte {
	const targetName, targetInfo = 12, 40
	if len(msg) < 32 || string(msg[:8]) != "NTLMSSP\x00" {
		return msg
	}
	out := append([]byte(nil), msg...)
	const flags, negotiateUnicode = 20, 0x1
	binary.LittleEndian.PutUint32(out[flags:], binary.LittleEndian.Uint32(out[flags:])|negotiateUnicode)
	for _, at := range []int{targetName, targetInfo} {
		if at+8 > len(out) {
			continue
		}
		n := int(binary.LittleEndian.Uint16(out[at:]))
		off := int64(binary.LittleEndian.Uint32(out[at+4:]))
		if n > 0 && off+int64(n) > int64(len(out)) {
			clear(out[at : at+8])
		}
	}
	return out
}
