package iamauth

import (
	"errors"
	"net/http"
	"time"
)

// Sentinels to branch on with errors.Is. Every error Verify returns is an
// *Error that matches exactly one of them.
var (
	// ErrNoToken: the request carries no IAM token (status 407).
	ErrNoToken = errors.New("no iam token")
	// ErrInvalidToken: the token is malformed, stale, not for this server,
	// or STS refused it (status 407). Minting a new token may help.
	ErrInvalidToken = errors.New("invalid iam token")
	// ErrNotAllowed: the token proves an identity that the allowlist does
	// not name (status 403). A new token will not help.
	ErrNotAllowed = errors.New("iam identity not allowed")
	// ErrSTSUnavailable: STS did not answer in time or answered with an
	// error of its own (status 503). The token was not judged; retry later.
	ErrSTSUnavailable = errors.New("sts unavailable")
	// ErrTooManyFailures: the client failed too often recently and is
	// refused without a look at its token (status 429).
	ErrTooManyFailures = errors.New("too many failed iam attempts")
	// ErrBusy: too many verifications are in flight, for this client
	// (status 429) or for the exit (status 503). The token was not judged;
	// retry after RetryAfter.
	ErrBusy = errors.New("too many iam verifications in flight")
	// ErrClosed: the Verifier was closed (status 503).
	ErrClosed = errors.New("iam verifier closed")
)

// Error is a refused token: the HTTP status to answer the CONNECT request
// with, and a reason fit for the response body and the log. Reason never
// contains the token.
type Error struct {
	Status int    // 407, 403, 429 or 503
	Reason string // what went wrong, and what to do when the client can act on it
	Err    error  // one of the sentinels above

	// RetryAfter is, for status 429 and ErrBusy, when the client may try
	// again.
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Err.Error() + ": " + e.Reason }

func (e *Error) Unwrap() error { return e.Err }

// StatusCode is the HTTP status to answer with.
func (e *Error) StatusCode() int { return e.Status }

// ProxyStatus is the error type for a Proxy-Status response header
// (RFC 9209): "http_request_denied" for refusals, "proxy_internal_error"
// when STS could not be asked.
func (e *Error) ProxyStatus() string {
	if e.Status == http.StatusServiceUnavailable {
		return "proxy_internal_error"
	}
	return "http_request_denied"
}

func invalid(reason string) *Error {
	return &Error{Status: http.StatusProxyAuthRequired, Reason: reason, Err: ErrInvalidToken}
}

func unavailable(reason string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Reason: reason, Err: ErrSTSUnavailable}
}

func notAllowed(reason string) *Error {
	return &Error{Status: http.StatusForbidden, Reason: reason, Err: ErrNotAllowed}
}
