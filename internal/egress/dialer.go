package egress

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// Resolver looks up the addresses of a host name. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Dialer connects to targets allowed by its Policy. Its zero value is usable:
// the default policy, the system resolver and a 10s timeout. A Dialer is safe
// for concurrent use; its fields must not change once it is in use.
type Dialer struct {
	// Policy decides which targets are allowed. If nil, the policy of the
	// zero Config is used: public addresses only.
	Policy *Policy
	// Resolver resolves host names. If nil, net.DefaultResolver is used.
	Resolver Resolver
	// Timeout bounds one DialContext call, resolution included. When a host
	// has several allowed addresses, each attempt gets a share of what is
	// left (at least 2s). If zero, 10s is used.
	Timeout time.Duration

	// dial, if non-nil, replaces the system dialer in tests. It receives an
	// IP literal "ip:port" and the Control hook the system dialer would run.
	dial func(ctx context.Context, network, addr string, control controlFunc) (net.Conn, error)
}

type controlFunc = func(network, address string, c syscall.RawConn) error

const (
	defaultTimeout = 10 * time.Second
	// minAttempt is the least time one address gets when a host has several,
	// as in package net.
	minAttempt = 2 * time.Second
)

var defaultPolicy = &Policy{}

func (d *Dialer) policy() *Policy {
	if d.Policy == nil {
		return defaultPolicy
	}
	return d.Policy
}

// DialContext connects to addr ("host:port") over network ("tcp", "tcp4" or
// "tcp6") if the policy allows it. It resolves host once, drops refused
// addresses and dials the others, as IP literals, in order until one
// connects. ctx bounds the whole call; once connected, ctx no longer matters.
// Every error is an [*Error].
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	p := d.policy()
	var lookupNet string
	switch network {
	case "tcp":
		lookupNet = "ip"
	case "tcp4":
		lookupNet = "ip4"
	case "tcp6":
		lookupNet = "ip6"
	default:
		return nil, refusedByRule(addr, 0, verdict{why: fmt.Sprintf("network %q is not supported (only tcp)", network)})
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, refusedByRule(addr, 0, verdict{why: fmt.Sprintf("%q is not a host:port target", addr)})
	}
	port, ok := parsePortNumber(portStr)
	if !ok {
		return nil, refusedByRule(host, 0, verdict{why: fmt.Sprintf("%q is not a valid port (1-65535)", portStr)})
	}
	if v := p.checkPort(port); !v.ok {
		return nil, refusedByRule(host, port, v)
	}
	name := normalizeHost(host)
	literal, err := netip.ParseAddr(name)
	isLiteral := err == nil
	if !isLiteral && !validName(name) {
		return nil, refusedByRule(host, port, verdict{why: fmt.Sprintf("%q is not a valid host name", host)})
	}
	if v := p.checkHost(name); !v.ok {
		return nil, refusedByRule(host, port, v)
	}

	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()

	var addrs []netip.Addr
	if isLiteral {
		addrs = []netip.Addr{literal}
	} else {
		addrs, err = d.resolver().LookupNetIP(ctx, lookupNet, name)
		if err != nil {
			return nil, resolveError(host, port, err)
		}
	}

	ok4, ok6 := network != "tcp6", network != "tcp4"
	var allowedAddrs, refused []netip.Addr
	var verdicts []verdict
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.Is4() && !ok4 || a.Is6() && !ok6 || slices.Contains(allowedAddrs, a) || slices.Contains(refused, a) {
			continue
		}
		if v := p.checkAddr(a); !v.ok {
			refused = append(refused, a)
			verdicts = append(verdicts, v)
			continue
		}
		allowedAddrs = append(allowedAddrs, a)
	}
	switch {
	case len(allowedAddrs) == 0 && len(refused) > 0:
		return nil, refusedAddrs(host, port, isLiteral, refused, verdicts)
	case len(allowedAddrs) == 0:
		return nil, resolveError(host, port, &net.DNSError{
			Err: "no suitable address for " + network, Name: host, IsNotFound: true,
		})
	}

	var firstErr error
	var failed []netip.Addr
	for i, a := range allowedAddrs {
		c, err := d.dialOne(ctx, p, network, netip.AddrPortFrom(a, port), len(allowedAddrs)-i)
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		failed = append(failed, a)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, connectError(host, port, failed, firstErr)
}

// dialOne connects to one allowed address, with a share of the time left
// when more addresses remain.
func (d *Dialer) dialOne(ctx context.Context, p *Policy, network string, target netip.AddrPort, remaining int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && remaining > 1 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, partialDeadline(time.Now(), deadline, remaining))
		defer cancel()
	}
	control := p.control(target)
	if d.dial != nil {
		return d.dial(ctx, network, target.String(), control)
	}
	nd := &net.Dialer{Control: control}
	return nd.DialContext(ctx, network, target.String())
}

// partialDeadline gives one of remaining addresses its share of the time
// left before deadline, at least minAttempt when there is that much left.
func partialDeadline(now, deadline time.Time, remaining int) time.Time {
	left := deadline.Sub(now)
	share := left / time.Duration(remaining)
	if share < minAttempt {
		share = min(minAttempt, left)
	}
	return now.Add(share)
}

// control returns the net.Dialer Control hook for a connection to want: it
// checks again, just before connect(2), the address the kernel was given.
func (p *Policy) control(want netip.AddrPort) controlFunc {
	return func(network, address string, _ syscall.RawConn) error {
		got, err := netip.ParseAddrPort(address)
		if err != nil || got != want {
			return refusedError("", 0, nil,
				fmt.Sprintf("about to connect to %s instead of the checked address %s", address, want), false)
		}
		a := got.Addr().Unmap()
		if v := p.checkPort(got.Port()); !v.ok {
			return refusedError("", 0, []netip.Addr{a}, withHint(v.why, v.hint), true)
		}
		if v := p.checkAddr(a); !v.ok {
			return refusedError("", 0, []netip.Addr{a}, withHint(fmt.Sprintf("target %s (%s)", a, v.why), v.hint), false)
		}
		return nil
	}
}

func (d *Dialer) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return defaultTimeout
}

func (d *Dialer) resolver() Resolver {
	if d.Resolver == nil {
		return net.DefaultResolver
	}
	return d.Resolver
}
