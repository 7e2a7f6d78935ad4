// Package service starts the agent at login, for the current user, and
// keeps it running: a systemd user unit on Linux, a LaunchAgent on macOS,
// a logon task of Task Scheduler on Windows. Each runs 'fluidity service
// run', which supervises the agent (package supervisor: restarts after a
// crash, on every system alike) and writes its log to a rotated file in
// the state directory (package logfile).
//
// What each system is given is generated here (Unit, Plist, TaskXML) and
// tested as text; the commands that install and control it go through an
// oscmd.Runner, so tests see exactly what would be run.
package service

import (
	"context"
	"errors"
	"io/fs"
	"os"
)

// Name names the service in each system: the unit fluidity.service, the
// task \Fluidity. The LaunchAgent's label is Label.
const Name = "fluidity"

// Label is the LaunchAgent's label (reverse-DNS, as launchd wants).
const Label = "io.github.fluidity.agent"

// Spec is what the service runs.
type Spec struct {
	// Executable is the absolute path of the fluidity binary.
	Executable string
	// Args are its arguments: service run and the agent's flags.
	Args []string
	// Dir is the working directory: where 'service install' ran, so the
	// agent's relative paths mean what they meant there.
	Dir string
	// Log is the path of the agent's log file (for LaunchAgent's own
	// output, and for messages).
	Log string
}

// Status is what a system says of the service.
type Status struct {
	Installed bool
	Running   bool
	// Detail is the system's own words, a line or two.
	Detail string
}

// Manager installs and controls the service on one system.
type Manager interface {
	// Name says which system it is: "systemd (user)".
	Name() string
	// File is the path of what Install writes.
	File() string
	// Install writes the service, enables it at login and starts it.
	Install(ctx context.Context, s Spec) error
	// Uninstall stops the service and removes it.
	Uninstall(ctx context.Context) error
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Status(ctx context.Context) (Status, error)
}

// ErrNotInstalled means the service is not installed.
var ErrNotInstalled = errors.New("the service is not installed (fluidity service install)")

// installed returns ErrNotInstalled unless the file m installs is there.
func installed(m Manager) error {
	if _, err := os.Stat(m.File()); errors.Is(err, fs.ErrNotExist) {
		return ErrNotInstalled
	}
	return nil
}
