package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"

	"fluidity/internal/oscmd"
)

// Schtasks is a task of Task Scheduler that runs at the user's logon, with
// the user's own rights and no stored password. Task Scheduler restarts
// nothing that exits, which is why the agent runs under 'service run'.
type Schtasks struct {
	// User is DOMAIN\name, whose logon starts the task.
	User string
	// Dir is where the task's definition is kept as well (the state
	// directory), for 'schtasks /Create /XML'.
	Dir string
	// Run runs schtasks. If nil, oscmd.Exec.
	Run oscmd.Runner
}

func (s Schtasks) Name() string { return "Task Scheduler (logon task)" }
func (s Schtasks) File() string { return filepath.Join(s.Dir, Name+"-task.xml") }

// taskName is the task's path in Task Scheduler's library.
const taskName = `\Fluidity`

// TaskXML is the task's definition for spec and the user DOMAIN\name.
func TaskXML(spec Spec, user string) string {
	args := make([]string, len(spec.Args))
	for i, a := range spec.Args {
		args[i] = windowsQuote(a)
	}
	var b strings.Builder
	// ExecutionTimeLimit PT0S: no limit (the default is three days).
	// RestartOnFailure: if 'service run' itself fails to start.
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo>
    <Description>Fluidity agent: the local proxy to your exit server</Description>
    <URI>%s</URI>
  </RegistrationInfo>
  <Triggers>
    <LogonTrigger>
      <Enabled>true</Enabled>
      <UserId>%s</UserId>
    </LogonTrigger>
  </Triggers>
  <Principals>
    <Principal id="Author">
      <UserId>%s</UserId>
      <LogonType>InteractiveToken</LogonType>
      <RunLevel>LeastPrivilege</RunLevel>
    </Principal>
  </Principals>
  <Settings>
    <MultipleInstancesPolicy>IgnoreNew</MultipleInstancesPolicy>
    <DisallowStartIfOnBatteries>false</DisallowStartIfOnBatteries>
    <StopIfGoingOnBatteries>false</StopIfGoingOnBatteries>
    <StartWhenAvailable>true</StartWhenAvailable>
    <ExecutionTimeLimit>PT0S</ExecutionTimeLimit>
    <RestartOnFailure>
      <Interval>PT1M</Interval>
      <Count>999</Count>
    </RestartOnFailure>
    <Enabled>true</Enabled>
  </Settings>
  <Actions Context="Author">
    <Exec>
      <Command>%s</Command>
      <Arguments>%s</Arguments>
      <WorkingDirectory>%s</WorkingDirectory>
    </Exec>
  </Actions>
</Task>
`, xmlEscape(taskName), xmlEscape(user), xmlEscape(user), xmlEscape(spec.Executable),
		xmlEscape(strings.Join(args, " ")), xmlEscape(spec.Dir))
	return b.String()
}

// windowsQuote quotes an argument as CommandLineToArgvW and Go's
// os.Args on Windows read it back.
func windowsQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"") {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	slashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteByte(c)
	}
	b.WriteString(strings.Repeat(`\`, slashes))
	b.WriteByte('"')
	return b.String()
}

// utf16File is s as Task Scheduler wants a definition file: UTF-16 with a
// byte-order mark.
func utf16File(s string) []byte {
	u := utf16.Encode([]rune("\ufeff" + strings.ReplaceAll(s, "\n", "\r\n")))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		b[2*i], b[2*i+1] = byte(c), byte(c>>8)
	}
	return b
}

func (s Schtasks) schtasks(ctx context.Context, args ...string) ([]byte, error) {
	return s.Run.Run(ctx, "schtasks", args...)
}

func (s Schtasks) Install(ctx context.Context, spec Spec) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(s.File(), utf16File(TaskXML(spec, s.User)), 0o600); err != nil {
		return err
	}
	// /F replaces a task of the same name.
	if _, err := s.schtasks(ctx, "/Create", "/TN", taskName, "/XML", s.File(), "/F"); err != nil {
		return err
	}
	s.schtasks(ctx, "/End", "/TN", taskName) // a reinstall: stop the old one
	_, err := s.schtasks(ctx, "/Run", "/TN", taskName)
	return err
}

func (s Schtasks) query(ctx context.Context) (string, error) {
	out, err := s.schtasks(ctx, "/Query", "/TN", taskName, "/FO", "LIST")
	if err != nil {
		return "", ErrNotInstalled
	}
	return string(out), nil
}

func (s Schtasks) Uninstall(ctx context.Context) error {
	if _, err := s.query(ctx); err != nil {
		return err
	}
	s.schtasks(ctx, "/End", "/TN", taskName) // not running is fine
	if _, err := s.schtasks(ctx, "/Delete", "/TN", taskName, "/F"); err != nil {
		return err
	}
	os.Remove(s.File())
	return nil
}

func (s Schtasks) Start(ctx context.Context) error {
	if _, err := s.query(ctx); err != nil {
		return err
	}
	_, err := s.schtasks(ctx, "/Run", "/TN", taskName)
	return err
}

func (s Schtasks) Stop(ctx context.Context) error {
	if _, err := s.query(ctx); err != nil {
		return err
	}
	_, err := s.schtasks(ctx, "/End", "/TN", taskName)
	return err
}

func (s Schtasks) Status(ctx context.Context) (Status, error) {
	out, err := s.query(ctx)
	if err != nil {
		return Status{}, nil
	}
	state := "unknown"
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "Status" {
			state = strings.TrimSpace(v)
		}
	}
	return Status{Installed: true, Running: state == "Running", Detail: "Task Scheduler: " + state}, nil
}
