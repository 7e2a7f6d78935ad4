// Package logsummary is a slog.Handler that keeps a flood of one warning
// from flooding the log: of the records of one kind from one client (same
// level, message and key attributes, such as client, remote host and
// reason), the first is written, and the rest are counted and written as
// one summary per interval:
//
//	level=WARN msg="tls handshake failed" remote=203.0.113.9:50122 reason="no client certificate" err=…
//	level=WARN msg="tls handshake failed" remote=203.0.113.9 reason="no client certificate" repeated=3511 window=10s
//
// The summary carries the record's key attributes (host:port values reduced
// to the host, since a client's port changes with each connection) and
// says how many records like it were left out in the window. Records below
// the handler's level (by default, everything under WARN: the line each
// stream gets at its end) pass through untouched.
package logsummary

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultKeys are the attributes that tell one kind of record, and one
// client, from another when Options.Keys is nil.
var DefaultKeys = []string{"client", "remote", "reason", "identity", "side"}

// Options configure a Handler. The zero Options are valid.
type Options struct {
	// Interval is the window of a summary: the first record of a kind is
	// written, and those that follow it within Interval are counted and
	// written as one summary at its end. If zero, 10s is used.
	Interval time.Duration
	// Level is the least level summarised. If nil, slog.LevelWarn.
	Level slog.Leveler
	// Keys are the attributes that, with the level and the message, make
	// a record's kind. If nil, DefaultKeys.
	Keys []string
	// MaxKinds bounds the kinds remembered at once; records of further
	// kinds are written in full. If zero, 10000.
	MaxKinds int
}

// A Handler summarises repeated records; see the package documentation.
// Close writes the summaries still pending.
type Handler struct {
	inner slog.Handler // immutable
	pre   []slog.Attr  // immutable; key attributes added with WithAttrs
	st    *state       // shared by the handlers WithAttrs and WithGroup derive
}

// state is what the handlers derived from one New share.
type state struct {
	interval time.Duration    // immutable
	level    slog.Leveler     // immutable
	keys     map[string]bool  // immutable
	maxKinds int              // immutable
	mu       sync.Mutex       //
	kinds    map[string]*kind // guarded by mu
	closed   bool             // guarded by mu
	wg       sync.WaitGroup   // summaries being written by timers
}

// kind is the records of one kind seen lately.
type kind struct {
	start      time.Time    // guarded by state.mu; when the current window began
	suppressed int          // guarded by state.mu; records left out in it
	timer      *time.Timer  // guarded by state.mu; writes the summary at the window's end; nil if nothing is left out
	gen        int          // guarded by state.mu; counts windows, so a late timer knows its window is over
	h          slog.Handler // immutable; the handler that wrote the first record
	level      slog.Level   // immutable
	msg        string       // immutable
	attrs      []slog.Attr  // immutable; the record's own key attributes
}

// New returns a Handler that writes through inner.
func New(inner slog.Handler, opts Options) *Handler {
	st := &state{
		interval: opts.Interval,
		level:    opts.Level,
		keys:     map[string]bool{},
		maxKinds: opts.MaxKinds,
		kinds:    map[string]*kind{},
	}
	if st.interval <= 0 {
		st.interval = 10 * time.Second
	}
	if st.level == nil {
		st.level = slog.LevelWarn
	}
	if st.maxKinds <= 0 {
		st.maxKinds = 10000
	}
	keys := opts.Keys
	if keys == nil {
		keys = DefaultKeys
	}
	for _, k := range keys {
		st.keys[k] = true
	}
	return &Handler{inner: inner, st: st}
}

// Enabled reports whether inner handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.inner.Enabled(ctx, level)
}

// WithAttrs returns a Handler whose records carry attrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	pre := h.pre
	for _, a := range attrs {
		if h.st.keys[a.Key] {
			pre = append(pre[:len(pre):len(pre)], a)
		}
	}
	return &Handler{inner: h.inner.WithAttrs(attrs), pre: pre, st: h.st}
}

// WithGroup returns a Handler whose further attributes are in group name.
// Key attributes are recognised by their own names, in any group.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{inner: h.inner.WithGroup(name), pre: h.pre, st: h.st}
}

