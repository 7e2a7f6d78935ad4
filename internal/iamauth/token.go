package iamauth

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	// Prefix starts every token: the token is Prefix followed by the
	// presigned GetCallerIdentity URL in unpadded base64url.
	Prefix = "fluidity-iam-v1."

	// ServerIDHeader is the signed header that binds a token to one exit.
	// The agent signs it with the exit's configured ID; the exit sends its
	// own ID to STS, so a token minted for another server fails there.
	ServerIDHeader = "X-Fluidity-Server-Id"

	// MaxTokenSize is the largest token accepted, checked before decoding.
	MaxTokenSize = 4096

	// MaxAge is how long after its X-Amz-Date a token is accepted. STS
	// itself would accept it for 15 minutes.
	MaxAge = 5 * time.Minute

	// MaxFutureSkew is how far in the future an X-Amz-Date may lie, for
	// clocks slightly ahead of the exit's.
	MaxFutureSkew = time.Minute
)

const (
	amzDateFormat = "20060102T150405Z"
	stsVersion    = "2011-06-15"
	algorithm     = "AWS4-HMAC-SHA256"
)

// allowedParams are the only query keys a token's URL may carry, keyed by
// their lower-case form.
var allowedParams = map[string]string{
	"action":               "Action",
	"version":              "Version",
	"x-amz-algorithm":      "X-Amz-Algorithm",
	"x-amz-credential":     "X-Amz-Credential",
	"x-amz-date":           "X-Amz-Date",
	"x-amz-expires":        "X-Amz-Expires",
	"x-amz-security-token": "X-Amz-Security-Token",
	"x-amz-signedheaders":  "X-Amz-SignedHeaders",
	"x-amz-signature":      "X-Amz-Signature",
}

// presigned is a token that passed every local check.
type presigned struct {
	region  string     // from the host, equal to the credential scope's
	host    string     // the signed host, sent as Host to the endpoint
	query   url.Values // the checked parameters, re-encoded for the STS call
	date    time.Time  // X-Amz-Date
	expires time.Time  // when the token stops being accepted
}

// hostRegion maps an accepted STS host name to its region.
type hostRegion map[string]string

// stsHost is the regional STS host name, as the SDK presigns it.
func stsHost(region string) string {
	if strings.HasPrefix(region, "cn-") {
		return "sts." + region + ".amazonaws.com.cn"
	}
	return "sts." + region + ".amazonaws.com"
}

// parseToken runs every check that needs no network: see the package
// documentation for the list and the attack each one stops.
func parseToken(token string, hosts hostRegion, serverIDHeader string, now time.Time) (*presigned, *Error) {
	if len(token) > MaxTokenSize {
		return nil, invalid("token longer than " + strconv.Itoa(MaxTokenSize) + " bytes")
	}
	enc, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		return nil, invalid("token does not start with " + Prefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, invalid("token is not base64url")
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return nil, invalid("token does not hold a URL")
	}
	switch {
	case u.Scheme != "https":
		return nil, invalid("token URL scheme is not https")
	case u.User != nil:
		return nil, invalid("token URL has user information")
	case u.Fragment != "" || strings.Contains(string(raw), "#"):
		return nil, invalid("token URL has a fragment")
	case u.Opaque != "":
		return nil, invalid("token URL is opaque")
	case u.Port() != "" || strings.HasSuffix(u.Host, ":"):
		return nil, invalid("token URL names a port")
	case u.EscapedPath() != "/":
		return nil, invalid("token URL path is not /")
	}
	region, ok := hosts[u.Host]
	if !ok {
		return nil, invalid("token URL host " + strconv.Quote(clip(u.Host)) + " is not an accepted STS endpoint")
	}

	q, perr := checkQuery(u.RawQuery)
	if perr != nil {
		return nil, perr
	}
	if q.Get("Action") != "GetCallerIdentity" {
		return nil, invalid("token action is not GetCallerIdentity")
	}
	if q.Get("Version") != stsVersion {
		return nil, invalid("token version is not " + stsVersion)
	}
	if q.Get("X-Amz-Algorithm") != algorithm {
		return nil, invalid("token algorithm is not " + algorithm)
	}
	if !isHex64(q.Get("X-Amz-Signature")) {
		return nil, invalid("token signature is not 64 hex digits")
	}

	date, err := time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
	if err != nil {
		return nil, invalid("token X-Amz-Date is malformed")
	}
	if perr := checkScope(q.Get("X-Amz-Credential"), date, region); perr != nil {
		return nil, perr
	}
	if perr := checkSignedHeaders(q.Get("X-Amz-SignedHeaders"), serverIDHeader); perr != nil {
		return nil, perr
	}

	expires := date.Add(MaxAge)
	if s, ok := q["X-Amz-Expires"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n < 1 || n > 900 || s[0] != strconv.Itoa(n) {
			return nil, invalid("token X-Amz-Expires is not 1..900")
		}
		if e := date.Add(time.Duration(n) * time.Second); e.Before(expires) {
			expires = e
		}
	}
	if date.After(now.Add(MaxFutureSkew)) {
		return nil, invalid("token is dated in the future; check the agent's clock")
	}
	if !now.Before(expires) {
		return nil, invalid("token expired; the agent should mint a new one")
	}
	return &presigned{region: region, host: u.Host, query: q, date: date, expires: expires}, nil
}

