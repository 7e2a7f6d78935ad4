package service

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fluidity/internal/oscmd"
)

// Launchd is a LaunchAgent: loaded at login into the user's GUI domain,
// kept alive by launchd if the supervisor itself dies.
type Launchd struct {
	// Dir is where LaunchAgents go: ~/Library/LaunchAgents.
	Dir string
	// UID is the user's, for the domain gui/UID.
	UID int
	// Run runs launchctl. If nil, oscmd.Exec.
	Run oscmd.Runner
}

func (l Launchd) Name() string { return "launchd (LaunchAgent)" }
func (l Launchd) File() string { return filepath.Join(l.Dir, Label+".plist") }

// Plist is the LaunchAgent's property list for spec.
func Plist(spec Spec) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
`)
	key := func(k string) { fmt.Fprintf(&b, "\t<key>%s</key>\n", xmlEscape(k)) }
	str := func(k, v string) { key(k); fmt.Fprintf(&b, "\t<string>%s</string>\n", xmlEscape(v)) }
	str("Label", Label)
	key("ProgramArguments")
	b.WriteString("\t<array>\n")
	for _, a := range append([]string{spec.Executable}, spec.Args...) {
		fmt.Fprintf(&b, "\t\t<string>%s</string>\n", xmlEscape(a))
	}
	b.WriteString("\t</array>\n")
	if spec.Dir != "" {
		str("WorkingDirectory", spec.Dir)
	}
	// At login, and again if it dies; not after a clean exit (service stop).
	key("RunAtLoad")
	b.WriteString("\t<true/>\n")
	key("KeepAlive")
	b.WriteString("\t<dict>\n\t\t<key>SuccessfulExit</key>\n\t\t<false/>\n\t</dict>\n")
	key("ProcessType")
	b.WriteString("\t<string>Interactive</string>\n")
	if spec.Log != "" {
		// What 'service run' says before it opens its log.
		str("StandardOutPath", spec.Log+".launchd")
		str("StandardErrorPath", spec.Log+".launchd")
	}
	b.WriteString("</dict>\n</plist>\n")
	return b.String()
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (l Launchd) domain() string { return "gui/" + strconv.Itoa(l.UID) }
func (l Launchd) target() string { return l.domain() + "/" + Label }
func (l Launchd) launchctl(ctx context.Context, args ...string) ([]byte, error) {
	return l.Run.Run(ctx, "launchctl", args...)
}

func (l Launchd) Install(ctx context.Context, spec Spec) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return err
	}
	// A reinstall replaces the loaded job; bootout of one not loaded fails,
	// which is fine.
	l.launchctl(ctx, "bootout", l.target())
	if err := os.WriteFile(l.File(), []byte(Plist(spec)), 0o644); err != nil {
		return err
	}
	_, err := l.launchctl(ctx, "bootstrap", l.domain(), l.File())
	return err
}

func (l Launchd) Uninstall(ctx context.Context) error {
	if err := installed(l); err != nil {
		return err
	}
	l.launchctl(ctx, "bootout", l.target()) // not loaded is fine
	return os.Remove(l.File())
}

func (l Launchd) Start(ctx context.Context) error {
	if err := installed(l); err != nil {
		return err
	}
	// A stopped job is still loaded; one booted out is not.
	if _, err := l.launchctl(ctx, "kickstart", l.target()); err != nil {
		_, err = l.launchctl(ctx, "bootstrap", l.domain(), l.File())
		return err
	}
	return nil
}

func (l Launchd) Stop(ctx context.Context) error {
	if err := installed(l); err != nil {
		return err
	}
	// SIGTERM: 'service run' stops the agent and exits 0, which KeepAlive
	// does not restart.
	_, err := l.launchctl(ctx, "kill", "SIGTERM", l.target())
	return err
}

func (l Launchd) Status(ctx context.Context) (Status, error) {
	if err := installed(l); err != nil {
		return Status{}, nil
	}
	out, err := l.launchctl(ctx, "print", l.target())
	if err != nil {
		return Status{Installed: true, Detail: "launchd: not loaded"}, nil
	}
	state := "unknown"
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " = "); ok && k == "state" {
			state = v
			break
		}
	}
	return Status{Installed: true, Running: state == "running", Detail: "launchd: " + state}, nil
}
