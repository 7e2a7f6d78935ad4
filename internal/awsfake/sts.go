package awsfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	stsNamespace  = "https://sts.amazonaws.com/doc/2011-06-15/"
	amzDateFormat = "20060102T150405Z"
	presignMaxAge = 15 * time.Minute
	maxBody       = 1 << 20
)

// emptySHA256 is the payload hash of a bodiless presigned GET.
var emptySHA256 = hex.EncodeToString(func() []byte { h := sha256.Sum256(nil); return h[:] }())

// STS is a running fake STS server.
type STS struct {
	// URL is the base URL of the server, http://127.0.0.1:PORT.
	URL string

	// Now is the clock used for date checks. Set it before the first
	// request; if nil, time.Now is used.
	Now func() time.Time

	srv       *httptest.Server
	closeOnce sync.Once
	closed    chan struct{} // closed by Close; releases blocked requests

	mu         sync.Mutex
	identities map[string]identity // guarded by mu; by access key ID
	required   []string            // guarded by mu; lower-case headers a signature must cover
	fault      Fault               // guarded by mu
	faultLeft  int                 // guarded by mu; requests the fault still applies to, if Times > 0
	log        []Request           // guarded by mu
	inFlight   int                 // guarded by mu
	changed    chan struct{}       // guarded by mu; closed and replaced when inFlight changes
	requestID  int                 // guarded by mu
}

type identity struct {
	secret, arn, account, userID string
}

// Request is one request the fake received.
type Request struct {
	Method    string
	Host      string // the Host header
	Path      string
	QueryKeys []string    // sorted
	Action    string      // from the query (GET) or the form body (POST)
	Header    http.Header // a copy
	Status    int         // the status answered
}

// FaultKind is a way for the fake to misbehave.
type FaultKind int

const (
	NoFault          FaultKind = iota
	InternalError              // 500 with an InternalFailure error body, before authentication
	Redirect                   // 302 to Fault.Location, before authentication
	WrongContentType           // an authenticated request gets a valid body as text/html
	NestedForgery              // an authenticated request gets 200 text/xml with a GetCallerIdentityResponse (of Fault.ForgedARN) nested inside an ErrorResponse
	Oversized                  // an authenticated request gets a valid response padded past 64 KiB
)

// Fault is an error or attack mode; see SetFault.
type Fault struct {
	Kind FaultKind

	// Location is where Redirect points.
	Location string

	// ForgedARN and ForgedAccount are the identity NestedForgery claims.
	// If empty, arn:aws:iam::999999999999:role/forged.
	ForgedARN, ForgedAccount string

	// Block, if non-nil, holds every affected request until it is closed
	// (or the client goes away, or the server closes) before answering.
	Block <-chan struct{}

	// Delay holds every affected request this long before answering.
	Delay time.Duration

	// Times is how many requests the fault applies to before it clears
	// itself. If zero, it applies until the next SetFault.
	Times int
}

// New starts a fake STS. The caller must Close it.
func New() *STS {
	s := &STS{
		closed:     make(chan struct{}),
		identities: map[string]identity{},
		changed:    make(chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.URL = s.srv.URL
	return s
}

// NewServer starts a fake STS that is closed when tb's test ends.
func NewServer(tb testing.TB) *STS {
	s := New()
	tb.Cleanup(s.Close)
	return s
}

// Close releases blocked requests, shuts the server down and waits for
// its requests to finish.
func (s *STS) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.srv.Close()
}

// AddIdentity lets accessKeyID, signing with secretKey, be reported as
// arn, account and userID. Adding a key again replaces it.
func (s *STS) AddIdentity(accessKeyID, secretKey, arn, account, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identities[accessKeyID] = identity{secret: secretKey, arn: arn, account: account, userID: userID}
}

// RequireSignedHeader makes the fake refuse (403) any request whose
// signature does not cover header. Any signed header must also be present
// in the request, required or not.
func (s *STS) RequireSignedHeader(header string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.required = append(s.required, strings.ToLower(header))
}

// SetFault switches a fault on; SetFault(Fault{}) switches it off.
func (s *STS) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault, s.faultLeft = f, f.Times
}

