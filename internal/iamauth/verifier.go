package iamauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"time"

	"fluidity/internal/principal"
)

// Config configures a Verifier. ServerID and Allow are required; every
// other field has a default.
type Config struct {
	// ServerID is this exit's ID, the value agents sign into the
	// X-Fluidity-Server-Id header (iam.server_id).
	ServerID string

	// Regions are the STS regions whose endpoints tokens may name. If
	// empty, the regions named in Endpoints are used; if both are empty,
	// New fails.
	Regions []string

	// Endpoints overrides, per region, the base URL the verifier sends
	// tokens to (iam.sts_endpoint), for tests and private endpoints. A
	// region without an entry uses https://sts.REGION.amazonaws.com. The
	// signed host is always the regional STS host named in the token.
	Endpoints map[string]string

	// Allow lists who gets in (iam.allow): 12-digit account IDs, role ARNs
	// (arn:aws:iam::ACCOUNT:role/NAME, a path allowed and ignored when
	// matching, because assumed-role ARNs do not carry it), and exact user,
	// root or federated-user ARNs. An assumed-role session matches its role.
	Allow []string

	// Timeout bounds one STS call. If zero, 5s is used.
	Timeout time.Duration

	// CacheSize is how many verified tokens are kept. If zero, 10000.
	CacheSize int

	// HTTPClient sends the STS calls. If nil, a client on a clone of
	// http.DefaultTransport is used. Whatever the client, redirects are
	// never followed.
	HTTPClient *http.Client

	// Limiter, if set, is consulted by VerifyFor.
	Limiter *FailureLimiter

	// MaxInFlight bounds the STS calls in flight at once, for all clients
	// together (iam.max_verifications). A new token that would need one
	// more gets ErrBusy (503). If zero, 64.
	MaxInFlight int

	// MaxInFlightPerClient bounds the STS calls in flight at once for one
	// client, as VerifyFor's key names it (iam.max_verifications_per_client).
	// A new token that would need one more gets ErrBusy (429). If zero, 4.
	MaxInFlightPerClient int

	// Now is the clock. If nil, time.Now is used.
	Now func() time.Time
}

// Identity is a verified AWS principal.
type Identity struct {
	ARN     string    // canonical: assumed-role sessions become their role ARN
	Account string    // 12-digit account ID
	UserID  string    // as STS reports it, e.g. "AROA…:session"
	Expires time.Time // when the token that proved it stops being accepted
}

// A Verifier checks IAM tokens. It is safe for concurrent use.
type Verifier struct {
	// Immutable after New.
	serverID                     string
	hosts                        hostRegion        // accepted signed host → region
	endpoints                    map[string]string // region → base URL, no trailing slash
	allow                        principal.Allowlist
	timeout                      time.Duration
	client                       *http.Client
	limiter                      *FailureLimiter
	now                          func() time.Time
	maxFlights, maxClientFlights int

	ctx    context.Context // ends the STS calls in flight; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // STS calls in flight

	mu            sync.Mutex
	cache         *cache               // guarded by mu
	flights       map[[32]byte]*flight // guarded by mu: STS calls in flight, by token hash
	clientFlights map[string]int       // guarded by mu: STS calls in flight per VerifyFor key
	closed        bool                 // guarded by mu
}

// flight is one STS call that any number of Verify calls wait for.
type flight struct {
	key  string        // immutable: the VerifyFor key of the call that started it, "" for Verify
	done chan struct{} // closed by callSTS when id and err are set
	id   Identity
	err  *Error
}

type configError struct {
	key, msg string
}

func (e *configError) Error() string { return e.key + ": " + e.msg }

func quote(s string) string { return strconv.Quote(s) }

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)

