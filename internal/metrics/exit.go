package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Exit is the exit server's metric set. Its methods make it an
// exit.Observer.
type Exit struct {
	ids *identitySet // immutable

	linksOpen       prometheus.Gauge
	linksTotal      prometheus.Counter
	linksRefused    *prometheus.CounterVec
	linksRevoked    prometheus.Counter
	handshakeFailed *prometheus.CounterVec
	streamsOpen     prometheus.Gauge
	streamsTotal    prometheus.Counter
	results         *prometheus.CounterVec
	bytes           *prometheus.CounterVec
	bytesUp         prometheus.Counter
	bytesDown       prometheus.Counter
	setup           prometheus.Histogram
	idStreams       *prometheus.CounterVec
	idBytes         *prometheus.CounterVec
}

// Reasons a link is refused (the reason label of
// fluidity_exit_links_refused_total).
const (
	LinkRefusedMaxLinks     = "max_links"
	LinkRefusedMaxPerClient = "max_links_per_client"
	LinkRefusedMaxTunnels   = "max_tunnels_per_client"
)

// NewExit registers the exit's metrics on reg. Per-identity series are kept
// for the first identityLimit identities (IdentityLimit if zero).
func NewExit(reg prometheus.Registerer, identityLimit int) *Exit {
	if identityLimit <= 0 {
		identityLimit = IdentityLimit
	}
	m := &Exit{
		ids: newIdentitySet(identityLimit),
		linksOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fluidity_exit_links_open",
			Help: "Client connections open now, after a successful TLS handshake (agent HTTP/2 links and HTTP/1.1 CONNECT connections)."}),
		linksTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluidity_exit_links_total",
			Help: "Client connections accepted after a successful TLS handshake and the link limits."}),
		linksRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_exit_links_refused_total",
			Help: "Client connections refused after the TLS handshake because a limit was reached, by limit: max_links, max_links_per_client or max_tunnels_per_client."}, []string{"reason"}),
		linksRevoked: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluidity_exit_links_revoked_total",
			Help: "Open client connections closed because their client certificate was revoked while they were open."}),
		handshakeFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_exit_tls_handshake_failures_total",
			Help: "TLS handshakes that failed, by reason (no client certificate, certificate revoked, unknown certificate authority, timeout, not TLS, ...)."}, []string{"reason"}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{Name: "fluidity_exit_streams_open",
			Help: "Streams open now: the target was dialed and bytes are being relayed."}),
		streamsTotal: prometheus.NewCounter(prometheus.CounterOpts{Name: "fluidity_exit_streams_total",
			Help: "Streams accepted: the identity check passed and the target was dialed."}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_exit_stream_results_total",
			Help: "CONNECT requests by how they ended: ok, bad_request, refused (egress policy), auth_failed, dial_failed, reset, canceled."}, []string{"reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_exit_bytes_total",
			Help: "Bytes relayed by ended streams: direction up is from clients to targets, down from targets to clients."}, []string{"direction"}),
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fluidity_exit_stream_setup_seconds",
			Help: "Time from a CONNECT request's arrival to its target being dialed (identity check included), for accepted streams.", Buckets: setupBuckets}),
		idStreams: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_exit_identity_streams_total",
			Help: "Streams accepted per identity: the IAM identity if the stream proved one, else the client certificate's name. Identities beyond the first " + strconv.Itoa(identityLimit) + " are counted as \"other\"."}, []string{"identity"}),
		idBytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_exit_identity_bytes_total",
			Help: "Bytes relayed per identity and direction (up: to targets, down: to clients). Identities beyond the first " + strconv.Itoa(identityLimit) + " are counted as \"other\"."}, []string{"identity", "direction"}),
	}
	m.bytesUp = m.bytes.WithLabelValues("up")
	m.bytesDown = m.bytes.WithLabelValues("down")
	for _, r := range Reasons {
		if r != ReasonLinkDown {
			m.results.WithLabelValues(r)
		}
	}
	m.linksRefused.WithLabelValues(LinkRefusedMaxLinks)
	m.linksRefused.WithLabelValues(LinkRefusedMaxPerClient)
	m.linksRefused.WithLabelValues(LinkRefusedMaxTunnels)
	reg.MustRegister(m.linksOpen, m.linksTotal, m.linksRefused, m.linksRevoked, m.handshakeFailed, m.streamsOpen,
		m.streamsTotal, m.results, m.bytes, m.setup, m.idStreams, m.idBytes)
	return m
}

// HandshakeFailed counts a failed TLS handshake.
func (m *Exit) HandshakeFailed(reason string) { m.handshakeFailed.WithLabelValues(reason).Inc() }

// LinkRefused counts a connection refused by a link limit.
func (m *Exit) LinkRefused(reason string) { m.linksRefused.WithLabelValues(reason).Inc() }

// LinkRevoked counts an open connection closed because its client
// certificate was revoked.
func (m *Exit) LinkRevoked() { m.linksRevoked.Inc() }

// LinkOpened counts an accepted connection.
func (m *Exit) LinkOpened() {
	m.linksTotal.Inc()
	m.linksOpen.Inc()
}

// LinkClosed counts the end of an accepted connection.
func (m *Exit) LinkClosed() { m.linksOpen.Dec() }

// StreamStarted counts a stream whose target was dialed after setup.
func (m *Exit) StreamStarted(setup time.Duration) {
	m.streamsTotal.Inc()
	m.streamsOpen.Inc()
	m.setup.Observe(setup.Seconds())
}

// StreamEnded counts a CONNECT request's result; started says whether
// StreamStarted was called for it. identity is who made it.
func (m *Exit) StreamEnded(identity, reason string, started bool, up, down int64) {
	m.results.WithLabelValues(reason).Inc()
	if !started {
		return
	}
	m.streamsOpen.Dec()
	m.bytesUp.Add(float64(up))
	m.bytesDown.Add(float64(down))
	id := m.ids.label(identity)
	m.idStreams.WithLabelValues(id).Inc()
	m.idBytes.WithLabelValues(id, "up").Add(float64(up))
	m.idBytes.WithLabelValues(id, "down").Add(float64(down))
}
