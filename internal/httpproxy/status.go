package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// statusCoder is implemented by Dial errors that know the HTTP status to
// answer.
type statusCoder interface {
	StatusCode() int
}

// proxyStatuser is implemented by Dial errors that know their RFC 9209 error
// type, such as "dns_error" or "destination_ip_prohibited".
type proxyStatuser interface {
	ProxyStatus() string
}

// handlerError is an error of the handler itself, with its status.
type handlerError struct {
	status int
	msg    string
}

func (e *handlerError) Error() string   { return e.msg }
func (e *handlerError) StatusCode() int { return e.status }

var (
	errNoDialer = &handlerError{http.StatusServiceUnavailable, "no tunnel: the proxy has no dialer configured"}
	errClosed   = &handlerError{http.StatusServiceUnavailable, "the proxy is shutting down"}
)

// classify maps an error from Dial or the upstream exchange to the HTTP
// status to answer and, when known, its RFC 9209 error type.
func classify(err error) (status int, errType string) {
	status = http.StatusBadGateway
	var sc statusCoder
	if errors.As(err, &sc) {
		if s := sc.StatusCode(); s >= 400 && s <= 599 {
			status = s
		}
	} else if isTimeout(err) {
		status = http.StatusGatewayTimeout
	}
	var ps proxyStatuser
	if errors.As(err, &ps) {
		errType = ps.ProxyStatus()
	} else {
		errType = inferErrorType(err)
	}
	if !isToken(errType) {
		errType = ""
	}
	return status, errType
}

// isTimeout reports whether err is a deadline or a network timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// inferErrorType recognizes the RFC 9209 error types of errors that come from
// the local network stack rather than from the exit.
func inferErrorType(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &dnsErr):
		if dnsErr.IsTimeout {
			return "dns_timeout"
		}
		return "dns_error"
	case errors.As(err, &certErr):
		return "tls_certificate_error"
	case isTimeout(err):
		return "connection_timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection_terminated"
	}
	return ""
}

// writeError answers with status and a short plain-text body, and with a
// Proxy-Status header when errType is known.
func writeError(w http.ResponseWriter, status int, errType, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if errType != "" {
		h.Set("Proxy-Status", formatProxyStatus(errType, body))
	}
	w.WriteHeader(status)
	fmt.Fprintln(w, body)
}

// maxDetails bounds the details parameter of a Proxy-Status header.
const maxDetails = 256

// formatProxyStatus builds an RFC 9209 Proxy-Status value naming this proxy,
// errType (which must be a structured-field token) and details.
func formatProxyStatus(errType, details string) string {
	var b strings.Builder
	b.WriteString("fluidity; error=")
	b.WriteString(errType)
	if details != "" {
		b.WriteString("; details=")
		quoteSFString(&b, details)
	}
	return b.String()
}

// quoteSFString writes s as an RFC 8941 string: printable ASCII only, with
// backslash and double quote escaped. Other characters become '?', and long
// strings are cut.
func quoteSFString(b *strings.Builder, s string) {
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

// isToken reports whether s is an RFC 8941 token: ALPHA or "*" first, then
// tchar, ":" or "/".
func isToken(s string) bool {
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
