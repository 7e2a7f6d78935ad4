package cli

import (
	"fmt"
	"io"
	"time"

	"fluidity/internal/ecstask"
	"fluidity/internal/exit"
)

// exitReport is what the exit's admin listener serves at /status: what
// the exit's lifecycle needs to know about its use.
type exitReport struct {
	OpenStreams  int64     `json:"open_streams"`
	StreamsTotal int64     `json:"streams_total"`
	LastActivity time.Time `json:"last_activity"` // a stream's start or end; the exit's start if none
	// IdleForSeconds is how long no stream has been open: 0 while one is,
	// else since the last one closed, or since the start if none opened.
	IdleForSeconds float64 `json:"idle_for_seconds"`
	// ExitWhenIdle and ExitWhenUnused are the idle policy, as durations
	// ("5m0s"); "0s" means never.
	ExitWhenIdle   string `json:"exit_when_idle"`
	ExitWhenUnused string `json:"exit_when_unused"`
	// LeaseUntil is the lease last written on the task, null if none.
	LeaseUntil *time.Time `json:"lease_until"`
	// Task is the ECS task's ARN, once the lease has found it; "" if not on
	// ECS or without a lease.
	Task string `json:"task"`
}

func newExitReport(srv *exit.Server, idle exit.IdlePolicy, lease *ecstask.Lease, now time.Time) exitReport {
	a := srv.Activity()
	r := exitReport{
		OpenStreams:    a.Open,
		StreamsTotal:   a.Total,
		LastActivity:   a.Last.UTC(),
		ExitWhenIdle:   idle.After.String(),
		ExitWhenUnused: idle.Unused.String(),
	}
	if a.Open == 0 {
		r.IdleForSeconds = max(now.Sub(a.Last), 0).Round(time.Millisecond).Seconds()
	}
	if lease != nil {
		var until time.Time
		r.Task, until = lease.State()
		if !until.IsZero() {
			r.LeaseUntil = &until
		}
	}
	return r
}

// isExitReport tells an exit's /status from an agent's by its keys.
func isExitReport(keys map[string]any) bool {
	_, idle := keys["exit_when_idle"]
	_, unused := keys["exit_when_unused"]
	return idle && unused
}

// printExitReport writes r for a person.
func printExitReport(w io.Writer, r exitReport, now time.Time) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%-12s %s\n", k+":", fmt.Sprintf(format, a...)) }
	line("Exit", "an exit server (this is its admin listener, not an agent's)")
	line("Streams", "%d open, %d since start", r.OpenStreams, r.StreamsTotal)
	if r.OpenStreams == 0 {
		line("Idle", "for %s", humanDuration(time.Duration(r.IdleForSeconds*float64(time.Second))))
	} else {
		line("Idle", "no (streams open)")
	}
	never := func(s string) string {
		if d, err := time.ParseDuration(s); err == nil && d == 0 {
			return "never"
		}
		return "after " + s
	}
	line("Stops", "when idle %s; when unused %s", never(r.ExitWhenIdle), never(r.ExitWhenUnused))
	if r.Task != "" {
		line("Task", "%s", r.Task)
	}
	if r.LeaseUntil != nil {
		line("Lease", "until %s (in %s)", r.LeaseUntil.Local().Format("2006-01-02 15:04:05"), humanDuration(r.LeaseUntil.Sub(now)))
	}
}
