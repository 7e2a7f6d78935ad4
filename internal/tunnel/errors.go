package tunnel

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"golang.org/x/net/http2"
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

// ResetError is a stream reset, by the peer (Remote) or by this side,
// with its RFC 9113 error code. errors.Is(err, ErrStreamReset) holds for
// it; Cause says why this side reset it.
type ResetError struct {
	Code   http2.ErrCode
	Remote bool
	Cause  error
}

func (e *ResetError) Error() string {
	switch {
	case e.Remote:
		return fmt.Sprintf("stream reset by peer: %v", e.Code)
	case e.Cause != nil:
		return fmt.Sprintf("stream reset: %v", e.Cause)
	}
	return fmt.Sprintf("stream reset: %v", e.Code)
}

func (e *ResetError) Is(target error) bool { return target == ErrStreamReset }

func (e *ResetError) Unwrap() error { return e.Cause }

// IdentityHeader carries, in an exit's answer to a CONNECT, the identity it
// verified for the stream (an IAM ARN), when there is one.
const IdentityHeader = "Fluidity-Identity"

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

// statusFromHeaders reads :status, tolerating garbage as 0.
func parseStatus(v string) int {
	n, err := strconv.Atoi(v)
	if err != nil || n < 100 || n > 999 {
		return 0
	}
	return n
}
