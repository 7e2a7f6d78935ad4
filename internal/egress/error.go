package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"fluidity/internal/sockio"
)

// Sentinels that errors.Is reports for an [*Error], one per kind of failure.
var (
	// ErrRefused: the egress policy refused the target; nothing was dialed.
	ErrRefused = errors.New("refused by egress policy")
	// ErrResolve: the host name could not be resolved.
	ErrResolve = errors.New("cannot resolve host")
	// ErrConnect: no allowed address of the target accepted a connection.
	ErrConnect = errors.New("cannot connect to target")
)

// Proxy-Status error types (RFC 9209) used by this package.
const (
	statusDNSError      = "dns_error"
	statusIPProhibited  = "destination_ip_prohibited"
	statusIPUnroutable  = "destination_ip_unroutable"
	statusConnRefused   = "connection_refused"
	statusConnTimeout   = "connection_timeout"
	statusUnavailable   = "destination_unavailable"
	statusRequestDenied = "http_request_denied"
)

// Error is the error of every failed [Dialer.DialContext].
type Error struct {
	Host  string       // the host as requested: a name or an IP literal
	Port  uint16       // the requested port, 0 if it was invalid
	Addrs []netip.Addr // the addresses refused, or those that failed to connect
	// Reason says what happened, for a person; for a refusal it also says
	// how to allow the target when the exit's configuration can.
	Reason string
	// Err is the underlying cause (a *net.DNSError, a *net.OpError, a
	// context error, …), or nil for a policy refusal.
	Err error

	kind        error  // ErrRefused, ErrResolve or ErrConnect
	status      int    // HTTP status
	proxyStatus string // RFC 9209 error type
}

func (e *Error) Error() string {
	if e.kind == ErrRefused {
		return "refused by egress policy: " + e.Reason
	}
	if e.Err != nil {
		return e.Reason + ": " + e.Err.Error()
	}
	return e.Reason
}

// Unwrap returns the sentinel of the error's kind and the underlying cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.Err}
}

// StatusCode is the HTTP status a proxy should answer: 403 for a refusal,
// 502 for a DNS failure or an unreachable target, 504 for a timeout.
func (e *Error) StatusCode() int { return e.status }

// ProxyStatus is the RFC 9209 Proxy-Status error type, such as
// "destination_ip_prohibited" or "connection_refused".
func (e *Error) ProxyStatus() string { return e.proxyStatus }

// refusedError builds the error for a refused host or port (v.denied) or
// for refused addresses.
func refusedError(host string, port uint16, addrs []netip.Addr, reason string, denied bool) *Error {
	ps := statusIPProhibited
	if denied {
		ps = statusRequestDenied
	}
	return &Error{
		Host: host, Port: port, Addrs: addrs, Reason: reason,
		kind: ErrRefused, status: http.StatusForbidden, proxyStatus: ps,
	}
}

// refusedByRule reports a host or port rule (or an invalid request).
func refusedByRule(host string, port uint16, v verdict) *Error {
	return refusedError(host, port, nil, withHint(v.why, v.hint), true)
}

// refusedAddrs reports that every address of host was refused, e.g.
// "example.internal resolves to 10.0.0.7 (private); allow it with …".
func refusedAddrs(host string, port uint16, literal bool, addrs []netip.Addr, vs []verdict) *Error {
	var b strings.Builder
	if literal {
		b.WriteString("target ")
	} else {
		fmt.Fprintf(&b, "%s resolves to ", host)
	}
	var hints []string
	for i, a := range addrs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (%s)", a, vs[i].why)
		if h := vs[i].hint; h != "" && !slices.Contains(hints, h) {
			hints = append(hints, h)
		}
	}
	return refusedError(host, port, addrs, withHint(b.String(), strings.Join(hints, "; ")), false)
}

func withHint(why, hint string) string {
	if hint == "" {
		return why
	}
	return why + "; " + hint
}

// resolveError reports a failed lookup of host.
func resolveError(host string, port uint16, err error) *Error {
	status := http.StatusBadGateway
	if isTimeout(err) {
		status = http.StatusGatewayTimeout
	}
	reason := "cannot resolve " + host
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		reason = "no such host " + host
	}
	return &Error{
		Host: host, Port: port, Reason: reason, Err: err,
		kind: ErrResolve, status: status, proxyStatus: statusDNSError,
	}
}

// connectError reports that no address of host:port accepted a connection;
// err is the first dial error.
func connectError(host string, port uint16, addrs []netip.Addr, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		// The Control hook refused the address.
		e.Host, e.Port = host, port
		return e
	}
	status, ps := http.StatusBadGateway, statusUnavailable
	switch {
	case sockio.Refused(err):
		ps = statusConnRefused
	case isTimeout(err):
		status, ps = http.StatusGatewayTimeout, statusConnTimeout
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		ps = statusIPUnroutable
	}
	reason := "cannot connect to " + net.JoinHostPort(host, strconv.Itoa(int(port)))
	if len(addrs) > 1 || len(addrs) == 1 && normalizeHost(host) != addrs[0].String() {
		strs := make([]string, len(addrs))
		for i, a := range addrs {
			strs[i] = a.String()
		}
		reason += " (" + strings.Join(strs, ", ") + ")"
	}
	return &Error{
		Host: host, Port: port, Addrs: addrs, Reason: reason,
		Err:  err,
		kind: ErrConnect, status: status, proxyStatus: ps,
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