// Handle writes r, or counts it when a record of its kind was written
// less than Interval ago.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	st := h.st
	if r.Level < st.level.Level() {
		return h.inner.Handle(ctx, r)
	}
	var own []slog.Attr
	r.Attrs(func(a slog.Attr) bool {
		if st.keys[a.Key] {
			own = append(own, slog.String(a.Key, keyValue(a.Value)))
		}
		return true
	})
	key := kindKey(r.Level, r.Message, h.pre, own)
	now := time.Now()

	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return h.inner.Handle(ctx, r)
	}
	k := st.kinds[key]
	if k != nil && (now.Sub(k.start) < st.interval || k.suppressed > 0) {
		// Within the window, or just past its end with records left out
		// (the flood goes on, and its summary is due): counted.
		var due int
		if now.Sub(k.start) >= st.interval {
			due = k.suppressed
			st.nextWindowLocked(k, now)
		}
		k.suppressed++
		if k.timer == nil {
			gen := k.gen
			st.wg.Add(1)
			k.timer = time.AfterFunc(k.start.Add(st.interval).Sub(now), func() {
				defer st.wg.Done()
				st.flush(key, k, gen)
			})
		}
		st.mu.Unlock()
		if due > 0 {
			k.write(due, st.interval)
		}
		return nil
	}
	if k == nil && len(st.kinds) >= st.maxKinds {
		st.forgetIdleLocked(now)
	}
	if k != nil || len(st.kinds) < st.maxKinds {
		st.kinds[key] = &kind{start: now, h: h.inner, level: r.Level, msg: r.Message, attrs: own}
	}
	st.mu.Unlock()
	return h.inner.Handle(ctx, r)
}

// nextWindowLocked ends k's window and starts the next at now. The caller
// writes the summary of the records left out in the window that ended.
func (st *state) nextWindowLocked(k *kind, now time.Time) {
	if k.timer != nil && k.timer.Stop() {
		st.wg.Done()
	}
	k.timer, k.suppressed, k.start = nil, 0, now
	k.gen++
}

// flush writes the summary of k's window gen, if records were left out in
// it and it has not been written yet, and starts a new window.
func (st *state) flush(key string, k *kind, gen int) {
	st.mu.Lock()
	if st.kinds[key] != k || k.gen != gen || k.suppressed == 0 {
		st.mu.Unlock()
		return
	}
	n := k.suppressed
	st.nextWindowLocked(k, time.Now())
	st.mu.Unlock()
	k.write(n, st.interval)
}

// forgetIdleLocked forgets the kinds whose window has passed with nothing
// left out.
func (st *state) forgetIdleLocked(now time.Time) {
	for key, k := range st.kinds {
		if k.timer == nil && now.Sub(k.start) >= st.interval {
			delete(st.kinds, key)
		}
	}
}

// write writes the summary of n records of k left out in a window.
func (k *kind) write(n int, window time.Duration) {
	r := slog.NewRecord(time.Now(), k.level, k.msg, 0)
	r.AddAttrs(k.attrs...)
	r.AddAttrs(slog.Int("repeated", n), slog.Duration("window", window))
	k.h.Handle(context.Background(), r)
}

// Close writes the summaries still pending and stops summarising: records
// handled after Close are written in full.
func (h *Handler) Close() error {
	st := h.st
	st.mu.Lock()
	st.closed = true
	type due struct {
		k *kind
		n int
	}
	var pending []due
	for _, k := range st.kinds {
		if k.suppressed > 0 {
			pending = append(pending, due{k, k.suppressed})
		}
		st.nextWindowLocked(k, time.Time{})
	}
	st.kinds = map[string]*kind{}
	st.mu.Unlock()
	for _, d := range pending {
		d.k.write(d.n, st.interval)
	}
	st.wg.Wait()
	return nil
}

// kindKey is the map key of a record's kind.
func kindKey(level slog.Level, msg string, pre, own []slog.Attr) string {
	var b strings.Builder
	b.WriteString(level.String())
	b.WriteByte(0)
	b.WriteString(msg)
	for _, attrs := range [][]slog.Attr{pre, own} {
		for _, a := range attrs {
			b.WriteByte(0)
			b.WriteString(a.Key)
			b.WriteByte('=')
			b.WriteString(keyValue(a.Value))
		}
	}
	return b.String()
}

// keyValue is v as a string, a host:port reduced to the host.
func keyValue(v slog.Value) string {
	s := v.Resolve().String()
	if host, port, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.Atoi(port); err == nil {
			return host
		}
	}
	return s
}
