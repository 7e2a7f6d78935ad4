package awsfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const amzDateFormat = "20060102T150405Z"

// emptySHA256 is the payload hash of a bodiless presigned GET.
var emptySHA256 = hex.EncodeToString(func() []byte { h := sha256.Sum256(nil); return h[:] }())

// sigFailure is why a request's signature was refused. Each fake renders
// it as its service's error code.
type sigFailure int

const (
	sigOK         sigFailure = iota
	sigMissing               // no Authorization header and no X-Amz-Signature
	sigMalformed             // an unparsable Authorization header, credential or algorithm
	sigUnknownKey            // the access key ID names no identity
	sigMismatch              // wrong service, region, date, signed headers or signature
)

// sigRules is what a request's SigV4 signature must satisfy.
type sigRules struct {
	service  string        // the signing name the credential scope must carry
	region   string        // the region the scope must carry; any if empty
	maxSkew  time.Duration // how far X-Amz-Date may be from now, either way
	now      time.Time
	required []string // lower-case headers the signature must cover

	// secret returns the secret key of an access key ID. It is called at
	// most once, after the scope checks.
	secret func(accessKeyID string) (string, bool)
}

// sigResult is the outcome of verifySigV4.
type sigResult struct {
	accessKeyID string // from the credential scope, known or not
	failure     sigFailure
	message     string // what went wrong, for sigMalformed and sigMismatch
}

// verifySigV4 checks the request's SigV4 signature, presigned (in the
// query) or in the Authorization header, by signing a copy of the request
// again with the SDK's own signer and the secret of the key it names. The
// copy carries only the headers the request says it signed, and the
// request's Host header, so a tampered parameter, header, host or date
// fails as it does at AWS. Session tokens (X-Amz-Security-Token) are
// covered by the signature but not checked against the key.
func verifySigV4(r *http.Request, body []byte, rules sigRules) sigResult {
	q := r.URL.Query()
	var (
		cred, date, signedList, sig string
		presigned                   bool
	)
	switch {
	case q.Has("X-Amz-Signature"):
		presigned = true
		if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
			return sigResult{failure: sigMalformed, message: "Unsupported or missing X-Amz-Algorithm."}
		}
		cred, date, signedList, sig = q.Get("X-Amz-Credential"), q.Get("X-Amz-Date"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature")
	case r.Header.Get("Authorization") != "":
		var ok bool
		cred, signedList, sig, ok = parseAuthorization(r.Header.Get("Authorization"))
		if !ok {
			return sigResult{failure: sigMalformed, message: "Authorization header is malformed."}
		}
		date = r.Header.Get("X-Amz-Date")
	default:
		return sigResult{failure: sigMissing}
	}

	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return sigResult{failure: sigMalformed, message: "Credential is malformed."}
	}
	akid, region, service := scope[0], scope[2], scope[3]
	fail := func(msg string) sigResult { return sigResult{accessKeyID: akid, failure: sigMismatch, message: msg} }
	if service != rules.service {
		return fail("Credential should be scoped to correct service: '" + rules.service + "'.")
	}
	if rules.region != "" && region != rules.region {
		return fail("Credential should be scoped to a valid region, not '" + region + "'.")
	}
	secret, known := rules.secret(akid)
	if !known {
		return sigResult{accessKeyID: akid, failure: sigUnknownKey}
	}
	t, err := time.Parse(amzDateFormat, date)
	if err != nil || scope[1] != t.Format("20060102") {
		return fail("Date in Credential scope does not match the request date.")
	}
	now := rules.now.UTC()
	if now.After(t.Add(rules.maxSkew)) {
		return fail(fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d min.)",
			date, now.Add(-rules.maxSkew).Format(amzDateFormat), now.Format(amzDateFormat), int(rules.maxSkew.Minutes())))
	}
	if t.After(now.Add(rules.maxSkew)) {
		return fail("Signature not yet current.")
	}

	headers := strings.Split(signedList, ";")
	for _, h := range rules.required {
		if !slices.Contains(headers, h) {
			return fail("The request signature does not cover the " + h + " header.")
		}
	}
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}
	var want, problem string
	if presigned {
		want, problem = presignSignature(r, q, headers, creds, region, service, t)
	} else {
		want, problem = headerSignature(r, body, headers, creds, region, service, t)
	}
	if problem != "" {
		return fail(problem)
	}
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return fail("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
	}
	return sigResult{accessKeyID: akid}
}

// copySigned adds to req the request's values of the signed headers other
// than host, failing if one is missing.
func copySigned(req, r *http.Request, headers []string) (problem string) {
	for _, h := range headers {
		switch h {
		case "host", "content-length":
			continue
		}
		vs := r.Header.Values(h)
		if len(vs) == 0 {
			return "Signed header " + h + " is missing from the request."
		}
		req.Header[http.CanonicalHeaderKey(h)] = vs
	}
	return ""
}

func presignSignature(r *http.Request, q url.Values, headers []string, creds aws.Credentials, region, service string, t time.Time) (sig, problem string) {
	rest := url.Values{}
	for k, vs := range q {
		switch k {
		case "X-Amz-Signature", "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders":
		default:
			rest[k] = vs
		}
	}
	req, err := http.NewRequest(r.Method, "https://"+r.Host+r.URL.EscapedPath()+"?"+rest.Encode(), nil)
	if err != nil {
		return "", err.Error()
	}
	req.Host = r.Host
	if p := copySigned(req, r, headers); p != "" {
		return "", p
	}
	signedURL, _, err := v4.NewSigner().PresignHTTP(context.Background(), creds, req, emptySHA256, service, region, t)
	if err != nil {
		return "", err.Error()
	}
	u, err := url.Parse(signedURL)
	if err != nil {
		return "", err.Error()
	}
	if u.Query().Get("X-Amz-SignedHeaders") != strings.Join(headers, ";") {
		return "", "SignedHeaders " + quoteHeaders(headers) + " are not the request's signable headers."
	}
	return u.Query().Get("X-Amz-Signature"), ""
}

func headerSignature(r *http.Request, body []byte, headers []string, creds aws.Credentials, region, service string, t time.Time) (sig, problem string) {
	req, err := http.NewRequest(r.Method, "https://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return "", err.Error()
	}
	req.Host = r.Host
	req.ContentLength = 0
	if slices.Contains(headers, "content-length") {
		req.ContentLength = int64(len(body))
	}
	if p := copySigned(req, r, headers); p != "" {
		return "", p
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), service, region, t); err != nil {
		return "", err.Error()
	}
	_, got, sig, _ := parseAuthorization(req.Header.Get("Authorization"))
	if got != strings.Join(headers, ";") {
		return "", "SignedHeaders " + quoteHeaders(headers) + " are not the request's signable headers."
	}
	return sig, ""
}

// parseAuthorization splits "AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…".
func parseAuthorization(v string) (cred, signed, sig string, ok bool) {
	rest, found := strings.CutPrefix(v, "AWS4-HMAC-SHA256 ")
	if !found {
		return "", "", "", false
	}
	for _, part := range strings.Split(rest, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "Credential":
			cred = val
		case "SignedHeaders":
			signed = val
		case "Signature":
			sig = val
		}
	}
	return cred, signed, sig, cred != "" && signed != "" && sig != ""
}

func quoteHeaders(headers []string) string { return strconv.Quote(strings.Join(headers, ";")) }
