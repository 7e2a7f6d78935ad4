// Package egress decides which targets the exit server may connect to, and
// dials them so that the decision holds for the address actually connected.
//
// A [Policy] is built from a [Config] with [New]; a [Dialer] enforces it.
// The zero Config is the safe default: every public address on every port is
// allowed, and every special-purpose address (loopback, private, link-local
// including the cloud metadata service, unique-local, CGNAT, multicast,
// documentation, reserved, …) is refused.
//
// # Precedence
//
// A target "host:port" is checked in three steps; the first refusal ends it.
//
//  1. Port. A port in DenyPorts is refused. Otherwise, when AllowPorts is not
//     empty, a port not in AllowPorts is refused. Port 0, a port above 65535
//     and a non-numeric port (a service name) are always refused.
//  2. Host, as the client wrote it (a name or an IP literal). A host matching
//     DenyHosts is refused. Otherwise, when AllowHosts is not empty, a host
//     matching none of AllowHosts is refused. "example.com" matches that name
//     only; "*.example.com" matches every name under example.com but not
//     example.com itself. Matching ignores case and a trailing dot. Host rules
//     see names, not addresses: to keep clients from an address whatever
//     name or literal they use, list it in DenyCIDRs.
//  3. Addresses. The host is resolved once (an IP literal is used as is), and
//     every address, with IPv4-mapped IPv6 addresses turned into IPv4, is
//     checked on its own:
//     an address in DenyCIDRs is refused;
//     otherwise an address in AllowCIDRs is allowed, even a private one;
//     otherwise a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address is judged
//     by the IPv4 address it embeds, with these same rules;
//     otherwise a special-purpose address is refused unless AllowPrivate is
//     set;
//     otherwise (a public address) it is allowed.
//     AllowCIDRs opens ranges; it never narrows what is allowed, so a broad
//     entry such as 0.0.0.0/0 opens every special-purpose IPv4 range too.
//
// # Dialing
//
// [Dialer.DialContext] resolves the host once, drops the refused addresses,
// and connects to the remaining IP literals in the resolver's order until one
// connects or the time runs out. It never hands a name to the system dialer,
// so a second DNS answer (DNS rebinding) cannot slip another address in. As a
// last line of defence, the socket's Control hook checks again the address
// the kernel is about to connect to.
//
// # Errors
//
// Every error from DialContext is an [*Error]. Its StatusCode and ProxyStatus
// methods give the HTTP status and the RFC 9209 Proxy-Status error type a
// proxy should answer with; errors.Is reports [ErrRefused], [ErrResolve] or
// [ErrConnect], and the underlying cause (context.DeadlineExceeded,
// syscall.ECONNREFUSED, *net.DNSError, …).
package egress
