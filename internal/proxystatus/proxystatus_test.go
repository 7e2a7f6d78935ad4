package proxystatus

import (
	"strings"
	"testing"
)

func TestFormatThenParseGivesBackTypeAndDetails(t *testing.T) {
	for _, tc := range []struct{ typ, details string }{
		{"dns_error", `no such host "x.invalid"`},
		{"destination_ip_prohibited", `back\slash and "quotes"`},
		{"", "only details"},
	} {
		v := Format(tc.typ, tc.details)
		typ, details := Parse(v)
		if typ != tc.typ || details != tc.details {
			t.Errorf("round trip of %q: got %q, %q", v, typ, details)
		}
	}
	if typ, _ := Parse(`other; error=x, fluidity; error=connection_refused`); typ != "connection_refused" {
		t.Errorf("last member not used: %q", typ)
	}
}

func FuzzFormat(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "ünïcode ✗", "new\nline", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, details string) {
		v := Format("dns_error", details)
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
