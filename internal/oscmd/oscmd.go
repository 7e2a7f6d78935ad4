// Package oscmd runs the operating system's own tools (launchctl,
// schtasks, systemctl, networksetup, gsettings) behind one function type,
// so that tests can see exactly what would be run.
package oscmd

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs a command and returns its standard output. The nil Runner
// is Exec.
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Run runs the command with r, or with Exec if r is nil.
func (r Runner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	if r == nil {
		r = Exec
	}
	return r(ctx, name, args...)
}

// Exec is the Runner that runs the command; a failure carries what it
// wrote, to stderr and then to stdout (schtasks and launchctl report some
// errors on stdout).
func Exec(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var said []string
		for _, b := range [][]byte{stderr.Bytes(), out} {
			if s := strings.TrimSpace(string(b)); s != "" {
				said = append(said, s)
			}
		}
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.Join(said, " "))
	}
	return out, nil
}
