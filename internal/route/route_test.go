package route

import (
	"strings"
	"testing"
)

var testRules = []string{"intranet.example.com", ".corp.example", "10.0.0.0/8", "192.168.1.10", "fd00::/8", "2001:db8::1", "<local>", "Wiki.Example.ORG."}

// directTable is what testRules decide, by host.
var directTable = []struct {
	host   string
	direct bool
}{
	{"intranet.example.com", true},
	{"INTRANET.example.com.", true},
	{"www.intranet.example.com", false}, // an exact name is that host only
	{"example.com", false},
	{"corp.example", true},
	{"a.b.corp.example", true},
	{"notcorp.example", false},
	{"corp.example.evil.com", false},
	{"wiki.example.org", true},
	{"10.1.2.3", true},
	{"11.1.2.3", false},
	{"192.168.1.10", true},
	{"192.168.1.11", false},
	{"fd12::1", true},
	{"[fd12::1]", true},
	{"fe80::1", false},
	{"2001:db8::1", true},
	{"2001:db8::2", false},
	{"::ffff:10.1.2.3", false}, // an IPv4-mapped address is not in an IPv4 range, in the PAC file either
	{"printer", true},          // <local>
	{"printer.", true},
	{"example.com.attacker", false},
	{"1.2.3", false},
	{"999.1.1.1", false},
}

func TestDirect(t *testing.T) {
	r, err := Parse(testRules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range directTable {
		if got := r.Direct(tc.host); got != tc.direct {
			t.Errorf("Direct(%q) = %v, want %v", tc.host, got, tc.direct)
		}
	}
	var none *Rules
	if none.Direct("intranet.example.com") {
		t.Error("no rules sent a host direct")
	}
}

func TestParseRejectsWhatIsNotARule(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{"http://intranet.example.com", "no scheme"},
		{"intranet.example.com:443", "not an IP address"},
		{"*.example.com", `".example.com"`},
		{"10.0.0.0/33", "not an address range"},
		{"300.1.1.1", "not an IP address"},
		{".", "not a domain"},
		{"exa mple.com", "not a host name"},
		{"fe80::1%eth0", "not an IP address"},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			_, err := Parse([]string{tc.rule})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "direct:") {
				t.Fatalf("Parse(%q) = %v, want an error naming the key with %q", tc.rule, err, tc.want)
			}
		})
	}
}

func TestPACWithoutRulesSendsEverythingToTheAgent(t *testing.T) {
	pac := string((*Rules)(nil).PAC("127.0.0.1:8080"))
	if !strings.Contains(pac, `"PROXY 127.0.0.1:8080"`) || strings.Contains(pac, "DIRECT") {
		t.Errorf("PAC without rules:\n%s", pac)
	}
}

func FuzzParse(f *testing.F) {
	for _, r := range testRules {
		f.Add(r, "intranet.example.com")
	}
	f.Add("*.x", "[::1]")
	f.Fuzz(func(t *testing.T, rule, host string) {
		r, err := Parse(strings.Split(rule, ","))
		if err != nil {
			return
		}
		_ = r.Direct(host)
		_ = r.PAC("127.0.0.1:8080")
	})
}
