package route

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// PAC returns a proxy auto-config file (a JavaScript FindProxyForURL) that
// sends what r says goes direct DIRECT and everything else to the agent's
// HTTP proxy at proxy (host:port). Only the standard PAC helper functions
// (isPlainHostName, dnsDomainIs, isInNet) are used, and never one that
// resolves a name: a browser would otherwise resolve every name it proxies
// just to test it against a range. Nothing falls back to DIRECT when the
// agent is down: that would leak what should leave through the exit.
func (r *Rules) PAC(proxy string) []byte {
	var b strings.Builder
	b.WriteString("// Proxy auto-config made by the Fluidity agent from its split-routing rules.\n")
	if r.Len() == 0 {
		b.WriteString("// There are no direct rules: everything goes through Fluidity.\n")
	} else {
		fmt.Fprintf(&b, "// Direct: %s\n", strings.Join(r.src, ", "))
	}
	b.WriteString("function FindProxyForURL(url, host) {\n")
	fmt.Fprintf(&b, "  var tunnel = %s;\n", strconv.Quote("PROXY "+proxy))
	if r.Len() == 0 {
		b.WriteString("  return tunnel;\n}\n")
		return []byte(b.String())
	}
	b.WriteString(`  var h = host.toLowerCase();
  if (h.charAt(0) == "[" && h.charAt(h.length - 1) == "]") h = h.substring(1, h.length - 1);
  if (h.length > 1 && h.charAt(h.length - 1) == ".") h = h.substring(0, h.length - 1);
  if (/^(0|[1-9][0-9]{0,2})(\.(0|[1-9][0-9]{0,2})){3}$/.test(h)) {
`)
	for _, p := range r.nets {
		if p.Addr().Is4() {
			mask := net.CIDRMask(p.Bits(), 32)
			fmt.Fprintf(&b, "    if (isInNet(h, %q, %q)) return \"DIRECT\";\n", p.Addr().String(), net.IP(mask).String())
		}
	}
	b.WriteString("    return tunnel;\n  }\n")
	b.WriteString("  if (h.indexOf(\":\") >= 0) {\n    var a = fluidityParseIPv6(h);\n    if (a == null) return tunnel;\n")
	for _, p := range r.nets {
		if p.Addr().Is6() {
			a := p.Addr().As16()
			var groups []string
			for i := 0; i < 16; i += 2 {
				groups = append(groups, strconv.Itoa(int(a[i])<<8|int(a[i+1])))
			}
			fmt.Fprintf(&b, "    if (fluidityInNet6(a, [%s], %d)) return \"DIRECT\";\n", strings.Join(groups, ","), p.Bits())
		}
	}
	b.WriteString("    return tunnel;\n  }\n")
	if r.plain {
		b.WriteString("  if (isPlainHostName(h)) return \"DIRECT\";\n")
	}
	if hosts := r.sorted(); len(hosts) > 0 {
		b.WriteString("  var hosts = {")
		for i, h := range hosts {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q: 1", h)
		}
		b.WriteString("};\n  if (hosts.hasOwnProperty(h)) return \"DIRECT\";\n")
	}
	for _, d := range r.suffixes {
		fmt.Fprintf(&b, "  if (h == %q || dnsDomainIs(h, %q)) return \"DIRECT\";\n", d, "."+d)
	}
	b.WriteString("  return tunnel;\n}\n")
	b.WriteString(pacIPv6)
	return []byte(b.String())
}

// pacIPv6 parses and matches IPv6 addresses: isInNet is IPv4-only.
const pacIPv6 = `
// fluidityParseIPv6 returns the eight 16-bit groups of an IPv6 address
// written in hex groups, or null (for zones and embedded IPv4 too).
function fluidityParseIPv6(s) {
  if (!/^[0-9a-f:]+$/.test(s)) return null;
  var halves = s.split("::");
  if (halves.length > 2) return null;
  var head = halves[0] == "" ? [] : halves[0].split(":");
  var tail = halves.length == 2 && halves[1] != "" ? halves[1].split(":") : [];
  var fill = 8 - head.length - tail.length;
  if (halves.length == 2 ? fill < 1 : fill != 0) return null;
  var groups = head.slice(0);
  for (var i = 0; i < fill; i++) groups.push("0");
  groups = groups.concat(tail);
  var out = [];
  for (var j = 0; j < 8; j++) {
    if (groups[j].length < 1 || groups[j].length > 4) return null;
    out.push(parseInt(groups[j], 16));
  }
  return out;
}

// fluidityInNet6 reports whether the first bits bits of a and net agree.
function fluidityInNet6(a, net, bits) {
  for (var i = 0; i < 8 && bits > 0; i++, bits -= 16) {
    var keep = bits >= 16 ? 0xffff : (0xffff << (16 - bits)) & 0xffff;
    if ((a[i] & keep) != (net[i] & keep)) return false;
  }
  return true;
}
`
