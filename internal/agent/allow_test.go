package agent

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseAllowedClients(t *testing.T) {
	got, err := ParseAllowedClients([]string{"172.16.0.0/12", " 192.168.1.20 ", "fd00::/8", "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"172.16.0.0/12", "192.168.1.20/32", "fd00::/8", "10.0.0.0/8"}
	for i, p := range got {
		if p.String() != want[i] {
			t.Errorf("entry %d = %s, want %s", i, p, want[i])
		}
	}
	for _, bad := range []string{"wsl", "172.16.0.0/33", "", "1.2.3"} {
		if _, err := ParseAllowedClients([]string{bad}); err == nil || !strings.Contains(err.Error(), "not an address or a CIDR") {
			t.Errorf("ParseAllowedClients(%q) = %v, want an error with examples", bad, err)
		}
	}
}

// nonLoopback returns an address of this machine that is not loopback, or
// skips.
func nonLoopback(t *testing.T) netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skip(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			return p.Addr()
		}
	}
	t.Skip("this machine has no non-loopback IPv4 address")
	return netip.Addr{}
}

// TestClientsOutsideTheAllowlistAreRefused listens on a non-loopback
// address of this machine and connects from it: a client outside the list
// is closed without an answer; inside it, and from loopback, it is served.
func TestClientsOutsideTheAllowlistAreRefused(t *testing.T) {
	self := nonLoopback(t)
	for _, tc := range []struct {
		name    string
		allowed string
		served  bool
	}{
		{"outside the list", netip.PrefixFrom(self.Next(), 32).String(), false},
		{"inside the list", netip.PrefixFrom(self, 32).String(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			allowed, err := ParseAllowedClients([]string{tc.allowed})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := Listen(net.JoinHostPort(self.String(), "0"), true)
			if err != nil {
				t.Fatal(err)
			}
			ln := AllowClients(raw, allowed, nil)
			defer ln.Close()
			accepted := make(chan net.Conn, 1)
			go func() {
				c, err := ln.Accept()
				if err == nil {
					c.Write([]byte("served"))
					accepted <- c
				}
				close(accepted)
			}()
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: self.AsSlice()}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			b, err := io.ReadAll(io.LimitReader(c, 6))
			if tc.served && string(b) != "served" {
				t.Errorf("an allowed client read %q, %v; want to be served", b, err)
			}
			if !tc.served {
				var ne net.Error
				if len(b) != 0 || (errors.As(err, &ne) && ne.Timeout()) {
					t.Errorf("a refused client read %q, %v; want the connection closed at once", b, err)
				}
			}
			ln.Close()
			for c := range accepted {
				c.Close()
			}
		})
	}
}

func TestLoopbackIsAlwaysAllowed(t *testing.T) {
	l := &allowListener{allowed: nil}
	for _, a := range []string{"127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"} {
		addr, _ := net.ResolveTCPAddr("tcp", a)
		if !l.permits(addr) {
			t.Errorf("%s refused, want loopback allowed", a)
		}
	}
	addr, _ := net.ResolveTCPAddr("tcp", "10.0.0.1:5000")
	if l.permits(addr) {
		t.Error("10.0.0.1 allowed by an empty list")
	}
}
