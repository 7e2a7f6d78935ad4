// Package admin is the admin listener of the agent and the exit: a small
// HTTP server, separate from the proxy port, that answers
//
//	/metrics        Prometheus metrics (text exposition format)
//	/healthz        200 while the process is alive
//	/readyz         200 when the service is ready, else 503 with one line saying why
//	/status         the service's status as JSON, which 'fluidity status' reads (the agent's
//	                link; the exit's streams, idle time and lease)
//	/debug/pprof/   net/http/pprof, only when Config.Pprof is set
//
// It has no authentication: keep it on loopback or a private network.
//
// # DNS rebinding
//
// A web page cannot read a loopback server's answers under its own origin,
// but it can point a name it owns at 127.0.0.1 (DNS rebinding) and read
// them under that name. On a listener bound to a loopback address, Serve
// therefore answers only requests whose Host is localhost or a loopback
// address, with any port; any other Host gets 403, as other local admin
// APIs do. A listener bound to another address (an exit's admin on a
// private network, reached by its own host names) takes any Host.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"fluidity/internal/acceptloop"
)

// Config configures a Server. A zero Config serves /healthz, an always
// ready /readyz and no metrics.
type Config struct {
	// Gatherer is what /metrics serves. If nil, /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Ready reports why the service is not ready, or nil when it is. If
	// nil, the service is ready while the admin listener is up.
	Ready func() error
	// Status returns the value /status serves as JSON. If nil, /status
	// answers 404.
	Status func() any
	// Pprof serves net/http/pprof under /debug/pprof/.
	Pprof bool
	// Logger receives the server's errors. Nil discards them.
	Logger *slog.Logger
}

// Timeouts of the admin server: requests are small and local, but a stuck
// or hostile client must not hold a connection. WriteTimeout leaves room
// for a 30s CPU profile (pprof's default).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	shutdownTimeout   = 2 * time.Second
)

// Handler returns the admin endpoints.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if cfg.Ready != nil {
			if err := cfg.Ready(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintf(w, "not ready: %v\n", err)
				return
			}
		}
		fmt.Fprintln(w, "ready")
	})
	if cfg.Status != nil {
		mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			enc.Encode(cfg.Status())
		})
	}
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
			ErrorLog:      slogAdapter{cfg.Logger},
			ErrorHandling: promhttp.ContinueOnError,
		}))
	}
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// slogAdapter is promhttp's error log.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) {
	if a.log != nil {
		a.log.Warn("metrics: " + fmt.Sprint(v...))
	}
}

// Listen opens the admin listener. A non-loopback address is refused
// unless allowNonLoopback is set, with a message naming flag, the flag
// that gives consent.
func Listen(addr string, allowNonLoopback bool, flag string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen address %q: %w (example: 127.0.0.1:8081)", addr, err)
	}
	if !allowNonLoopback && !LocalHost(host) {
		return nil, fmt.Errorf("admin: refusing to listen on %q: it is not a loopback address, and the admin endpoints (status, metrics) have no authentication; use 127.0.0.1 or pass %s", addr, flag)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return ln, nil
}

// isLoopbackAddr reports whether a is a TCP address on a loopback IP.
func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// localOnly answers 403 to requests whose Host is not localhost or a
// loopback address (see the package documentation).
func localOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !LocalHost(r.Host) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "forbidden: Host %q is not localhost or a loopback address; this admin listener answers local clients only\n", r.Host)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// LocalHost reports whether hostport, a host or a Host header with or
// without a port, names localhost or a loopback address: what local
// endpoints answer, so that a web page cannot reach them through a name it
// rebinds to 127.0.0.1.
func LocalHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), ".")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Serve serves the admin endpoints on ln until ctx ends, then closes ln
// and the open connections and returns. ln is closed when Serve returns.
func Serve(ctx context.Context, ln net.Listener, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := Handler(cfg)
	if isLoopbackAddr(ln.Addr()) {
		h = localOnly(h)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
	// http.Server retries temporary accept failures too, but logs each
	// one; acceptloop logs a run of them once.
	err := srv.Serve(acceptloop.New(ln, log))
	if !stop() {
		<-done
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("admin: %w", err)
}
