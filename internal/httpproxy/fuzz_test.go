package httpproxy

import (
	"net"
	"strconv"
	"testing"
)

func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:8080", "example.com", ":443", "a:0", "a:65536", "a:+1", "[fe80::1%eth0]:22", "a:0443"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, authority string) {
		target, err := parseAuthority(authority)
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(target)
		if err != nil || host == "" {
			t.Fatalf("accepted %q as %q, which is not host:port", authority, target)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			t.Fatalf("accepted %q with port %q", authority, port)
		}
		if again, err := parseAuthority(target); err != nil || again != target {
			t.Fatalf("canonical form %q of %q parses as %q, %v", target, authority, again, err)
		}
	})
}
