package upstream

import (
	"reflect"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want []Challenge
	}{
		{"one Basic with a realm", []string{`Basic realm="Corp Proxy"`}, []Challenge{{"Basic", `realm="Corp Proxy"`}}},
		{"several fields", []string{"NTLM", `Basic realm="x"`}, []Challenge{{"NTLM", ""}, {"Basic", `realm="x"`}}},
		{"several challenges in one field", []string{`Negotiate, NTLM, Basic realm="a, b", charset="UTF-8"`},
			[]Challenge{{"Negotiate", ""}, {"NTLM", ""}, {"Basic", `realm="a, b", charset="UTF-8"`}}},
		{"an NTLM token with padding", []string{"NTLM TlRMTVNTUAACAAAA=="}, []Challenge{{"NTLM", "TlRMTVNTUAACAAAA=="}}},
		{"parameters before any scheme are dropped", []string{`realm="x", Basic`}, []Challenge{{"Basic", ""}}},
		{"a spaced equals sign is a parameter", []string{`Basic realm = "x"`}, []Challenge{{"Basic", `realm = "x"`}}},
		{"nothing", []string{"", " , "}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseChallenges(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseChallenges(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestChallengeRealmAndString(t *testing.T) {
	c := ParseChallenges([]string{`Basic charset="UTF-8", realm="Corp Proxy"`})[0]
	if got := c.Realm(); got != "Corp Proxy" {
		t.Errorf("Realm() = %q, want Corp Proxy", got)
	}
	n := Challenge{Scheme: "NTLM", Data: "TlRMTVNTUAACAAAA"}
	if n.String() != "NTLM" {
		t.Errorf("an NTLM challenge reads %q, want just NTLM", n.String())
	}
}

func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{`Basic realm="x"`, "NTLM TlRMTVNTUAACAAAA==", `Negotiate, Basic realm="a,b"`, `"`, `\`, `a=b, c`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, c := range ParseChallenges([]string{s}) {
			if !isToken(c.Scheme) {
				t.Fatalf("scheme %q is not a token", c.Scheme)
			}
			_ = c.Realm()
			_ = c.String()
		}
	})
}
