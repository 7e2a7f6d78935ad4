package httpproxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"fluidity/internal/fastopen"
)

// Upstream keep-alive limits. Every idle upstream connection is an open
// tunnel stream (some 20 KB across agent and exit), so the pool is bounded
// and short-lived, but large enough that many clients of one site reuse
// streams instead of opening a new one per request.
const (
	maxIdleConns        = 256
	maxIdleConnsPerHost = 64
	idleConnTimeout     = 60 * time.Second
)

// Handler is the HTTP proxy front-end. A zero Handler with Dial set is ready
// to use; it must not be copied after first use.
type Handler struct {
	// Dial opens a connection to addr ("host:port") through the tunnel. It
	// is called once per CONNECT request and once per new upstream
	// connection of forwarded requests. Errors may implement
	// StatusCode() int and ProxyStatus() string to say why (see the package
	// documentation). If nil, every request is answered 503: the handler
	// never falls back to dialing directly.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// FastOpen, if set, opens CONNECT tunnels to the ports it names
	// optimistically (see package fastopen): the client gets its 200 at
	// once, and a refused target reaches it as a reset connection, with
	// the reason in the log line. Forwarded requests never use it.
	FastOpen *fastopen.Dialer

	// Logger receives one line per tunnel and per forwarded request. If
	// nil, nothing is logged.
	Logger *slog.Logger

	// Hooks observe the exchanges, for metrics.
	Hooks Hooks

	// TLSClientConfig configures TLS to origins of https:// absolute-URI
	// requests (rare: clients normally use CONNECT for HTTPS). If nil, the
	// system roots are used.
	TLSClientConfig *tls.Config

	once sync.Once
	// Set by once, immutable after.
	log       *slog.Logger
	transport *http.Transport
	proxy     *httputil.ReverseProxy
	ctx       context.Context // canceled by Close
	cancel    context.CancelFunc

	mu     sync.Mutex
	closed bool           // guarded by mu
	active sync.WaitGroup // requests that take over their connection; Add under mu
}

// init builds the transport and reverse proxy on first use.
func (h *Handler) init() {
	h.once.Do(func() {
		h.ctx, h.cancel = context.WithCancel(context.Background())
		h.log = h.Logger
		if h.log == nil {
			h.log = slog.New(slog.DiscardHandler)
		}
		var tlsConfig *tls.Config
		if h.TLSClientConfig != nil {
			tlsConfig = h.TLSClientConfig.Clone()
		}
		h.transport = &http.Transport{
			Proxy:                  nil,
			DialContext:            h.dial,
			TLSClientConfig:        tlsConfig,
			TLSHandshakeTimeout:    10 * time.Second,
			ForceAttemptHTTP2:      false,
			DisableCompression:     true,
			MaxIdleConns:           maxIdleConns,
			MaxIdleConnsPerHost:    maxIdleConnsPerHost,
			IdleConnTimeout:        idleConnTimeout,
			ExpectContinueTimeout:  1 * time.Second,
			MaxResponseHeaderBytes: 1 << 20,
		}
		h.proxy = &httputil.ReverseProxy{
			Rewrite:   rewrite,
			Transport: h.transport,
			// responseWriter flushes after every write: a flush interval
			// would cost a timer goroutine and a separate write of the
			// header for every response.
			FlushInterval:  0,
			BufferPool:     copyBuffers{},
			ModifyResponse: modifyResponse,
			ErrorHandler:   h.forwardError,
			ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
		}
	})
}

// ServeHTTP proxies r: CONNECT requests become tunnels, absolute-URI requests
// are forwarded, and anything else gets a page that explains how to use the
// proxy.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.init()
	if r.Method == http.MethodConnect {
		h.serveConnect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" || isOwnAddress(r) {
		serveInfo(w, r)
		return
	}
	switch strings.ToLower(r.URL.Scheme) {
	case "http", "https", "ws", "wss":
	default:
		writeError(w, http.StatusBadRequest, "", fmt.Sprintf(
			"fluidity: cannot proxy %s URLs; only http and https URLs can be forwarded (other protocols can use CONNECT)",
			r.URL.Scheme))
		return
	}
	h.serveForward(w, r)
}

// Close ends the tunnels and upgraded connections in progress, waits for
// them to finish, and closes the idle upstream connections kept for
// keep-alive. Requests that arrive after Close are answered 503. Close does
// not wait for ordinary forwarded requests, which the HTTP server still owns;
// they are canceled.
func (h *Handler) Close() error {
	h.init()
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	h.active.Wait()
	h.transport.CloseIdleConnections()
	return nil
}

// CloseIdleConnections closes the idle upstream connections kept for
// keep-alive (each one a tunnel stream), leaving those in use alone.
func (h *Handler) CloseIdleConnections() {
	h.init()
	h.transport.CloseIdleConnections()
}

// begin registers a request that may take over its connection. It reports
// false after Close.
func (h *Handler) begin() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.active.Add(1)
	return true
}

// isClosed reports whether Close has been called.
func (h *Handler) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// requestContext returns a context that ends with the request or with the
// handler, whichever comes first.
func (h *Handler) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(h.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

// dial is Dial, or an error saying there is none.
func (h *Handler) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if h.Dial == nil {
		return nil, errNoDialer
	}
	return h.Dial(ctx, network, addr)
}

// serveInfo answers a request that was sent to the proxy as if it were a web
// server.
func serveInfo(w http.ResponseWriter, r *http.Request) {
	addr := "127.0.0.1:8080"
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		addr = a.String()
	}
	writeError(w, http.StatusBadRequest, "", fmt.Sprintf(
		"This is the Fluidity proxy; configure it as an HTTP proxy, e.g.\n\n"+
			"    curl -x http://%s https://example.com\n\n"+
			"It does not serve pages itself.", addr))
}

// isOwnAddress reports whether the absolute URL of r names the address the
// request arrived on, so forwarding it would ask the proxy for itself.
func isOwnAddress(r *http.Request) bool {
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return false
	}
	lhost, lport, err := net.SplitHostPort(local.String())
	if err != nil {
		return false
	}
	port := r.URL.Port()
	if port == "" {
		port = defaultPort(r.URL.Scheme)
	}
	if port != lport {
		return false
	}
	host := r.URL.Hostname()
	if strings.EqualFold(host, "localhost") {
		host = "127.0.0.1"
	}
	hip, lip := net.ParseIP(host), net.ParseIP(lhost)
	if hip == nil || lip == nil {
		return false
	}
	return hip.Equal(lip) || (hip.IsLoopback() && lip.IsLoopback())
}

// defaultPort is the port implied by a URL scheme.
func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "https", "wss":
		return "443"
	default:
		return "80"
	}
}

// copyBuffers lends the reverse proxy its 32 KiB copy buffers, which it
// would otherwise allocate for every response.
type copyBuffers struct{}

var copyBufferPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (copyBuffers) Get() []byte  { return *copyBufferPool.Get().(*[]byte) }
func (copyBuffers) Put(b []byte) { copyBufferPool.Put(&b) }
