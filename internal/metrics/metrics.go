package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Results of a stream (the reason label of the *_stream_results_total
// metrics and the reason attribute of the access log lines). Each names
// one cause, and a test pins each to it.
const (
	ReasonOK         = "ok"          // served to the end: both directions finished normally
	ReasonBadRequest = "bad_request" // malformed request or SOCKS5 negotiation
	ReasonPolicy     = "policy"      // refused by the exit's egress policy (seen from the agent, any 403 from the exit)
	ReasonAuthFailed = "auth_failed" // identity check failed: IAM token missing, invalid or not allowed
	ReasonRefused    = "refused"     // the target refused the connection (nothing listens there)
	ReasonTimeout    = "timeout"     // the target did not answer in time, or the stream was idle too long
	ReasonDialFailed = "dial_failed" // the target could not be reached otherwise (DNS, unreachable)
	ReasonLinkDown   = "link_down"   // agent only: no link to the exit
	ReasonReset      = "reset"       // aborted after it was set up: a reset from either end, or the link lost
	ReasonCanceled   = "canceled"    // the client went away or the process stopped before the stream was set up
)

// Reasons lists every Reason value.
var Reasons = []string{ReasonOK, ReasonBadRequest, ReasonPolicy, ReasonAuthFailed, ReasonRefused,
	ReasonTimeout, ReasonDialFailed, ReasonLinkDown, ReasonReset, ReasonCanceled}

// NewRegistry returns a registry with the Go runtime and process
// collectors registered.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// setupBuckets are the stream set-up latency buckets, in seconds: from a
// millisecond (a warm link, a nearby target) to 30s (dial timeouts).
var setupBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// IdentityLimit is how many distinct identities get series of their own
// when none is given; later ones are counted as "other".
const IdentityLimit = 100

// OtherIdentity is the label of identities beyond the limit.
const OtherIdentity = "other"

// identitySet maps identities to themselves until it holds limit of them,
// and everything else to OtherIdentity. Identities are never forgotten: the
// series of a counter must not vanish while the process lives.
type identitySet struct {
	limit int // immutable

	mu   sync.Mutex
	seen map[string]struct{} // guarded by mu
}

func newIdentitySet(limit int) *identitySet {
	return &identitySet{limit: limit, seen: make(map[string]struct{})}
}

// label returns the label value for id.
func (s *identitySet) label(id string) string {
	if id == OtherIdentity {
		return id
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[id]; ok {
		return id
	}
	if len(s.seen) >= s.limit {
		return OtherIdentity
	}
	s.seen[id] = struct{}{}
	return id
}
