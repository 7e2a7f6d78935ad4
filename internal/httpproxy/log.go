package httpproxy

import (
	"context"
	"log/slog"
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

	mu     sync.Mutex
	status int   // guarded by mu; the status the client got
	err    error // guarded by mu; the first failure
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

// logEnd writes the exchange's one log line.
func (x *exchange) logEnd(log *slog.Logger, msg string) {
	x.mu.Lock()
	status, err := x.status, x.err
	x.mu.Unlock()
	result := "ok"
	if err != nil {
		result = err.Error()
	}
	log.LogAttrs(context.Background(), slog.LevelInfo, msg,
		slog.String("client", x.client),
		slog.String("target", x.target),
		slog.String("method", x.method),
		slog.Int("status", status),
		slog.Int64("up", x.up.Load()),
		slog.Int64("down", x.down.Load()),
		slog.Duration("duration", time.Since(x.start)),
		slog.String("result", result),
	)
}

// exchangeKey carries the *exchange of a forwarded request in its context.
type exchangeKey struct{}

func exchangeFrom(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}