// Requests returns the requests received so far, oldest first.
func (s *STS) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// RequestCount is len(Requests()).
func (s *STS) RequestCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// InFlight is the number of requests being handled now, blocked ones
// included.
func (s *STS) InFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// WaitInFlight waits until at least n requests are being handled at once,
// or ctx ends.
func (s *STS) WaitInFlight(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		in, ch := s.inFlight, s.changed
		s.mu.Unlock()
		if in >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("awsfake: %d of %d requests in flight: %w", in, n, ctx.Err())
		}
	}
}

func (s *STS) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *STS) addInFlight(d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inFlight += d
	close(s.changed)
	s.changed = make(chan struct{})
}

// takeFault returns the fault that applies to one request.
func (s *STS) takeFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.fault
	if f.Times > 0 {
		if s.faultLeft--; s.faultLeft <= 0 {
			s.fault = Fault{}
		}
	}
	return f
}

func (s *STS) serveHTTP(w http.ResponseWriter, r *http.Request) {
	// Take the fault before counting the request in flight, so that a test
	// that saw it in flight knows which request the fault applies to.
	f := s.takeFault()
	s.addInFlight(1)
	defer s.addInFlight(-1)

	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return
	}
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		if form, err := url.ParseQuery(string(body)); err == nil {
			params = form
		}
	}
	entry := Request{
		Method: r.Method, Host: r.Host, Path: r.URL.Path, Action: params.Get("Action"),
		Header: r.Header.Clone(),
	}
	for k := range r.URL.Query() {
		entry.QueryKeys = append(entry.QueryKeys, k)
	}
	slices.Sort(entry.QueryKeys)
	s.mu.Lock()
	s.requestID++
	reqID := fmt.Sprintf("fake-%08d", s.requestID)
	idx := len(s.log)
	s.log = append(s.log, entry)
	s.mu.Unlock()
	s.answer(&statusWriter{ResponseWriter: w, s: s, idx: idx}, r, f, body, params, reqID)
}

// statusWriter records the status in the request log as soon as it is
// written, before the client can see the response.
type statusWriter struct {
	http.ResponseWriter
	s     *STS
	idx   int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.wrote = true
		w.s.mu.Lock()
		w.s.log[w.idx].Status = code
		w.s.mu.Unlock()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (s *STS) answer(w http.ResponseWriter, r *http.Request, f Fault, body []byte, params url.Values, reqID string) {
	if f.Block != nil {
		select {
		case <-f.Block:
		case <-s.closed:
		case <-r.Context().Done():
			return
		}
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-s.closed:
		case <-r.Context().Done():
		}
		t.Stop()
	}
	switch f.Kind {
	case InternalError:
		writeError(w, http.StatusInternalServerError, "Receiver", "InternalFailure", "An internal error occurred.", reqID)
		return
	case Redirect:
		http.Redirect(w, r, f.Location, http.StatusFound)
		return
	}

	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Sender", "InvalidAction", "Unsupported method.", reqID)
		return
	}
	id, status, code, msg := s.authenticate(r, body, params)
	if status != 0 {
		writeError(w, status, "Sender", code, msg, reqID)
		return
	}
	if params.Get("Action") != "GetCallerIdentity" || params.Get("Version") != "2011-06-15" {
		writeError(w, http.StatusBadRequest, "Sender", "InvalidAction", "Could not find operation "+params.Get("Action")+" for version "+params.Get("Version"), reqID)
		return
	}

	switch f.Kind {
	case WrongContentType:
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, identityXML(id, reqID))
	case NestedForgery:
		forged := identity{arn: f.ForgedARN, account: f.ForgedAccount, userID: "AIDAFORGED"}
		if forged.arn == "" {
			forged.arn, forged.account = "arn:aws:iam::999999999999:role/forged", "999999999999"
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
			stsNamespace, identityXML(forged, reqID), reqID)
	case Oversized:
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, identityXML(id, reqID))
		io.WriteString(w, strings.Repeat(" ", 70<<10))
	default:
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, identityXML(id, reqID))
	}
}

