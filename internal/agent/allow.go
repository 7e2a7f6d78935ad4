package agent

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
)

// ParseAllowedClients reads an allowlist of client addresses: CIDRs
// (172.16.0.0/12) or single addresses (192.168.1.20).
func ParseAllowedClients(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an address or a CIDR (examples: 172.16.0.0/12, 192.168.1.20)", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// AllowClients returns ln with connections from addresses outside allowed
// closed as soon as they are accepted, before a byte is read; loopback is
// always allowed. An agent listening beyond loopback is an open proxy to
// everyone who reaches the port but for this.
func AllowClients(ln net.Listener, allowed []netip.Prefix, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &allowListener{Listener: ln, allowed: allowed, log: log}
}

type allowListener struct {
	net.Listener
	allowed []netip.Prefix // immutable
	log     *slog.Logger
}

func (l *allowListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.permits(c.RemoteAddr()) {
			return c, nil
		}
		l.log.Warn("client refused: its address is not in allow_clients", "client", c.RemoteAddr().String())
		c.Close()
	}
}

func (l *allowListener) permits(addr net.Addr) bool {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap()
	if a.IsLoopback() {
		return true
	}
	for _, p := range l.allowed {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
