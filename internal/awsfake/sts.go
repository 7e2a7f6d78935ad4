package awsfake

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	stsNamespace  = "https://sts.amazonaws.com/doc/2011-06-15/"
	presignMaxAge = 15 * time.Minute
	maxBody       = 1 << 20
)

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
	// Counted in flight once it is in the log: a test that saw n requests
	// in flight finds them in Requests.
	s.addInFlight(1)
	defer s.addInFlight(-1)
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
	id, status, code, msg := s.authenticate(r, body)
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
func (s *STS) authenticate(r *http.Request, body []byte) (identity, int, string, string) {
	s.mu.Lock()
	required := slices.Clone(s.required)
	s.mu.Unlock()
	var id identity
	res := verifySigV4(r, body, sigRules{
		service:  "sts",
		maxSkew:  presignMaxAge,
		now:      s.now(),
		required: required,
		secret: func(akid string) (string, bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			found, ok := s.identities[akid]
			id = found
			return found.secret, ok
		},
	})
	switch res.failure {
	case sigMissing:
		return identity{}, http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"
	case sigMalformed:
		return identity{}, http.StatusBadRequest, "IncompleteSignature", res.message
	case sigUnknownKey:
		return identity{}, http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid."
	case sigMismatch:
		return identity{}, http.StatusForbidden, "SignatureDoesNotMatch", res.message
	}
	return id, 0, "", ""
}

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
