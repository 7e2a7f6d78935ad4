package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AgentSnapshot is what the agent's metrics read at scrape time.
type AgentSnapshot struct {
	LinkState    string // connecting, up, down, asleep or stopped
	LinkSince    time.Time
	LinksUp      int // links of the pool that are up
	Reconnects   int
	RTT          time.Duration
	ConnsOpen    int64 // client connections open
	ConnsRefused int64 // client connections refused by max_connections
	StreamsOpen  int64 // tunnel streams opened by the agent and not yet closed
	StreamsTotal int64
	BytesUp      int64 // to the exit, counted when streams close
	BytesDown    int64
}

// Agent is the agent's metric set. Its methods make it an agent.Observer;
// the rest is read from the snapshot func at scrape time.
type Agent struct {
	snapshot func() AgentSnapshot // immutable
	setup    prometheus.Histogram
	results  *prometheus.CounterVec

	descs struct {
		linkUp, linksUp, linkState, reconnects, lastChange, rtt *prometheus.Desc
		connsOpen, connsRefused, streamsOpen, streamsTotal, byt *prometheus.Desc
	}
}

// Front-ends (the frontend label of fluidity_agent_stream_results_total).
var frontends = []string{"connect", "forward", "socks5"}

// NewAgent registers the agent's metrics on reg. snapshot is called once
// per scrape.
func NewAgent(reg prometheus.Registerer, snapshot func() AgentSnapshot) *Agent {
	m := &Agent{
		snapshot: snapshot,
		setup: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fluidity_agent_stream_setup_seconds",
			Help: "Time to open a tunnel stream, from a client's request to the exit's answer that the target is connected (successful streams only).", Buckets: setupBuckets}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fluidity_agent_stream_results_total",
			Help: "Client requests by front-end (connect: HTTP CONNECT, forward: a forwarded HTTP request, socks5) and how they ended: ok, bad_request, refused, auth_failed, dial_failed, link_down, reset, canceled."}, []string{"frontend", "reason"}),
	}
	d := &m.descs
	d.linkUp = prometheus.NewDesc("fluidity_agent_link_up", "1 if a tunnel link to the exit is up, else 0.", nil, nil)
	d.linksUp = prometheus.NewDesc("fluidity_agent_links_up", "Tunnel links to the exit that are up, of the pool of the agent's links setting.", nil, nil)
	d.linkState = prometheus.NewDesc("fluidity_agent_link_state", "The state of the agent's links (up while any is up): 1 for the current one of connecting, up, down, asleep and stopped, 0 for the others.", []string{"state"}, nil)
	d.reconnects = prometheus.NewDesc("fluidity_agent_link_reconnects_total", "Links to the exit established after the first one of each link of the pool.", nil, nil)
	d.lastChange = prometheus.NewDesc("fluidity_agent_link_last_change_timestamp_seconds", "When the link's state last changed, in Unix seconds.", nil, nil)
	d.rtt = prometheus.NewDesc("fluidity_agent_link_rtt_seconds", "Round-trip time to the exit measured by the last ping, the least over the links up (0 while none is).", nil, nil)
	d.connsOpen = prometheus.NewDesc("fluidity_agent_connections_open", "Client connections open on the proxy port.", nil, nil)
	d.connsRefused = prometheus.NewDesc("fluidity_agent_connections_refused_total", "Client connections closed at once because max_connections were open.", nil, nil)
	d.streamsOpen = prometheus.NewDesc("fluidity_agent_streams_open", "Tunnel streams open: CONNECT and SOCKS5 tunnels and upstream connections of forwarded requests (including idle keep-alive ones).", nil, nil)
	d.streamsTotal = prometheus.NewDesc("fluidity_agent_streams_total", "Tunnel streams opened (the exit connected the target).", nil, nil)
	d.byt = prometheus.NewDesc("fluidity_agent_bytes_total", "Bytes carried by closed tunnel streams: direction up is to the exit, down from it.", []string{"direction"}, nil)
	for _, f := range frontends {
		for _, r := range Reasons {
			m.results.WithLabelValues(f, r)
		}
	}
	reg.MustRegister(m.setup, m.results, m)
	return m
}

// StreamOpened records the set-up time of a tunnel stream.
func (m *Agent) StreamOpened(setup time.Duration) { m.setup.Observe(setup.Seconds()) }

// Result counts a client request's result.
func (m *Agent) Result(frontend, reason string) { m.results.WithLabelValues(frontend, reason).Inc() }

// Describe implements prometheus.Collector for the snapshot metrics.
func (m *Agent) Describe(ch chan<- *prometheus.Desc) {
	d := &m.descs
	for _, x := range []*prometheus.Desc{d.linkUp, d.linksUp, d.linkState, d.reconnects, d.lastChange, d.rtt,
		d.connsOpen, d.connsRefused, d.streamsOpen, d.streamsTotal, d.byt} {
		ch <- x
	}
}

// LinkStates are the values of the state label of fluidity_agent_link_state.
var LinkStates = []string{"connecting", "up", "down", "asleep", "stopped"}

// Collect implements prometheus.Collector for the snapshot metrics.
func (m *Agent) Collect(ch chan<- prometheus.Metric) {
	s := m.snapshot()
	d := &m.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, v, labels...)
	}
	up := 0.0
	if s.LinkState == "up" {
		up = 1
	}
	gauge(d.linkUp, up)
	gauge(d.linksUp, float64(s.LinksUp))
	for _, st := range LinkStates {
		v := 0.0
		if st == s.LinkState {
			v = 1
		}
		gauge(d.linkState, v, st)
	}
	counter(d.reconnects, float64(s.Reconnects))
	if !s.LinkSince.IsZero() {
		gauge(d.lastChange, float64(s.LinkSince.UnixNano())/1e9)
	}
	gauge(d.rtt, s.RTT.Seconds())
	gauge(d.connsOpen, float64(s.ConnsOpen))
	counter(d.connsRefused, float64(s.ConnsRefused))
	gauge(d.streamsOpen, float64(s.StreamsOpen))
	counter(d.streamsTotal, float64(s.StreamsTotal))
	counter(d.byt, float64(s.BytesUp), "up")
	counter(d.byt, float64(s.BytesDown), "down")
}
