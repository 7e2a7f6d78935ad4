package iamauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNewValidates(t *testing.T) {
	ok := Config{ServerID: "x", Regions: []string{"eu-west-1"}, Allow: []string{"123456789012"}}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		key  string
	}{
		{"a valid config is accepted", func(*Config) {}, ""},
		{"regions may come from the endpoints", func(c *Config) { c.Regions = nil; c.Endpoints = map[string]string{"eu-west-1": "http://127.0.0.1:9"} }, ""},
		{"no server ID names iam.server_id", func(c *Config) { c.ServerID = "" }, "iam.server_id"},
		{"no allowlist names iam.allow", func(c *Config) { c.Allow = nil }, "iam.allow"},
		{"a wildcard in the allowlist names iam.allow", func(c *Config) { c.Allow = []string{"arn:aws:iam::*:role/x"} }, "iam.allow"},
		{"a role session in the allowlist names iam.allow", func(c *Config) {
			c.Allow = []string{"arn:aws:sts::123456789012:assumed-role/r/s"}
		}, "iam.allow"},
		{"no region names iam.regions", func(c *Config) { c.Regions = nil }, "iam.regions"},
		{"a bad region names iam.regions", func(c *Config) { c.Regions = []string{"evil.com/x"} }, "iam.regions"},
		{"an endpoint for another region names iam.sts_endpoint", func(c *Config) {
			c.Endpoints = map[string]string{"us-east-1": "https://sts.us-east-1.amazonaws.com"}
		}, "iam.sts_endpoint"},
		{"an endpoint with a path names iam.sts_endpoint", func(c *Config) {
			c.Endpoints = map[string]string{"eu-west-1": "https://example.com/sts"}
		}, "iam.sts_endpoint"},
		{"an endpoint that is not a URL names iam.sts_endpoint", func(c *Config) {
			c.Endpoints = map[string]string{"eu-west-1": "sts.example.com"}
		}, "iam.sts_endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			v, err := New(cfg)
			if err == nil {
				v.Close()
			}
			var ce *configError
			switch {
			case tc.key == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tc.key != "" && (!errors.As(err, &ce) || ce.key != tc.key):
				t.Fatalf("New err = %v; want one naming %s", err, tc.key)
			}
		})
	}
}

const stsNS = `xmlns="https://sts.amazonaws.com/doc/2011-06-15/"`