// checkQuery parses the raw query strictly: allowlisted keys only, in their
// canonical spelling, each once (case-insensitively), each with one value.
func checkQuery(raw string) (url.Values, *Error) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, invalid("token URL query is malformed")
	}
	seen := make(map[string]bool, len(q))
	for k, vs := range q {
		lk := strings.ToLower(k)
		if seen[lk] {
			return nil, invalid("token URL repeats parameter " + strconv.Quote(clip(k)) + " in another case")
		}
		seen[lk] = true
		canon, ok := allowedParams[lk]
		if !ok {
			return nil, invalid("token URL has unexpected parameter " + strconv.Quote(clip(k)))
		}
		if k != canon {
			return nil, invalid("token URL parameter " + strconv.Quote(clip(k)) + " is not spelled " + canon)
		}
		if len(vs) != 1 {
			return nil, invalid("token URL repeats parameter " + canon)
		}
	}
	for _, k := range []string{"Action", "Version", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if _, ok := q[k]; !ok {
			return nil, invalid("token URL lacks parameter " + k)
		}
	}
	return q, nil
}

// checkScope checks "<AKID>/<yyyymmdd>/<region>/sts/aws4_request".
func checkScope(cred string, date time.Time, region string) *Error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[3] != "sts" || parts[4] != "aws4_request" {
		return invalid("token credential scope is not <key>/<day>/<region>/sts/aws4_request")
	}
	if !isAccessKeyID(parts[0]) {
		return invalid("token access key ID is malformed")
	}
	if parts[1] != date.Format("20060102") {
		return invalid("token credential scope day differs from X-Amz-Date")
	}
	if parts[2] != region {
		return invalid("token credential scope region differs from the host's region")
	}
	return nil
}

// checkSignedHeaders requires exactly host and the server-ID header: the
// verifier sends no other header STS would check, so a token signing more
// could never verify, and one signing less is not bound to this server.
func checkSignedHeaders(sh, serverIDHeader string) *Error {
	want := strings.ToLower(serverIDHeader)
	if sh == "host;"+want {
		return nil
	}
	for _, h := range strings.Split(sh, ";") {
		if h == want {
			return invalid("token signs headers other than host and " + want)
		}
	}
	return invalid("token does not sign the " + serverIDHeader + " header; it is not bound to a server")
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func isAccessKeyID(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// clip bounds client-supplied text quoted in a reason.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ParseBearer extracts the token from a Proxy-Authorization value of the
// form "Bearer <token>" (the scheme is case-insensitive). ok is false for
// any other scheme or shape.
func ParseBearer(headerValue string) (token string, ok bool) {
	scheme, rest, found := strings.Cut(strings.TrimSpace(headerValue), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(rest, " ")
	if token == "" || strings.ContainsAny(token, " \t\r\n") {
		return "", false
	}
	return token, true
}
