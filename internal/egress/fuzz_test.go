package egress

import (
	"context"
	"net"
	"net/netip"
	"testing"
)

// FuzzDialContext feeds arbitrary targets and DNS answers to the default
// policy: whatever they are, only public addresses on valid ports are
// dialed.
func FuzzDialContext(f *testing.F) {
	f.Add("example.com:443", []byte{8, 8, 8, 8})
	f.Add("example.com:443", []byte{127, 0, 0, 1, 8, 8, 8, 8})
	f.Add("[::ffff:127.0.0.1]:80", []byte{})
	f.Add("[64:ff9b::a9fe:a9fe]:80", []byte{})
	f.Add("x.example:80", append(make([]byte, 10), 0xff, 0xff, 10, 0, 0, 1)) // ::ffff:10.0.0.1 as 16 bytes
	f.Add("169.254.169.254:80", []byte{})
	f.Add("[fe80::1%eth0]:80", []byte{})
	f.Fuzz(func(t *testing.T, addr string, answer []byte) {
		// Answers: 16-byte chunks while possible, then 4-byte ones.
		var answers []netip.Addr
		for len(answer) >= 16 {
			answers = append(answers, netip.AddrFrom16([16]byte(answer[:16])))
			answer = answer[16:]
		}
		for len(answer) >= 4 {
			answers = append(answers, netip.AddrFrom4([4]byte(answer[:4])))
			answer = answer[4:]
		}
		res := &fakeResolver{answers: map[string][]netip.Addr{}}
		rec := &dialRecorder{}
		d := &Dialer{Resolver: res, dial: rec.dial}
		host, _, _ := net.SplitHostPort(addr)
		res.answers[normalizeHost(host)] = answers

		c, err := d.DialContext(context.Background(), "tcp", addr)
		if c != nil {
			c.Close()
		}
		for _, s := range rec.addrs() {
			ap, perr := netip.ParseAddrPort(s)
			if perr != nil {
				t.Fatalf("dialed %q, not an IP literal", s)
			}
			if ap.Port() == 0 || specialPurpose(ap.Addr().Unmap().WithZone("")) != "" {
				t.Fatalf("dialed %s for %q", s, addr)
			}
			if v4, _, ok := embeddedIPv4(ap.Addr()); ok && specialPurpose(v4) != "" {
				t.Fatalf("dialed %s (embeds %s) for %q", s, v4, addr)
			}
		}
		if err != nil {
			e, ok := err.(*Error)
			if !ok || e.StatusCode() == 0 || e.ProxyStatus() == "" || e.Error() == "" {
				t.Fatalf("error %#v", err)
			}
		}
		if res.lookups() > 1 {
			t.Fatalf("%d lookups", res.lookups())
		}
	})
}