func TestParseResponse(t *testing.T) {
	result := `<GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/dev</Arn><UserId>AIDA</UserId><Account>123456789012</Account></GetCallerIdentityResult>`
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"the STS shape parses", `<GetCallerIdentityResponse ` + stsNS + `>` + result + `<ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></GetCallerIdentityResponse>`, true},
		{"an XML declaration and white space are fine", `<?xml version="1.0"?>` + "\n" + `<GetCallerIdentityResponse ` + stsNS + `>` + result + `</GetCallerIdentityResponse>` + "\n", true},
		{"no namespace is refused", `<GetCallerIdentityResponse>` + result + `</GetCallerIdentityResponse>`, false},
		{"another namespace is refused", `<GetCallerIdentityResponse xmlns="https://evil/">` + result + `</GetCallerIdentityResponse>`, false},
		{"a response nested in another element is refused", `<ErrorResponse ` + stsNS + `><Error><Message><GetCallerIdentityResponse ` + stsNS + `>` + result + `</GetCallerIdentityResponse></Message></Error></ErrorResponse>`, false},
		{"a result nested deeper is refused", `<GetCallerIdentityResponse ` + stsNS + `><X>` + result + `</X></GetCallerIdentityResponse>`, false},
		{"two results are refused", `<GetCallerIdentityResponse ` + stsNS + `>` + result + result + `</GetCallerIdentityResponse>`, false},
		{"two Arns are refused", `<GetCallerIdentityResponse ` + stsNS + `>` + strings.Replace(result, "<UserId>", "<Arn>x</Arn><UserId>", 1) + `</GetCallerIdentityResponse>`, false},
		{"a missing Account is refused", `<GetCallerIdentityResponse ` + stsNS + `>` + strings.Replace(result, "<Account>123456789012</Account>", "", 1) + `</GetCallerIdentityResponse>`, false},
		{"a second document after the first is refused", `<GetCallerIdentityResponse ` + stsNS + `>` + result + `</GetCallerIdentityResponse><GetCallerIdentityResponse ` + stsNS + `/>`, false},
		{"text after the document is refused", `<GetCallerIdentityResponse ` + stsNS + `>` + result + `</GetCallerIdentityResponse>junk`, false},
		{"a DOCTYPE is refused", `<!DOCTYPE x [<!ENTITY e "a">]><GetCallerIdentityResponse ` + stsNS + `>` + result + `</GetCallerIdentityResponse>`, false},
		{"an unclosed document is refused", `<GetCallerIdentityResponse ` + stsNS + `>` + result, false},
		{"JSON is refused", `{"GetCallerIdentityResponse":{}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, err := parseResponse([]byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("parseResponse = %+v, %v; want ok=%v", ci, err, tc.ok)
			}
			if tc.ok && (ci.ARN != "arn:aws:iam::123456789012:user/dev" || ci.Account != "123456789012" || ci.UserID != "AIDA") {
				t.Errorf("parseResponse = %+v", ci)
			}
		})
	}
}

// signedURL is a well-formed presigned URL (the signature is not real;
// parseToken does not check it).
func signedURL(now time.Time, extra string) string {
	q := url.Values{
		"Action":              {"GetCallerIdentity"},
		"Version":             {"2011-06-15"},
		"X-Amz-Algorithm":     {"AWS4-HMAC-SHA256"},
		"X-Amz-Credential":    {"AKIDEXAMPLE00001/" + now.Format("20060102") + "/eu-west-1/sts/aws4_request"},
		"X-Amz-Date":          {now.Format(amzDateFormat)},
		"X-Amz-SignedHeaders": {"host;x-fluidity-server-id"},
		"X-Amz-Signature":     {strings.Repeat("ab", 32)},
	}
	return "https://sts.eu-west-1.amazonaws.com/?" + q.Encode() + extra
}

func TestParseToken(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	hosts := hostRegion{"sts.eu-west-1.amazonaws.com": "eu-west-1", "sts.us-east-1.amazonaws.com": "us-east-1"}
	good := signedURL(now, "")
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"a well-formed URL passes", good, true},
		{"a session token passes", signedURL(now, "&X-Amz-Security-Token=abc%2B%2F%3D"), true},
		{"X-Amz-Expires 900 passes", signedURL(now, "&X-Amz-Expires=900"), true},
		{"X-Amz-Expires 0 is refused", signedURL(now, "&X-Amz-Expires=0"), false},
		{"X-Amz-Expires 901 is refused", signedURL(now, "&X-Amz-Expires=901"), false},
		{"X-Amz-Expires +60 is refused", signedURL(now, "&X-Amz-Expires=%2B60"), false},
		{"user information is refused", strings.Replace(good, "https://", "https://u:p@", 1), false},
		{"a fragment is refused", good + "#x", false},
		{"an empty fragment is refused", good + "#", false},
		{"a path is refused", strings.Replace(good, ".com/?", ".com/x?", 1), false},
		{"an empty path is refused", strings.Replace(good, ".com/?", ".com?", 1), false},
		{"an empty port is refused", strings.Replace(good, ".com/?", ".com:/?", 1), false},
		{"an upper-case host is refused", strings.Replace(good, "sts.eu-west-1", "STS.eu-west-1", 1), false},
		{"a scope in another region is refused", strings.Replace(good, "%2Feu-west-1%2F", "%2Fus-east-1%2F", 1), false},
		{"a scope for another service is refused", strings.Replace(good, "%2Fsts%2F", "%2Fiam%2F", 1), false},
		{"a scope on another day is refused", strings.Replace(good, "%2F"+now.Format("20060102")+"%2F", "%2F19990101%2F", 1), false},
		{"a lower-case parameter name is refused", strings.Replace(good, "Action=", "action=", 1), false},
		{"another algorithm is refused", strings.Replace(good, "AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1), false},
		{"another version is refused", strings.Replace(good, "2011-06-15", "2011-06-16", 1), false},
		{"a signature of the wrong length is refused", strings.Replace(good, strings.Repeat("ab", 32), "abab", 1), false},
		{"more signed headers are refused", strings.Replace(good, "host%3Bx-fluidity-server-id", "host%3Bx-fluidity-server-id%3Bx-other", 1), false},
		{"a semicolon separator is refused", good + ";Action=AssumeRole", false},
		{"a missing signature is refused", strings.Replace(good, "X-Amz-Signature=", "X-Amz-Nope=", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseToken(Prefix+b64(tc.url), hosts, ServerIDHeader, now)
			if (err == nil) != tc.ok {
				t.Fatalf("parseToken(%s) = %v; want ok=%v", tc.url, err, tc.ok)
			}
			if err != nil && err.Err != ErrInvalidToken {
				t.Errorf("err = %v; want ErrInvalidToken", err)
			}
			if p != nil && (p.region != "eu-west-1" || p.host != "sts.eu-west-1.amazonaws.com") {
				t.Errorf("parsed %+v", p)
			}
		})
	}
}

func TestParseBearer(t *testing.T) {
	for _, tc := range []struct {
		in, tok string
		ok      bool
	}{
		{"Bearer abc", "abc", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Bearer a b", "", false},
		{"", "", false},
	} {
		t.Run(fmt.Sprintf("%q", tc.in), func(t *testing.T) {
			tok, ok := ParseBearer(tc.in)
			if tok != tc.tok || ok != tc.ok {
				t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", tc.in, tok, ok, tc.tok, tc.ok)
			}
		})
	}
}

func TestFailureLimiterStaysBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := &FailureLimiter{Burst: 1, Interval: time.Hour, MaxKeys: 10, Now: func() time.Time { return now }}
	for i := range 100 {
		now = now.Add(time.Second)
		l.Failed(fmt.Sprint("k", i))
	}
	if n := len(l.buckets); n > 10 {
		t.Errorf("limiter holds %d keys; want at most 10", n)
	}
	if ok, _ := l.Allow("k99"); ok {
		t.Error("the most recent failing key is allowed; want it limited")
	}
	if ok, _ := l.Allow("k0"); !ok {
		t.Error("a forgotten key is limited; want it allowed")
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func FuzzParseToken(f *testing.F) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f.Add(Prefix + b64(signedURL(now, "")))
	f.Add(Prefix + b64(signedURL(now, "&X-Amz-Expires=60")))
	f.Add(Prefix + "aHR0cHM6Ly9zdHMuZXUtd2VzdC0xLmFtYXpvbmF3cy5jb20v")
	hosts := hostRegion{"sts.eu-west-1.amazonaws.com": "eu-west-1"}
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := parseToken(tok, hosts, ServerIDHeader, now)
		if err != nil {
			if err.Err != ErrInvalidToken || err.Status != 407 {
				t.Fatalf("error %v is not an invalid-token 407", err)
			}
			return
		}
		if len(tok) > MaxTokenSize || p.region != "eu-west-1" || p.query.Get("Action") != "GetCallerIdentity" || !p.expires.After(now) {
			t.Fatalf("accepted %q as %+v", tok, p)
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`<GetCallerIdentityResponse ` + stsNS + `><GetCallerIdentityResult><Arn>arn:aws:iam::123456789012:user/dev</Arn><UserId>A</UserId><Account>123456789012</Account></GetCallerIdentityResult></GetCallerIdentityResponse>`))
	f.Add([]byte(`<ErrorResponse><Error><Code>X</Code></Error></ErrorResponse>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		parseResponse(body)
		parseSTSError(body)
	})
}