// New validates cfg and returns a Verifier. Its errors name the
// configuration key at fault and the fix.
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{
		serverID:  cfg.ServerID,
		hosts:     hostRegion{},
		endpoints: map[string]string{},
		timeout:   cfg.Timeout,
		limiter:   cfg.Limiter,
		now:       cfg.Now,
		flights:   map[[32]byte]*flight{},

		clientFlights:    map[string]int{},
		maxFlights:       cfg.MaxInFlight,
		maxClientFlights: cfg.MaxInFlightPerClient,
	}
	if v.serverID == "" {
		return nil, &configError{key: "iam.server_id", msg: "empty; set it to this exit's ID (--iam-server-id) and give agents the same value"}
	}
	if len(cfg.Allow) == 0 {
		return nil, &configError{key: "iam.allow", msg: "empty; list the account IDs or role/user ARNs to let in (--iam-allow)"}
	}
	var err error
	if v.allow, err = principal.ParseAllowlist(cfg.Allow); err != nil {
		return nil, &configError{key: "iam.allow", msg: err.Error()}
	}
	regions := slices.Clone(cfg.Regions)
	if len(regions) == 0 {
		for r := range cfg.Endpoints {
			regions = append(regions, r)
		}
		slices.Sort(regions)
	}
	if len(regions) == 0 {
		return nil, &configError{key: "iam.regions", msg: "no STS region accepted; name the agents' regions, or give iam.sts_endpoint REGION=URL"}
	}
	for _, r := range regions {
		if !regionRE.MatchString(r) {
			return nil, &configError{key: "iam.regions", msg: quote(r) + " is not an AWS region name such as eu-west-1"}
		}
		v.hosts[stsHost(r)] = r
		v.endpoints[r] = "https://" + stsHost(r)
	}
	for r, raw := range cfg.Endpoints {
		if _, ok := v.endpoints[r]; !ok {
			return nil, &configError{key: "iam.sts_endpoint", msg: "region " + quote(r) + " is not among the accepted regions " + fmt.Sprint(regions)}
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
			return nil, &configError{key: "iam.sts_endpoint", msg: "entry for " + r + " is not a base URL such as https://sts." + r + ".amazonaws.com"}
		}
		v.endpoints[r] = u.Scheme + "://" + u.Host
	}
	if v.timeout == 0 {
		v.timeout = 5 * time.Second
	}
	if v.timeout < 0 {
		return nil, &configError{key: "iam.timeout", msg: "negative"}
	}
	size := cfg.CacheSize
	if size == 0 {
		size = 10000
	}
	if size < 0 {
		return nil, &configError{key: "iam.cache_size", msg: "negative"}
	}
	v.cache = newCache(size)
	if v.maxFlights == 0 {
		v.maxFlights = 64
	}
	if v.maxClientFlights == 0 {
		v.maxClientFlights = 4
	}
	if v.maxFlights < 0 {
		return nil, &configError{key: "iam.max_verifications", msg: "negative"}
	}
	if v.maxClientFlights < 0 {
		return nil, &configError{key: "iam.max_verifications_per_client", msg: "negative"}
	}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		v.client = &c
	} else {
		v.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	v.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if v.now == nil {
		v.now = time.Now
	}
	v.ctx, v.cancel = context.WithCancel(context.Background())
	return v, nil
}

// Close ends the STS calls in flight, waits for them, and closes idle
// connections. Verify calls after Close fail with ErrClosed unless their
// token is cached.
func (v *Verifier) Close() error {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cancel()
	v.wg.Wait()
	v.client.CloseIdleConnections()
	return nil
}

// Verify checks token and returns the identity it proves, if the allowlist
// lets it in. A token verified before is answered from the cache until it
// expires, without a lock held across any STS call; concurrent calls for
// the same new token share one STS call. ctx bounds the wait, not the STS
// call, which other callers may share: that is bounded by Config.Timeout.
// Every error is an *Error.
func (v *Verifier) Verify(ctx context.Context, token string) (Identity, error) {
	id, err := v.verify(ctx, "", token)
	if err != nil {
		return Identity{}, err
	}
	return id, nil
}

