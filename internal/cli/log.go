package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"fluidity/internal/logsummary"
)

// logConfig is the log section shared by the long-running commands.
type logConfig struct {
	Level  string `yaml:"level" help:"log level: debug, info, warn or error"`
	Format string `yaml:"format" help:"log format: text or json"`
}

func defaultLog() logConfig { return logConfig{Level: "info", Format: "text"} }

func (c logConfig) validate() error {
	if _, err := parseLevel(c.Level); err != nil {
		return err
	}
	switch c.Format {
	case "text", "json":
		return nil
	}
	return fmt.Errorf("log.format: %q is not a log format (use text or json)", c.Format)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(s))); err != nil {
		return 0, fmt.Errorf("log.level: %q is not a level (use debug, info, warn or error)", s)
	}
	return l, nil
}

func (c logConfig) logger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.Level) // validated already
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serviceLogConfig is the log section of the long-running services (the
// agent, the exit and up): the common keys and the summarising of repeated
// warnings.
type serviceLogConfig struct {
	Base            logConfig     `yaml:",inline"`
	SummaryInterval time.Duration `yaml:"summary_interval" help:"repeated warnings of one kind from one client are written once, then as a count per interval (0: every warning is written)"`
}

func defaultServiceLog() serviceLogConfig {
	return serviceLogConfig{Base: defaultLog(), SummaryInterval: 10 * time.Second}
}

func (c serviceLogConfig) validate() error {
	if c.SummaryInterval < 0 {
		return errors.New("log.summary_interval: must not be negative (0 turns summarising off)")
	}
	return c.Base.validate()
}

// logger returns the service's logger and a func that writes the summaries
// still pending, to be called when the service ends.
func (c serviceLogConfig) logger(w io.Writer) (*slog.Logger, func()) {
	log := c.Base.logger(w)
	if c.SummaryInterval == 0 {
		return log, func() {}
	}
	h := logsummary.New(log.Handler(), logsummary.Options{Interval: c.SummaryInterval})
	return slog.New(h), func() { h.Close() }
}
