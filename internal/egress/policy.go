package egress

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Config lists the egress rules. The zero Config is valid: it allows every
// public address on every port and refuses special-purpose addresses.
// The package comment explains how the rules combine.
type Config struct {
	// AllowPrivate permits special-purpose targets: loopback, private,
	// link-local, unique-local, CGNAT and the other reserved ranges. Use it
	// for tests and local use, never on a shared exit. If false, they are
	// refused unless AllowCIDRs lists them.
	AllowPrivate bool

	// AllowHosts and DenyHosts match the host as the client wrote it:
	// "example.com" exactly, "*.example.com" any name under it (not the apex),
	// or an IP literal. Case and a trailing dot are ignored.
	// If AllowHosts is empty, every host not denied is allowed.
	AllowHosts, DenyHosts []string

	// AllowCIDRs and DenyCIDRs match resolved addresses: "10.1.0.0/16",
	// "2001:db8::/32"; a bare IP means /32 or /128.
	AllowCIDRs, DenyCIDRs []string

	// AllowPorts and DenyPorts match the target port: "443" or "8000-9000".
	// If AllowPorts is empty, every port not denied is allowed.
	AllowPorts, DenyPorts []string
}

// Validate reports every invalid entry of c, naming its field and the fix.
func (c Config) Validate() error {
	_, err := New(c)
	return err
}

// Policy is a validated Config. The zero Policy is the policy of the zero
// Config. A Policy is immutable and safe for concurrent use.
type Policy struct {
	// All fields are immutable after New.
	allowPrivate          bool
	allowHosts, denyHosts []hostPattern
	allowCIDRs, denyCIDRs []netip.Prefix
	allowPorts, denyPorts []portRange
}

