package socks5

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"

	"fluidity/internal/egress"
)

// dialError carries a reason the way the tunnel and egress errors do.
type dialError struct {
	status      int
	proxyStatus string
}

func (e *dialError) Error() string       { return fmt.Sprintf("%d %s", e.status, e.proxyStatus) }
func (e *dialError) StatusCode() int     { return e.status }
func (e *dialError) ProxyStatus() string { return e.proxyStatus }

// statusOnly carries only an HTTP status.
type statusOnly int

func (e statusOnly) Error() string   { return fmt.Sprintf("status %d", int(e)) }
func (e statusOnly) StatusCode() int { return int(e) }

// proxyStatusOnly carries only a Proxy-Status error type.
type proxyStatusOnly string

func (e proxyStatusOnly) Error() string       { return string(e) }
func (e proxyStatusOnly) ProxyStatus() string { return string(e) }

func TestReplyFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Reply
	}{
		{"no error", nil, Succeeded},

		{"destination_ip_prohibited", &dialError{403, "destination_ip_prohibited"}, NotAllowed},
		{"http_request_denied", &dialError{403, "http_request_denied"}, NotAllowed},
		{"dns_error", &dialError{502, "dns_error"}, HostUnreachable},
		{"dns_error on a timeout", &dialError{504, "dns_error"}, HostUnreachable},
		{"destination_not_found", &dialError{502, "destination_not_found"}, HostUnreachable},
		{"destination_ip_unroutable", &dialError{502, "destination_ip_unroutable"}, NetworkUnreachable},
		{"connection_refused", &dialError{502, "connection_refused"}, ConnectionRefused},
		{"connection_timeout", &dialError{504, "connection_timeout"}, TTLExpired},
		{"destination_unavailable", &dialError{502, "destination_unavailable"}, GeneralFailure},
		{"proxy_internal_error", &dialError{500, "proxy_internal_error"}, GeneralFailure},
		{"tunnel not available", &dialError{503, "destination_unavailable"}, GeneralFailure},
		{"a wrapped reason", fmt.Errorf("dial tunnel: %w", &dialError{502, "connection_refused"}), ConnectionRefused},
		{"a Proxy-Status alone", proxyStatusOnly("destination_ip_prohibited"), NotAllowed},

		{"a 403 alone", statusOnly(403), NotAllowed},
		{"a 502 alone", statusOnly(502), HostUnreachable},
		{"a 503 alone", statusOnly(503), GeneralFailure},
		{"a 504 alone", fmt.Errorf("wrapped: %w", statusOnly(504)), TTLExpired},

		{"a refused TCP connection", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, ConnectionRefused},
		{"an unreachable network", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}, NetworkUnreachable},
		{"an unreachable host", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, HostUnreachable},
		{"a DNS failure", &net.DNSError{Err: "no such host", Name: "nx.example", IsNotFound: true}, HostUnreachable},
		{"a deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), TTLExpired},
		{"an i/o timeout", &net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, TTLExpired},
		{"anything else", errors.New("boom"), GeneralFailure},
		{"a cancelled dial", context.Canceled, GeneralFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ReplyFor(tt.err); got != tt.want {
				t.Errorf("ReplyFor(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestReplyForEgressErrors(t *testing.T) {
	// The exit's egress errors reach the agent carrying the same
	// convention; check the two packages agree on real errors.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	open, err := egress.New(egress.Config{AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		d    *egress.Dialer
		addr string
		want Reply
	}{
		{"a refused private address", &egress.Dialer{}, "127.0.0.1:80", NotAllowed},
		{"a denied port", &egress.Dialer{}, "example.com:0", NotAllowed},
		{"a closed port", &egress.Dialer{Policy: open}, closed, ConnectionRefused},
		{"an unknown host", &egress.Dialer{Resolver: nxResolver{}}, "nx.example:443", HostUnreachable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.d.DialContext(context.Background(), "tcp", tt.addr)
			if err == nil {
				c.Close()
				t.Fatal("dial succeeded")
			}
			if got := ReplyFor(err); got != tt.want {
				t.Errorf("ReplyFor(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}

type nxResolver struct{}

func (nxResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestReplyString(t *testing.T) {
	if got := NotAllowed.String(); got != "not allowed" {
		t.Errorf("NotAllowed.String() = %q", got)
	}
	if got := Reply(0x42).String(); got != "reply 0x42" {
		t.Errorf("Reply(0x42).String() = %q", got)
	}
}
