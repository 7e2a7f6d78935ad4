package socks5

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"syscall"

	"fluidity/internal/sockio"
)

// Reply is the REP field of a SOCKS5 reply (RFC 1928 section 6).
type Reply byte

// Replies defined by RFC 1928.
const (
	Succeeded               Reply = 0x00
	GeneralFailure          Reply = 0x01 // general SOCKS server failure
	NotAllowed              Reply = 0x02 // connection not allowed by ruleset
	NetworkUnreachable      Reply = 0x03
	HostUnreachable         Reply = 0x04
	ConnectionRefused       Reply = 0x05
	TTLExpired              Reply = 0x06
	CommandNotSupported     Reply = 0x07
	AddressTypeNotSupported Reply = 0x08
)

var replyNames = [...]string{
	Succeeded:               "succeeded",
	GeneralFailure:          "general failure",
	NotAllowed:              "not allowed",
	NetworkUnreachable:      "network unreachable",
	HostUnreachable:         "host unreachable",
	ConnectionRefused:       "connection refused",
	TTLExpired:              "TTL expired",
	CommandNotSupported:     "command not supported",
	AddressTypeNotSupported: "address type not supported",
}

func (r Reply) String() string {
	if int(r) < len(replyNames) {
		return replyNames[r]
	}
	return fmt.Sprintf("reply 0x%02x", byte(r))
}

// WriteReply writes a reply with the bound address. An invalid bound (the
// zero AddrPort) is sent as 0.0.0.0:0; an IPv4-mapped address as IPv4.
func WriteReply(w io.Writer, r Reply, bound netip.AddrPort) error {
	a := bound.Addr().Unmap()
	buf := make([]byte, 0, 4+16+2)
	buf = append(buf, version5, byte(r), 0x00)
	switch {
	case a.Is4():
		buf = append(buf, atypIPv4)
		buf = append(buf, a.AsSlice()...)
	case a.Is6():
		buf = append(buf, atypIPv6)
		buf = append(buf, a.AsSlice()...)
	default:
		buf = append(buf, atypIPv4, 0, 0, 0, 0)
	}
	buf = append(buf, byte(bound.Port()>>8), byte(bound.Port()))
	_, err := w.Write(buf)
	return err
}

// Interfaces that dial errors may implement to say why a target could not
// be reached (see ReplyFor).
type (
	proxyStatuser interface{ ProxyStatus() string }
	statusCoder   interface{ StatusCode() int }
)

// ReplyFor chooses the reply for a dial error. An error that says why with
// a ProxyStatus() string method (an RFC 9209 error type) is mapped from it:
//
//	destination_ip_prohibited, http_request_denied  NotAllowed
//	dns_error, destination_not_found                HostUnreachable
//	destination_ip_unroutable                       NetworkUnreachable
//	connection_refused                              ConnectionRefused
//	connection_timeout                              TTLExpired
//	any other type                                  GeneralFailure
//
// Otherwise an error with a StatusCode() int method (an HTTP status) is
// mapped from it: 403 NotAllowed, 502 HostUnreachable, 504 TTLExpired, any
// other (503 among them) GeneralFailure. Otherwise the cause is recognized
// (ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, a *net.DNSError, a timeout), or
// the reply is GeneralFailure. A nil error is Succeeded.
func ReplyFor(err error) Reply {
	if err == nil {
		return Succeeded
	}
	var ps proxyStatuser
	if errors.As(err, &ps) && ps.ProxyStatus() != "" {
		switch ps.ProxyStatus() {
		case "destination_ip_prohibited", "http_request_denied":
			return NotAllowed
		case "dns_error", "destination_not_found":
			return HostUnreachable
		case "destination_ip_unroutable":
			return NetworkUnreachable
		case "connection_refused":
			return ConnectionRefused
		case "connection_timeout":
			return TTLExpired
		}
		return GeneralFailure
	}
	var sc statusCoder
	if errors.As(err, &sc) {
		switch sc.StatusCode() {
		case http.StatusForbidden:
			return NotAllowed
		case http.StatusBadGateway:
			return HostUnreachable
		case http.StatusGatewayTimeout:
			return TTLExpired
		}
		return GeneralFailure
	}
	var dnsErr *net.DNSError
	switch {
	case sockio.Refused(err):
		return ConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return NetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.As(err, &dnsErr):
		return HostUnreachable
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return TTLExpired
	}
	return GeneralFailure
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
