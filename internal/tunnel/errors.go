package tunnel

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

var (
	// ErrLinkClosed is returned for operations on a connection that has ended.
	ErrLinkClosed = errors.New("tunnel link closed")
	// ErrLinkDown is returned by Client.Dial when no link to the exit came up
	// within the wait bound.
	ErrLinkDown = errors.New("tunnel link down")
	// ErrPingTimeout ends a connection whose peer did not answer a PING in time.
	ErrPingTimeout = errors.New("tunnel link: ping timeout")
	// ErrStreamReset is wrapped by errors for streams the peer reset.
	ErrStreamReset = errors.New("stream reset")
	// ErrGoAway is returned for streams the peer refused because it is shutting down.
	ErrGoAway = errors.New("tunnel link going away")
)

// DialError is a refused or failed CONNECT: the exit's (or the agent's own)
// HTTP status and RFC 9209 Proxy-Status error type and details.
type DialError struct {
	Target  string // host:port asked for
	Status  int    // HTTP status, e.g. 403, 502, 503
	Type    string // RFC 9209 error type, e.g. "destination_ip_prohibited"; may be empty
	Details string // human-readable reason
	Err     error  // underlying cause, if any
}

func (e *DialError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "connect %s: %d %s", e.Target, e.Status, http.StatusText(e.Status))
	if e.Details != "" {
		b.WriteString(": ")
		b.WriteString(e.Details)
	} else if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *DialError) Unwrap() error { return e.Err }

// StatusCode is the HTTP status a proxy front-end should answer.
func (e *DialError) StatusCode() int { return e.Status }

// ProxyStatus is the RFC 9209 error type.
func (e *DialError) ProxyStatus() string { return e.Type }

// ProxyStatusName is the proxy name used in Proxy-Status headers.
const ProxyStatusName = "fluidity"

// FormatProxyStatus renders an RFC 9209 Proxy-Status field value.
func FormatProxyStatus(errType, details string) string {
	var b strings.Builder
	b.WriteString(ProxyStatusName)
	if errType != "" {
		b.WriteString("; error=")
		b.WriteString(errType)
	}
	if details != "" {
		b.WriteString("; details=")
		b.WriteString(quoteSFString(details))
	}
	return b.String()
}

// ParseProxyStatus extracts the error type and details from the last member
// of a Proxy-Status field value. Unparseable input yields empty strings.
func ParseProxyStatus(v string) (errType, details string) {
	// The last list member is the proxy closest to the client.
	members := splitOutsideQuotes(v, ',')
	if len(members) == 0 {
		return "", ""
	}
	params := splitOutsideQuotes(members[len(members)-1], ';')
	for _, p := range params[1:] {
		k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "error":
			if isToken(val) {
				errType = val
			}
		case "details":
			if s, ok := unquoteSFString(val); ok {
				details = s
			}
		}
	}
	return errType, details
}

func quoteSFString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?') // sf-string is printable ASCII only
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func unquoteSFString(s string) (string, bool) {
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

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.:%*/!#$&'+^`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// statusFromHeaders reads :status, tolerating garbage as 502.
func parseStatus(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 || n > 999 {
		return 0
	}
	return n
}
