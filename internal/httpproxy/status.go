package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"

	"fluidity/internal/proxystatus"
	"fluidity/internal/sockio"
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
	if !proxystatus.IsToken(errType) {
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
	case sockio.Refused(err):
		return "connection_refused"
	case sockio.Reset(err):
		return "connection_terminated"
	}
	return ""
}

// proxyAuthenticate is the challenge a 407 carries.
const proxyAuthenticate = `Bearer realm="fluidity"`

// writeError answers with status and a short plain-text body.
func writeError(w http.ResponseWriter, status int, errType, body string) {
	setErrorHeader(w.Header(), status, errType, body)
	w.WriteHeader(status)
	fmt.Fprintln(w, body)
}

// setErrorHeader sets the header fields of an error answer: a Proxy-Status
// when errType is known, and the challenge a 407 must carry (RFC 9110
// §11.7.1): the exit wants the bearer token the agent sends with --iam.
func setErrorHeader(h http.Header, status int, errType, body string) {
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if errType != "" {
		h.Set("Proxy-Status", proxystatus.Format(errType, body))
	}
	if status == http.StatusProxyAuthRequired {
		h.Set("Proxy-Authenticate", proxyAuthenticate)
	}
}
