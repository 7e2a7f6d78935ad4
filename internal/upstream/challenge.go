package upstream

import (
	"strings"
)

// Challenge is one authentication challenge of a Proxy-Authenticate header
// (RFC 9110 §11.6.1): a scheme and what follows it, which is either a
// token68 (NTLM and Negotiate carry their binary messages so) or a list of
// parameters (Basic realm="…").
type Challenge struct {
	Scheme string // as the proxy wrote it; compare with strings.EqualFold
	// Data is the rest of the challenge, trimmed: a token68, or
	// parameters as written.
	Data string
}

// String is the challenge as a person would read it in an error.
func (c Challenge) String() string {
	if c.Data == "" || c.isBinary() {
		// An NTLM or Negotiate token means nothing to a reader.
		return c.Scheme
	}
	return c.Scheme + " " + c.Data
}

func (c Challenge) isBinary() bool {
	return strings.EqualFold(c.Scheme, "NTLM") || strings.EqualFold(c.Scheme, "Negotiate")
}

// Realm returns the realm parameter, or "".
func (c Challenge) Realm() string {
	for _, p := range splitParams(c.Data) {
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "realm") {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}

// ParseChallenges parses the values of Proxy-Authenticate header fields.
// One field may hold several challenges separated by commas, and a
// challenge's parameters are separated by commas too: a comma begins a new
// challenge when the next item is a lone token or a token followed by a
// space and not an "=". Malformed input yields what could be read, never an
// error: the caller only picks a scheme it knows.
func ParseChallenges(values []string) []Challenge {
	var out []Challenge
	for _, v := range values {
		var cur *Challenge
		for _, item := range splitParams(v) {
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			scheme, rest, hasSpace := strings.Cut(item, " ")
			if isToken(scheme) && !(hasSpace && strings.HasPrefix(strings.TrimLeft(rest, " "), "=")) {
				out = append(out, Challenge{Scheme: scheme, Data: strings.TrimSpace(rest)})
				cur = &out[len(out)-1]
				continue
			}
			if cur == nil {
				continue // parameters before any scheme
			}
			if cur.Data == "" {
				cur.Data = item
			} else {
				cur.Data += ", " + item
			}
		}
	}
	return out
}

// splitParams splits s at commas outside double quotes.
func splitParams(s string) []string {
	var out []string
	start, quoted, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// isToken reports whether s is a non-empty RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