// authenticate checks the request's SigV4 signature, presigned or in the
// Authorization header. It returns a zero status on success, and otherwise
// the status, error code and message STS would send.
func (s *STS) authenticate(r *http.Request, body []byte, params url.Values) (identity, int, string, string) {
	q := r.URL.Query()
	var (
		cred, date, signed, sig string
		presigned               bool
	)
	switch {
	case q.Has("X-Amz-Signature"):
		presigned = true
		if q.Get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" {
			return identity{}, http.StatusBadRequest, "IncompleteSignature", "Unsupported or missing X-Amz-Algorithm."
		}
		cred, date, signed, sig = q.Get("X-Amz-Credential"), q.Get("X-Amz-Date"), q.Get("X-Amz-SignedHeaders"), q.Get("X-Amz-Signature")
	case r.Header.Get("Authorization") != "":
		var ok bool
		cred, signed, sig, ok = parseAuthorization(r.Header.Get("Authorization"))
		if !ok {
			return identity{}, http.StatusBadRequest, "IncompleteSignature", "Authorization header is malformed."
		}
		date = r.Header.Get("X-Amz-Date")
	default:
		return identity{}, http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"
	}

	scope := strings.Split(cred, "/")
	if len(scope) != 5 || scope[4] != "aws4_request" {
		return identity{}, http.StatusBadRequest, "IncompleteSignature", "Credential is malformed."
	}
	akid, region, service := scope[0], scope[2], scope[3]
	if service != "sts" {
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to correct service: 'sts'."
	}
	s.mu.Lock()
	id, known := s.identities[akid]
	required := slices.Clone(s.required)
	s.mu.Unlock()
	if !known {
		return identity{}, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."
	}
	t, err := time.Parse(amzDateFormat, date)
	if err != nil || scope[1] != t.Format("20060102") {
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch", "Date in Credential scope does not match the request date."
	}
	now := s.now().UTC()
	if now.After(t.Add(presignMaxAge)) {
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch",
			fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 15 min.)", date, now.Add(-presignMaxAge).Format(amzDateFormat), now.Format(amzDateFormat))
	}
	if t.After(now.Add(presignMaxAge)) {
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch", "Signature not yet current."
	}

	headers := strings.Split(signed, ";")
	for _, h := range required {
		if !slices.Contains(headers, h) {
			return identity{}, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature does not cover the " + h + " header."
		}
	}
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: id.secret}
	var want, problem string
	if presigned {
		want, problem = presignSignature(r, q, headers, creds, region, service, t)
	} else {
		want, problem = headerSignature(r, body, headers, creds, region, service, t)
	}
	if problem != "" {
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch", problem
	}
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch",
			"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
	}
	return id, 0, "", ""
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
		return "", "SignedHeaders " + signed(headers) + " are not the request's signable headers."
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
		return "", "SignedHeaders " + signed(headers) + " are not the request's signable headers."
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

func signed(headers []string) string { return strconv.Quote(strings.Join(headers, ";")) }

func identityXML(id identity, reqID string) string {
	return `<GetCallerIdentityResponse xmlns="` + stsNamespace + `">` +
		`<GetCallerIdentityResult><Arn>` + esc(id.arn) + `</Arn><UserId>` + esc(id.userID) +
		`</UserId><Account>` + esc(id.account) + `</Account></GetCallerIdentityResult>` +
		`<ResponseMetadata><RequestId>` + reqID + `</RequestId></ResponseMetadata></GetCallerIdentityResponse>`
}

func writeError(w http.ResponseWriter, status int, typ, code, msg, reqID string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	io.WriteString(w, `<ErrorResponse xmlns="`+stsNamespace+`"><Error><Type>`+typ+`</Type><Code>`+code+
		`</Code><Message>`+esc(msg)+`</Message></Error><RequestId>`+reqID+`</RequestId></ErrorResponse>`)
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
