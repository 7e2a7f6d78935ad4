package httpproxy

import (
	"net"
	"strconv"
	"strings"
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

func FuzzFormatProxyStatus(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "ünïcode ✗", "new\nline", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, details string) {
		v := formatProxyStatus("dns_error", details)
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("%q has byte %#x, not printable ASCII", v, v[i])
			}
		}
		const prefix = `fluidity; error=dns_error`
		rest, ok := strings.CutPrefix(v, prefix)
		if !ok {
			t.Fatalf("%q lacks %q", v, prefix)
		}
		if details == "" {
			if rest != "" {
				t.Fatalf("%q has details for empty details", v)
			}
			return
		}
		s, ok := strings.CutPrefix(rest, `; details="`)
		if !ok {
			t.Fatalf("%q lacks a details string", v)
		}
		// The string must end at the last byte, with every quote and
		// backslash inside escaped.
		for i := 0; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
				if i >= len(s) || (s[i] != '"' && s[i] != '\\') {
					t.Fatalf("%q has a bad escape", v)
				}
			case '"':
				if i != len(s)-1 {
					t.Fatalf("%q ends its string early", v)
				}
				return
			}
		}
		t.Fatalf("%q does not close its string", v)
	})
}