// VerifyFor is Verify for the client named by key (for example its
// certificate's common name), applying Config.Limiter and
// MaxInFlightPerClient: cached tokens pass as usual, but a client whose
// recent failures used up its budget gets ErrTooManyFailures (status 429)
// before any STS call, and each of its ErrInvalidToken and ErrNotAllowed
// failures is counted. An STS call counts as a failure from the moment it
// starts, and is given back if STS confirms an allowed identity or cannot
// be asked, so a burst of concurrent bad tokens costs no more STS calls
// than the budget holds. Missing tokens and STS outages are not counted.
func (v *Verifier) VerifyFor(ctx context.Context, key, token string) (Identity, error) {
	id, err := v.verify(ctx, key, token)
	if err != nil {
		return Identity{}, err
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, key, token string) (Identity, *Error) {
	if token == "" {
		return Identity{}, &Error{Status: http.StatusProxyAuthRequired, Reason: "no IAM token; send Proxy-Authorization: Bearer <token> (fluidity token prints one)", Err: ErrNoToken}
	}
	id, err, counted := v.identify(ctx, key, token)
	if err == nil && !v.allow.Allows(mustCanonical(id.ARN)) {
		err = notAllowed(id.ARN + " is not in iam.allow")
	}
	if !counted && err != nil && key != "" && v.limiter != nil && (err.Err == ErrInvalidToken || err.Err == ErrNotAllowed) {
		v.limiter.Failed(key)
	}
	return id, err
}

func mustCanonical(s string) principal.ARN {
	a, _ := principal.Canonical(s) // checked when the identity was cached
	return a
}

// identify returns the identity token proves, from the cache or from STS.
// counted reports that the limiter has already been told of the outcome:
// the result came from an STS call, which was counted as a failure when it
// started (see callSTS); callers that shared the call count nothing, so
// concurrent identical tokens cost one call and at most one failure.
func (v *Verifier) identify(ctx context.Context, key, token string) (id Identity, err *Error, counted bool) {
	if len(token) > MaxTokenSize {
		return Identity{}, invalid("token longer than " + strconv.Itoa(MaxTokenSize) + " bytes"), false
	}
	h := sha256.Sum256([]byte(token))
	now := v.now()

	v.mu.Lock()
	if id, ok := v.cache.get(h, now); ok {
		v.mu.Unlock()
		return id, nil, false
	}
	v.mu.Unlock()

	limited := key != "" && v.limiter != nil
	if limited {
		if ok, wait := v.limiter.Allow(key); !ok {
			return Identity{}, tooManyFailures(wait), false
		}
	}

	p, perr := parseToken(token, v.hosts, ServerIDHeader, now)
	if perr != nil {
		return Identity{}, perr, false
	}

	v.mu.Lock()
	if id, ok := v.cache.get(h, now); ok { // verified while we parsed
		v.mu.Unlock()
		return id, nil, false
	}
	f, ok := v.flights[h]
	if !ok {
		if f, err = v.startFlightLocked(h, p, key, limited); err != nil {
			v.mu.Unlock()
			return Identity{}, err, false
		}
	}
	v.mu.Unlock()

	select {
	case <-f.done:
		return f.id, f.err, true
	case <-ctx.Done():
		return Identity{}, unavailable("gave up waiting for STS: " + ctx.Err().Error()), true
	}
}

// startFlightLocked starts an STS call for the token with hash h, if the
// bounds on calls in flight and the client's failure budget allow one. The
// call is counted as one of the client's failures from now on.
func (v *Verifier) startFlightLocked(h [32]byte, p *presigned, key string, limited bool) (*flight, *Error) {
	if v.closed {
		return nil, &Error{Status: http.StatusServiceUnavailable, Reason: "exit shutting down", Err: ErrClosed}
	}
	if len(v.flights) >= v.maxFlights {
		return nil, &Error{Status: http.StatusServiceUnavailable, Err: ErrBusy, RetryAfter: time.Second,
			Reason: strconv.Itoa(v.maxFlights) + " IAM verifications are in flight, the exit's limit (iam.max_verifications); retry in a moment"}
	}
	if key != "" && v.clientFlights[key] >= v.maxClientFlights {
		return nil, &Error{Status: http.StatusTooManyRequests, Err: ErrBusy, RetryAfter: time.Second,
			Reason: strconv.Itoa(v.maxClientFlights) + " IAM verifications of this client are in flight, its limit (iam.max_verifications_per_client); retry in 1s, or reuse one token"}
	}
	if limited {
		if ok, wait := v.limiter.Take(key); !ok {
			return nil, tooManyFailures(wait)
		}
	}
	f := &flight{key: key, done: make(chan struct{})}
	v.flights[h] = f
	if key != "" {
		v.clientFlights[key]++
	}
	v.wg.Add(1)
	go v.callSTS(h, p, f, limited)
	return f, nil
}

func tooManyFailures(wait time.Duration) *Error {
	wait = wait.Round(time.Second) + time.Second
	return &Error{Status: http.StatusTooManyRequests, Err: ErrTooManyFailures, RetryAfter: wait,
		Reason: "too many failed IAM attempts; retry in " + strconv.Itoa(int(wait/time.Second)) + "s"}
}

// callSTS runs one flight: it asks STS, caches a success, gives the
// client's failure back unless the token failed, and wakes the waiters. It
// holds no lock while STS is called.
func (v *Verifier) callSTS(h [32]byte, p *presigned, f *flight, limited bool) {
	defer v.wg.Done()
	ctx, cancel := context.WithTimeout(v.ctx, v.timeout)
	id, err := v.ask(ctx, p)
	cancel()
	failed := err != nil && err.Err == ErrInvalidToken || err == nil && !v.allow.Allows(mustCanonical(id.ARN))

	v.mu.Lock()
	if err == nil {
		v.cache.put(h, id, v.now())
	}
	delete(v.flights, h)
	if f.key != "" {
		if v.clientFlights[f.key]--; v.clientFlights[f.key] <= 0 {
			delete(v.clientFlights, f.key)
		}
	}
	v.mu.Unlock()
	if limited && !failed {
		v.limiter.Refund(f.key)
	}
	f.id, f.err = id, err
	close(f.done)
}

// ask sends the checked request to the configured endpoint of its region
// and checks the answer.
func (v *Verifier) ask(ctx context.Context, p *presigned) (Identity, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.endpoints[p.region]+"/?"+p.query.Encode(), nil)
	if err != nil {
		return Identity{}, unavailable("build STS request: " + err.Error())
	}
	req.Host = p.host
	req.Header.Set(ServerIDHeader, v.serverID)
	req.Header.Set("User-Agent", "fluidity-iam-verifier")
	resp, err := v.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return Identity{}, unavailable("STS did not answer within " + v.timeout.String())
		}
		if v.ctx.Err() != nil {
			return Identity{}, &Error{Status: http.StatusServiceUnavailable, Reason: "exit shutting down", Err: ErrClosed}
		}
		return Identity{}, unavailable("STS unreachable: " + err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return Identity{}, unavailable("read STS response: " + err.Error())
	}

	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return Identity{}, unavailable("STS answered " + resp.Status + stsCode(body))
	case resp.StatusCode >= 400:
		return Identity{}, invalid("STS refused the token (" + resp.Status + stsCode(body) + ")")
	default:
		// Redirects in particular: never followed, never trusted.
		return Identity{}, unavailable("STS answered " + resp.Status + "; not followed")
	}

	if len(body) > maxResponseSize {
		return Identity{}, invalid("STS response larger than " + strconv.Itoa(maxResponseSize) + " bytes")
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/xml" {
		return Identity{}, invalid("STS response content type " + quote(clip(resp.Header.Get("Content-Type"))) + " is not text/xml")
	}
	ci, err := parseResponse(body)
	if err != nil {
		return Identity{}, invalid("STS response is not a well-formed GetCallerIdentityResponse")
	}
	c, err := principal.Canonical(ci.ARN)
	if err != nil {
		return Identity{}, invalid("STS reported an unusable ARN " + quote(clip(ci.ARN)))
	}
	if ci.Account != c.Account {
		return Identity{}, invalid("STS reported account " + quote(clip(ci.Account)) + " for an ARN of account " + c.Account)
	}
	return Identity{ARN: c.String(), Account: c.Account, UserID: ci.UserID, Expires: p.expires}, nil
}

// stsCode formats the error code of an STS error body for a reason.
func stsCode(body []byte) string {
	if c := parseSTSError(body); c != "" {
		return ": " + c
	}
	return ""
}
