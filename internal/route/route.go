// Package route is the agent's split routing: rules that name the hosts,
// domains and address ranges that go direct (intranet sites, SaaS the
// company reaches on its own), everything else going through the exit. The
// same rules decide inside the agent, for requests that reach it anyway,
// and in the PAC file the agent serves to browsers (PAC), so a browser and
// the agent always agree.
//
// # Rules
//
//	intranet.example.com   that host only
//	.example.com           example.com and every name under it
//	10.0.0.0/8, fd00::/8   addresses in the range, when the target is an address
//	192.168.1.10, ::1      that address
//	<local>                plain host names, without a dot (intranet short names)
//
// Names match case-insensitively and without a trailing dot. Ranges match
// only targets given as addresses: the agent resolves nothing itself
// (names are resolved by the exit, or by the network for direct ones), so
// a name is never looked up to test it against a range.
package route

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Rules is a parsed set of direct rules. A nil *Rules sends everything
// through the tunnel.
type Rules struct {
	src      []string            // as given, for the PAC file's comment
	hosts    map[string]struct{} // exact names
	suffixes []string            // "example.com" for .example.com
	nets     []netip.Prefix      // ranges, single addresses as /32 or /128
	plain    bool                // <local>
}

// Parse parses direct rules. Its errors name the rule and the fix.
func Parse(rules []string) (*Rules, error) {
	if len(rules) == 0 {
		return nil, nil
	}
	r := &Rules{hosts: map[string]struct{}{}}
	for _, raw := range rules {
		s := strings.ToLower(strings.TrimSpace(raw))
		if s == "" {
			continue
		}
		r.src = append(r.src, s)
		switch {
		case s == "<local>":
			r.plain = true
		case strings.Contains(s, "://"):
			return nil, fmt.Errorf("direct: %q: a rule has no scheme, port or path (example: intranet.example.com)", raw)
		case strings.Contains(s, "/"):
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("direct: %q is not an address range (example: 10.0.0.0/8 or fd00::/8)", raw)
			}
			if p.Addr().Zone() != "" {
				return nil, fmt.Errorf("direct: %q: a range has no zone", raw)
			}
			r.nets = append(r.nets, p.Masked())
		case strings.Contains(s, ":") || isDottedQuad(s):
			a, err := netip.ParseAddr(strings.Trim(s, "[]"))
			if err != nil || a.Zone() != "" {
				return nil, fmt.Errorf("direct: %q is not an IP address (a rule has no port; example: 192.168.1.10)", raw)
			}
			r.nets = append(r.nets, netip.PrefixFrom(a, a.BitLen()))
		case strings.HasPrefix(s, "*."):
			return nil, fmt.Errorf("direct: %q: write a domain and everything under it as %q", raw, s[1:])
		case strings.HasPrefix(s, "."):
			d := strings.TrimSuffix(s[1:], ".")
			if !isHostname(d) {
				return nil, fmt.Errorf("direct: %q is not a domain (example: .corp.example.com)", raw)
			}
			r.suffixes = append(r.suffixes, d)
		default:
			h := strings.TrimSuffix(s, ".")
			if !isHostname(h) {
				return nil, fmt.Errorf("direct: %q is not a host name, .domain, address, range or <local> (a rule has no scheme, port or path)", raw)
			}
			r.hosts[h] = struct{}{}
		}
	}
	return r, nil
}

// Direct reports whether a connection to host (a name or an address, with
// or without brackets; no port) goes direct rather than through the exit.
func (r *Rules) Direct(host string) bool {
	if r == nil {
		return false
	}
	h := normalize(host)
	if a, err := netip.ParseAddr(h); err == nil {
		if a.Zone() != "" {
			return false // no range holds a zoned address, in the PAC file either
		}
		for _, p := range r.nets {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if r.plain && !strings.Contains(h, ".") {
		return true
	}
	if _, ok := r.hosts[h]; ok {
		return true
	}
	for _, d := range r.suffixes {
		if h == d || strings.HasSuffix(h, "."+d) {
			return true
		}
	}
	return false
}

// Len returns the number of rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.src)
}

func normalize(host string) string {
	h := strings.ToLower(host)
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	return strings.TrimSuffix(h, ".")
}

// isDottedQuad reports whether s looks like an IPv4 address (digits and
// dots only), so that a malformed one is reported as an address.
func isDottedQuad(s string) bool {
	return strings.Trim(s, "0123456789.") == "" && strings.Count(s, ".") == 3
}

func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// sorted returns the exact names in order, for a stable PAC file.
func (r *Rules) sorted() []string {
	out := make([]string, 0, len(r.hosts))
	for h := range r.hosts {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}
