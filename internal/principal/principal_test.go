package principal

import (
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"arn:aws:sts::123456789012:assumed-role/agent/i-0abc", "arn:aws:iam::123456789012:role/agent"},
		{"arn:aws-cn:sts::123456789012:assumed-role/agent/s", "arn:aws-cn:iam::123456789012:role/agent"},
		{"arn:aws-us-gov:sts::123456789012:assumed-role/a/b", "arn:aws-us-gov:iam::123456789012:role/a"},
		{"arn:aws:iam::123456789012:user/dev", "arn:aws:iam::123456789012:user/dev"},
		{"arn:aws:iam::123456789012:user/team/dev", "arn:aws:iam::123456789012:user/team/dev"},
		{"arn:aws:iam::123456789012:root", "arn:aws:iam::123456789012:root"},
		{"arn:aws:sts::123456789012:federated-user/bob", "arn:aws:sts::123456789012:federated-user/bob"},
		{"arn:aws:sts::123456789012:assumed-role/agent", ""},             // no session
		{"arn:aws:sts::123456789012:assumed-role/agent/s/extra", ""},     // too many parts
		{"arn:aws:sts::123456789012:assumed-role//s", ""},                // empty role
		{"arn:aws:iam::123456789012:user/", ""},                          // empty name
		{"arn:aws:iam::123456789012:group/admins", ""},                   // not a principal
		{"arn:aws:s3::123456789012:user/dev", ""},                        // other service
		{"arn:evil:iam::123456789012:user/dev", ""},                      // unknown partition
		{"arn:aws:iam:eu-west-1:123456789012:user/dev", ""},              // a region
		{"arn:aws:iam::12345678901:user/dev", ""},                        // 11 digits
		{"arn:aws:iam::123456789012:user/dev:extra", ""},                 // 7 parts
		{"arn:aws:iam::123456789012", ""},                                // 5 parts
		{"ARN:aws:iam::123456789012:user/dev", ""},                       // wrong prefix
		{"arn:aws:sts::123456789012:assumed-role/agent/i-0abc/../x", ""}, // extra segment
	} {
		t.Run(tc.in, func(t *testing.T) {
			a, err := Canonical(tc.in)
			got := ""
			if err == nil {
				got = a.String()
			}
			if got != tc.want {
				t.Errorf("Canonical(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestAllowlist(t *testing.T) {
	al, err := ParseAllowlist([]string{
		"210987654321",
		"arn:aws:iam::123456789012:role/agent",
		"arn:aws:iam::123456789012:role/ops/pathed",
		"arn:aws:iam::123456789012:user/team/dev",
		"arn:aws:iam::123456789012:root",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		identity string
		want     bool
	}{
		{"arn:aws:sts::210987654321:assumed-role/anything/s", true},          // by account
		{"arn:aws:iam::210987654321:user/anyone", true},                      // by account
		{"arn:aws:sts::123456789012:assumed-role/agent/i-1", true},           // role via session
		{"arn:aws:sts::123456789012:assumed-role/agent/other-session", true}, // any session
		{"arn:aws:sts::123456789012:assumed-role/pathed/s", true},            // role path ignored
		{"arn:aws:sts::123456789012:assumed-role/agent2/s", false},           // another role
		{"arn:aws:sts::999999999999:assumed-role/agent/s", false},            // same name, other account
		{"arn:aws-cn:sts::123456789012:assumed-role/agent/s", false},         // other partition
		{"arn:aws:iam::123456789012:user/team/dev", true},                    // exact user
		{"arn:aws:iam::123456789012:user/dev", false},                        // user path matters
		{"arn:aws:iam::123456789012:user/team/dev2", false},
		{"arn:aws:iam::123456789012:root", true},
		{"arn:aws:sts::123456789012:federated-user/dev", false},
	} {
		t.Run(tc.identity, func(t *testing.T) {
			c, err := Canonical(tc.identity)
			if err != nil {
				t.Fatal(err)
			}
			if got := al.Allows(c); got != tc.want {
				t.Errorf("allows(%s) = %v; want %v", c, got, tc.want)
			}
		})
	}
}

// FuzzCanonical checks that whatever ARN a caller is reported as,
// Canonical either refuses it or returns a principal that parses again to
// itself and is its own canonical form.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		"arn:aws:sts::123456789012:assumed-role/agent/i-0abc",
		"arn:aws:iam::123456789012:user/team/dev",
		"arn:aws:iam::123456789012:root",
		"arn:aws:sts::123456789012:federated-user/bob",
		"arn:aws:iam::123456789012:role/a/b/c",
		"arn:aws:iam::123456789012",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Canonical(s)
		if err != nil {
			return
		}
		again, err := Canonical(c.String())
		if err != nil || again != c {
			t.Fatalf("Canonical(%q) = %q, which canonicalises to %q, %v", s, c, again, err)
		}
		if !IsAccountID(c.Account) || c.Service == "sts" && !strings.HasPrefix(c.Resource, "federated-user/") {
			t.Fatalf("Canonical(%q) = %q: not a principal", s, c)
		}
	})
}
