// Package proxystatus formats and parses the RFC 9209 Proxy-Status header
// field, which tells a client why a proxy could not serve a request:
//
//	Proxy-Status: fluidity; error=destination_ip_prohibited; details="…"
//
// The exit sets it on refused CONNECTs; the agent reads it and passes the
// error type and details on to its own clients.
package proxystatus

import "strings"

// Name is the proxy name used in the fields this package formats.
const Name = "fluidity"

// maxDetails bounds the details parameter, in characters.
const maxDetails = 256

// Format renders a Proxy-Status field value naming this proxy, the error
// type (an RFC 8941 token such as "dns_error"; omitted if empty or not a
// token) and details. Details become printable ASCII (other characters are
// replaced), are escaped as an RFC 8941 string and are cut at 256
// characters.
func Format(errType, details string) string {
	var b strings.Builder
	b.WriteString(Name)
	if errType != "" && IsToken(errType) {
		b.WriteString("; error=")
		b.WriteString(errType)
	}
	if details != "" {
		b.WriteString("; details=")
		quote(&b, details)
	}
	return b.String()
}

func quote(b *strings.Builder, s string) {
	b.WriteByte('"')
	n := 0
	for _, r := range s {
		if n == maxDetails {
			b.WriteString("...")
			break
		}
		n++
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// Parse extracts the error type and details from the last member of a
// Proxy-Status field value (the proxy nearest the client). Parts it cannot
// parse come back empty.
func Parse(v string) (errType, details string) {
	members := splitOutsideQuotes(v, ',')
	params := splitOutsideQuotes(members[len(members)-1], ';')
	for _, p := range params[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "error":
			if IsToken(val) {
				errType = val
			}
		case "details":
			if s, ok := unquote(val); ok {
				details = s
			}
		}
	}
	return errType, details
}

func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	s = s[1 : len(s)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			i++
			if i == len(s) || (s[i] != '"' && s[i] != '\\') {
				return "", false
			}
			c = s[i]
		} else if c == '"' {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && inQuote:
			i++
		case s[i] == '"':
			inQuote = !inQuote
		case s[i] == sep && !inQuote:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// IsToken reports whether s is an RFC 8941 token: ALPHA or "*" first, then
// tchar, ":" or "/".
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	c := s[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '*') {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~:/", c) >= 0:
		default:
			return false
		}
	}
	return true
}
