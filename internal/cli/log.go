package cli

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
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