// New validates c and returns its Policy. The error lists every bad entry,
// each naming the configuration key and an example of a good one.
func New(c Config) (*Policy, error) {
	var errs []error
	p := &Policy{
		allowPrivate: c.AllowPrivate,
		allowHosts:   parseList("egress.allow_hosts", c.AllowHosts, parseHostPattern, &errs),
		denyHosts:    parseList("egress.deny_hosts", c.DenyHosts, parseHostPattern, &errs),
		allowCIDRs:   parseList("egress.allow_cidrs", c.AllowCIDRs, parseCIDR, &errs),
		denyCIDRs:    parseList("egress.deny_cidrs", c.DenyCIDRs, parseCIDR, &errs),
		allowPorts:   parseList("egress.allow_ports", c.AllowPorts, parsePortRange, &errs),
		denyPorts:    parseList("egress.deny_ports", c.DenyPorts, parsePortRange, &errs),
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

// configError is an invalid configuration entry.
type configError struct {
	Field   string // the configuration key, e.g. "egress.deny_cidrs"
	Entry   string // the entry as written
	Problem string // what is wrong and an example of a good entry
}

func (e *configError) Error() string {
	return fmt.Sprintf("%s: %q %s", e.Field, e.Entry, e.Problem)
}

func parseList[T any](field string, entries []string, parse func(string) (T, string), errs *[]error) []T {
	var out []T
	for _, s := range entries {
		v, problem := parse(strings.TrimSpace(s))
		if problem != "" {
			*errs = append(*errs, &configError{Field: field, Entry: s, Problem: problem})
			continue
		}
		out = append(out, v)
	}
	return out
}

// verdict is the outcome of one check. A refusal says why, for a person,
// and, when there is one, how to allow it.
type verdict struct {
	ok        bool
	why, hint string
	// denied marks a refusal by a host or port rule (as opposed to an
	// address rule); it selects the Proxy-Status error type.
	denied bool
}

var allowed = verdict{ok: true}

const hintPrivate = "allow it with --allow-private or egress.allow_cidrs"

// Ports.

type portRange struct{ lo, hi uint16 }

func (r portRange) contains(p uint16) bool { return r.lo <= p && p <= r.hi }

func (r portRange) String() string {
	if r.lo == r.hi {
		return strconv.Itoa(int(r.lo))
	}
	return fmt.Sprintf("%d-%d", r.lo, r.hi)
}

const portExample = "(example: 443 or 8000-9000)"

func parsePortRange(s string) (portRange, string) {
	loS, hiS, isRange := strings.Cut(s, "-")
	if !isRange {
		hiS = loS
	}
	lo, okLo := parsePortNumber(loS)
	hi, okHi := parsePortNumber(hiS)
	switch {
	case !okLo || !okHi:
		return portRange{}, "is not a port or port range " + portExample
	case lo > hi:
		return portRange{}, "is an empty range: the first port must not exceed the second " + portExample
	}
	return portRange{lo, hi}, ""
}

// parsePortNumber parses a decimal port in 1-65535.
func parsePortNumber(s string) (uint16, bool) {
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint16(n), true
}

func (p *Policy) checkPort(port uint16) verdict {
	if port == 0 {
		return verdict{why: "port 0 is not a valid target port", denied: true}
	}
	for _, r := range p.denyPorts {
		if r.contains(port) {
			return verdict{why: fmt.Sprintf("port %d is in egress.deny_ports (%s)", port, r), denied: true}
		}
	}
	if len(p.allowPorts) == 0 {
		return allowed
	}
	for _, r := range p.allowPorts {
		if r.contains(port) {
			return allowed
		}
	}
	return verdict{
		why:    fmt.Sprintf("port %d is not in egress.allow_ports", port),
		hint:   "add it to egress.allow_ports",
		denied: true,
	}
}

// Hosts.

// hostPattern is a normalized AllowHosts or DenyHosts entry.
type hostPattern struct {
	name     string // normalized host name or canonical IP literal
	wildcard bool   // "*.name": any name under name, not name itself
}

func (h hostPattern) match(host string) bool {
	if h.wildcard {
		return len(host) > len(h.name)+1 &&
			strings.HasSuffix(host, h.name) &&
			host[len(host)-len(h.name)-1] == '.'
	}
	return host == h.name
}

func (h hostPattern) String() string {
	if h.wildcard {
		return "*." + h.name
	}
	return h.name
}

func parseHostPattern(s string) (hostPattern, string) {
	const problem = "is not a host name (example: example.com or *.example.com)"
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		name := normalizeHost(rest)
		if _, err := netip.ParseAddr(name); err == nil || !validName(name) {
			return hostPattern{}, problem
		}
		return hostPattern{name: name, wildcard: true}, ""
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	name := normalizeHost(s)
	if _, err := netip.ParseAddr(name); err != nil && !validName(name) {
		return hostPattern{}, problem
	}
	return hostPattern{name: name}, ""
}

// normalizeHost lowercases a host name and drops one trailing dot; an IP
// literal becomes its canonical form, so "2001:DB8::1" matches "2001:db8::1".
func normalizeHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.String()
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// validName reports whether name (normalized) is a syntactically valid DNS
// name: dot-separated labels of 1-63 letters, digits, '-' or '_', at most
// 253 bytes in all.
func validName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkHost checks a normalized host against the host rules.
func (p *Policy) checkHost(host string) verdict {
	for _, h := range p.denyHosts {
		if h.match(host) {
			return verdict{why: fmt.Sprintf("host %s is in egress.deny_hosts (%s)", host, h), denied: true}
		}
	}
	if len(p.allowHosts) == 0 {
		return allowed
	}
	for _, h := range p.allowHosts {
		if h.match(host) {
			return allowed
		}
	}
	return verdict{
		why:    fmt.Sprintf("host %s is not in egress.allow_hosts", host),
		hint:   "add it to egress.allow_hosts",
		denied: true,
	}
}

// Addresses.

func parseCIDR(s string) (netip.Prefix, string) {
	problem := "is not a CIDR (example: 10.0.0.0/8)"
	if strings.Contains(s, ":") {
		problem = "is not a CIDR (example: 2001:db8::/32)"
	}
	var pfx netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if pfx, err = netip.ParsePrefix(s); err != nil {
			return netip.Prefix{}, problem
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, problem
		}
		pfx = netip.PrefixFrom(a, a.BitLen())
	}
	if pfx != pfx.Masked() {
		return netip.Prefix{}, fmt.Sprintf("has bits set beyond its /%d mask (did you mean %s?)", pfx.Bits(), pfx.Masked())
	}
	// Addresses are checked after un-mapping, so an IPv4-mapped prefix
	// becomes the IPv4 prefix it covers.
	if pfx.Addr().Is4In6() && pfx.Bits() >= 96 {
		pfx = netip.PrefixFrom(pfx.Addr().Unmap(), pfx.Bits()-96)
	}
	return pfx, ""
}

// checkAddr checks one resolved address against the address rules.
func (p *Policy) checkAddr(a netip.Addr) verdict {
	a = a.Unmap().WithZone("")
	for _, pfx := range p.denyCIDRs {
		if pfx.Contains(a) {
			return verdict{why: "in egress.deny_cidrs " + pfx.String()}
		}
	}
	for _, pfx := range p.allowCIDRs {
		if pfx.Contains(a) {
			return allowed
		}
	}
	if v4, kind, ok := embeddedIPv4(a); ok {
		v := p.checkAddr(v4)
		if !v.ok {
			v.why = fmt.Sprintf("%s of %s, %s", kind, v4, v.why)
		}
		return v
	}
	if p.allowPrivate {
		return allowed
	}
	if why := specialPurpose(a); why != "" {
		return verdict{why: why, hint: hintPrivate}
	}
	return allowed
}
