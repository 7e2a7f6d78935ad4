package httpproxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// exchange is what one tunnel or forwarded request logs when it ends.
type exchange struct {
	// Immutable after newExchange.
	start  time.Time
	client string
	target string
	method string

	// Counted by body and connection wrappers, possibly from the
	// transport's and the upgrade copier's goroutines.
	up   atomic.Int64 // bytes sent to the target
	down atomic.Int64 // bytes received from the target

	// upstream is the connection (a tunnel stream) a forwarded request
	// went out on, recorded by the transport's trace, so a request body
	// that breaks off can abort it.
	upstream atomic.Pointer[net.Conn]

	mu         sync.Mutex
	status     int   // guarded by mu; the status the client got
	err        error // guarded by mu; the first failure
	badRequest bool  // guarded by mu; the client's request was malformed
	connected  bool  // guarded by mu; the target answered (or the tunnel was set up)
}

// Hooks let a Handler's owner observe the exchanges it serves, for metrics
// and the access log. Every field is optional.
type Hooks struct {
	// Ended is called once per CONNECT tunnel and per forwarded request
	// when it ends, on the request's goroutine, just before its log line.
	// The reason it returns, if not empty, is logged as the line's
	// "reason" attribute.
	Ended func(Exchange) (reason string)
}

// Exchange describes an ended CONNECT tunnel or forwarded request.
type Exchange struct {
	Connect    bool   // a CONNECT tunnel; else a forwarded request
	Target     string // host:port
	Status     int    // the HTTP status the client got, 0 if none
	BadRequest bool   // the client's request was malformed
	Connected  bool   // the target was reached: the tunnel was set up, or the origin answered
	Up, Down   int64  // bytes sent to and received from the target
	Err        error  // why it failed; nil for success
}

func newExchange(r *http.Request, target string) *exchange {
	return &exchange{
		start:  time.Now(),
		client: r.RemoteAddr,
		target: target,
		method: r.Method,
	}
}

// setStatus records the status the client got.
func (x *exchange) setStatus(status int) {
	x.mu.Lock()
	x.status = status
	x.mu.Unlock()
}

// fail records err as the reason the exchange failed, unless an earlier
// failure was recorded.
func (x *exchange) fail(err error) {
	x.mu.Lock()
	if x.err == nil {
		x.err = err
	}
	x.mu.Unlock()
}

// markBadRequest records that the client's request was malformed.
func (x *exchange) markBadRequest() {
	x.mu.Lock()
	x.badRequest = true
	x.mu.Unlock()
}

// markConnected records that the target was reached.
func (x *exchange) markConnected() {
	x.mu.Lock()
	x.connected = true
	x.mu.Unlock()
}

// logEnd reports the exchange to the hooks and writes its one log line.
func (h *Handler) logEnd(x *exchange, msg string) {
	x.mu.Lock()
	e := Exchange{Connect: x.method == http.MethodConnect, Target: x.target, Status: x.status,
		BadRequest: x.badRequest, Connected: x.connected, Up: x.up.Load(), Down: x.down.Load(), Err: x.err}
	x.mu.Unlock()
	var reason string
	if h.Hooks.Ended != nil {
		reason = h.Hooks.Ended(e)
	}
	result := "ok"
	if e.Err != nil {
		result = e.Err.Error()
	}
	attrs := []slog.Attr{
		slog.String("client", x.client),
		slog.String("target", x.target),
		slog.String("method", x.method),
		slog.Int("status", e.Status),
		slog.Int64("up", e.Up),
		slog.Int64("down", e.Down),
		slog.Duration("duration", time.Since(x.start)),
		slog.String("result", result),
	}
	if reason != "" {
		attrs = append(attrs, slog.String("reason", reason))
	}
	h.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// exchangeKey carries the *exchange of a forwarded request in its context.
type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}
