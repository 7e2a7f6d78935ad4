package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"fluidity/internal/oscmd"
)

// Systemd is a systemd user unit: started with the user's session (at
// login), restarted by systemd if the supervisor itself dies.
type Systemd struct {
	// Dir is where user units go: ~/.config/systemd/user.
	Dir string
	// Run runs systemctl. If nil, oscmd.Exec.
	Run oscmd.Runner
}

func (s Systemd) Name() string { return "systemd (user unit)" }

// unitName is the unit's name, that of its file.
const unitName = Name + ".service"

func (s Systemd) File() string { return filepath.Join(s.Dir, unitName) }

// Unit is the unit file for spec.
func Unit(spec Spec) string {
	var b strings.Builder
	b.WriteString(`[Unit]
Description=Fluidity agent: the local proxy to your exit server
After=network-online.target

[Service]
Type=simple
`)
	fmt.Fprintf(&b, "ExecStart=%s\n", systemdQuote(append([]string{spec.Executable}, spec.Args...)))
	if spec.Dir != "" {
		fmt.Fprintf(&b, "WorkingDirectory=%s\n", systemdQuote([]string{spec.Dir}))
	}
	// 'service run' restarts the agent itself; this restarts 'service run'.
	b.WriteString(`Restart=on-failure
RestartSec=5s
# The agent's log is its own rotated file; the journal gets only what
# 'service run' says before it opens it.
StandardOutput=journal
StandardError=journal

[Install]
WantedBy=default.target
`)
	return b.String()
}

// systemdQuote quotes each word for a unit file's command line: in double
// quotes, with backslashes, quotes, and the specifiers systemd expands
// (% and $) escaped.
func systemdQuote(words []string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `%`, `%%`, `$`, `$$`)
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = `"` + r.Replace(w) + `"`
	}
	return strings.Join(q, " ")
}

func (s Systemd) systemctl(ctx context.Context, args ...string) ([]byte, error) {
	return s.Run.Run(ctx, "systemctl", append([]string{"--user"}, args...)...)
}

func (s Systemd) Install(ctx context.Context, spec Spec) error {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(s.File(), []byte(Unit(spec)), 0o644); err != nil {
		return err
	}
	if _, err := s.systemctl(ctx, "daemon-reload"); err != nil {
		return err
	}
	// enable: at every login; --now: at once. restart: a reinstall runs
	// the new unit.
	if _, err := s.systemctl(ctx, "enable", "--now", unitName); err != nil {
		return err
	}
	_, err := s.systemctl(ctx, "restart", unitName)
	return err
}

func (s Systemd) Uninstall(ctx context.Context) error {
	if err := installed(s); err != nil {
		return err
	}
	if _, err := s.systemctl(ctx, "disable", "--now", unitName); err != nil {
		return err
	}
	if err := os.Remove(s.File()); err != nil {
		return err
	}
	_, err := s.systemctl(ctx, "daemon-reload")
	return err
}

func (s Systemd) Start(ctx context.Context) error {
	if err := installed(s); err != nil {
		return err
	}
	_, err := s.systemctl(ctx, "start", unitName)
	return err
}

func (s Systemd) Stop(ctx context.Context) error {
	if err := installed(s); err != nil {
		return err
	}
	_, err := s.systemctl(ctx, "stop", unitName)
	return err
}

func (s Systemd) Status(ctx context.Context) (Status, error) {
	if err := installed(s); err != nil {
		return Status{}, nil
	}
	// is-active exits non-zero when inactive: its output is the answer.
	out, _ := s.systemctl(ctx, "is-active", unitName)
	state := strings.TrimSpace(string(out))
	if state == "" {
		state = "unknown"
	}
	return Status{Installed: true, Running: state == "active", Detail: "systemd: " + state}, nil
}
