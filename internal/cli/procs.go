package cli

import (
	"fmt"
	"log/slog"
	"strings"
)

// defaultProcs is 1: a tunnel moves each stream's bytes through a chain
// of hand-offs between goroutines, and with one thread those hand-offs
// need no thread wake-ups, which cost more than a second core gives back
// (docs/performance.md has the measurements). One core moves about a
// gigabyte a second through the agent or the exit.
const defaultProcs = 1

func validateProcs(n int) error {
	if n < 0 {
		return fmt.Errorf("procs: %d is negative (use 1, the default, or 0 for one per CPU)", n)
	}
	return nil
}

// applyProcs sets how many threads run Go code at once, unless the
// environment's GOMAXPROCS says otherwise or n is 0.
func applyProcs(env Env, n int, log *slog.Logger) {
	if env.SetProcs == nil {
		return
	}
	for _, kv := range env.Environ {
		if v, ok := strings.CutPrefix(kv, "GOMAXPROCS="); ok && v != "" {
			log.Debug("procs: GOMAXPROCS from the environment takes precedence", "GOMAXPROCS", v)
			return
		}
	}
	if n > 0 {
		env.SetProcs(n)
	}
}
