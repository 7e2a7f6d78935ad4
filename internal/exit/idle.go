package exit

import (
	"context"
	"fmt"
	"time"
)

// Activity is what a Server's streams say about its use at one moment.
// Streams count from the moment their target is connected until they end,
// whether or not bytes flow: an open but silent stream (an idle SSH
// session) is in use.
type Activity struct {
	Open  int64     // streams open now
	Total int64     // streams opened since the server was made
	Last  time.Time // when a stream last opened or closed; Start if none has
	Start time.Time // when the server was made
}

// Activity returns the server's streams now.
func (s *Server) Activity() Activity {
	// streamEnded records the time before it lowers the count, so a count
	// of zero read here comes with the time of the close that made it zero
	// (or a later one).
	open := s.streams.Load()
	total := s.total.Load()
	return Activity{Open: open, Total: total, Last: time.Unix(0, s.lastAct.Load()), Start: s.start}
}

// IdlePolicy says when a server counts as idle: when it may stop because
// no one uses it. A zero IdlePolicy never counts a server idle.
type IdlePolicy struct {
	// After is how long a server with no open stream stays up after its
	// last stream closed. If zero, a server that has been used never
	// counts as idle.
	After time.Duration
	// Unused is how long a server on which no stream was ever opened stays
	// up after it was made. If zero, a server that has never been used
	// never counts as idle.
	Unused time.Duration
}

// IdleAt returns when a server with activity a goes idle under p, as things
// stand at now: now+After while a stream is open (it cannot be sooner), the
// last close plus After once every stream has closed, and the start plus
// Unused if no stream was ever opened. ok is false when, as things stand,
// the server never goes idle.
func (p IdlePolicy) IdleAt(a Activity, now time.Time) (at time.Time, ok bool) {
	switch {
	case a.Open > 0:
		return now.Add(p.After), p.After > 0
	case a.Total == 0:
		return a.Start.Add(p.Unused), p.Unused > 0
	default:
		return a.Last.Add(p.After), p.After > 0
	}
}

// reason says for a log line why a server with activity a is idle.
func (p IdlePolicy) reason(a Activity) string {
	if a.Total == 0 {
		return fmt.Sprintf("no stream opened in the %v since start (exit_when_unused)", p.Unused)
	}
	return fmt.Sprintf("no stream open for %v since the last one closed (exit_when_idle)", p.After)
}

// WaitIdle waits until the server is idle under p and returns a sentence
// saying why, for a log line; or until ctx ends, when it returns ctx's
// error. It looks at the server only at the moments it could become idle
// (no polling): at the idle time IdleAt gives, and, until a stream has been
// opened, After from now if that is sooner (a stream may open and close
// meanwhile).
func (s *Server) WaitIdle(ctx context.Context, p IdlePolicy) (reason string, err error) {
	if p.After < 0 || p.Unused < 0 {
		return "", fmt.Errorf("exit: negative idle time %v or %v", p.After, p.Unused)
	}
	for {
		now := time.Now()
		a := s.Activity()
		at, ok := p.IdleAt(a, now)
		if ok && !now.Before(at) {
			return p.reason(a), nil
		}
		if a.Total == 0 && p.After > 0 {
			// A stream opened from now on closes after now, so by After
			// the server may be idle that way sooner than unused.
			if later := now.Add(p.After); !ok || later.Before(at) {
				at, ok = later, true
			}
		}
		if !ok {
			// Used, and After is zero: never idle.
			<-ctx.Done()
			return "", ctx.Err()
		}
		timer := time.NewTimer(at.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", ctx.Err()
		case <-timer.C:
		}
	}
}
