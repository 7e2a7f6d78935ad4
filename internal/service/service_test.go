package service

import (
	"context"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	"fluidity/internal/golden"
	"fluidity/internal/oscmd"
)

// spec has the awkward characters each format must escape.
var spec = Spec{
	Executable: "/Users/Ann Lee/bin/fluidity",
	Args:       []string{"service", "run", "--", "--config", "agent <work> & \"home\".yaml", "--system-proxy", "100%$HOME"},
	Dir:        "/Users/Ann Lee",
	Log:        "/Users/Ann Lee/Library/Application Support/fluidity/fluidity-agent.log",
}

func TestUnitFile(t *testing.T) {
	golden.Check(t, "fluidity.service", Unit(spec))
}

// plistValue is a property list value read back generically: the test
// checks the structure launchd would read, without plutil.
type plistNode struct {
	XMLName  xml.Name
	Text     string      `xml:",chardata"`
	Children []plistNode `xml:",any"`
}

// decodePlist turns a plist's dict into Go values: string, bool, []any,
// map[string]any.
func decodePlist(t *testing.T, n plistNode) any {
	t.Helper()
	switch n.XMLName.Local {
	case "string":
		return n.Text
	case "true":
		return true
	case "false":
		return false
	case "array":
		out := []any{}
		for _, c := range n.Children {
			out = append(out, decodePlist(t, c))
		}
		return out
	case "dict":
		out := map[string]any{}
		if len(n.Children)%2 != 0 {
			t.Fatalf("a dict has %d children, not key/value pairs", len(n.Children))
		}
		for i := 0; i < len(n.Children); i += 2 {
			k := n.Children[i]
			if k.XMLName.Local != "key" {
				t.Fatalf("dict entry %d is <%s>, want <key>", i/2, k.XMLName.Local)
			}
			if _, dup := out[k.Text]; dup {
				t.Fatalf("key %q twice", k.Text)
			}
			out[k.Text] = decodePlist(t, n.Children[i+1])
		}
		return out
	}
	t.Fatalf("unexpected plist element <%s>", n.XMLName.Local)
	return nil
}

func TestLaunchAgentPlist(t *testing.T) {
	text := Plist(spec)
	golden.Check(t, Label+".plist", text)
	var root plistNode
	if err := xml.Unmarshal([]byte(text), &root); err != nil {
		t.Fatalf("the plist is not XML: %v", err)
	}
	if root.XMLName.Local != "plist" || len(root.Children) != 1 {
		t.Fatalf("root is <%s> with %d children, want <plist> with one dict", root.XMLName.Local, len(root.Children))
	}
	got := decodePlist(t, root.Children[0])
	args := []any{spec.Executable}
	for _, a := range spec.Args {
		args = append(args, a)
	}
	want := map[string]any{
		"Label":             Label,
		"ProgramArguments":  args,
		"WorkingDirectory":  spec.Dir,
		"RunAtLoad":         true,
		"KeepAlive":         map[string]any{"SuccessfulExit": false},
		"ProcessType":       "Interactive",
		"StandardOutPath":   spec.Log + ".launchd",
		"StandardErrorPath": spec.Log + ".launchd",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plist reads back as\n%#v\nwant\n%#v", got, want)
	}
}

// splitWindows splits a command line as CommandLineToArgvW does.
func splitWindows(s string) []string {
	var args []string
	var cur strings.Builder
	inArg, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			n := 0
			for i < len(s) && s[i] == '\\' {
				n++
				i++
			}
			if i < len(s) && s[i] == '"' {
				cur.WriteString(strings.Repeat(`\`, n/2))
				if n%2 == 1 {
					cur.WriteByte('"')
				} else {
					inQuote = !inQuote
				}
			} else {
				cur.WriteString(strings.Repeat(`\`, n))
				i--
			}
			inArg = true
		case c == '"':
			inQuote, inArg = !inQuote, true
		case (c == ' ' || c == '\t') && !inQuote:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

func TestLogonTaskXML(t *testing.T) {
	win := Spec{
		Executable: `C:\Users\Ann Lee\fluidity.exe`,
		Args:       []string{"service", "run", "--", "--config", `C:\Users\Ann Lee\agent "work".yaml`, `C:\trailing dir\`, ""},
		Dir:        `C:\Users\Ann Lee`,
	}
	text := TaskXML(win, `LAPTOP\ann`)
	golden.Check(t, "fluidity-task.xml", text)
	var task struct {
		Triggers struct {
			Logon struct {
				UserID string `xml:"UserId"`
			} `xml:"LogonTrigger"`
		}
		Principal struct {
			LogonType, RunLevel string
		} `xml:"Principals>Principal"`
		Settings struct {
			ExecutionTimeLimit string
		}
		Exec struct {
			Command, Arguments, WorkingDirectory string
		} `xml:"Actions>Exec"`
	}
	// encoding/xml does not decode UTF-16: read the text as UTF-8.
	if err := xml.Unmarshal([]byte(strings.Replace(text, `encoding="UTF-16"`, `encoding="UTF-8"`, 1)), &task); err != nil {
		t.Fatalf("the task is not XML: %v", err)
	}
	if task.Triggers.Logon.UserID != `LAPTOP\ann` || task.Principal.LogonType != "InteractiveToken" || task.Principal.RunLevel != "LeastPrivilege" {
		t.Errorf("task runs as %+v at the logon of %q, want the user's own logon, least privilege", task.Principal, task.Triggers.Logon.UserID)
	}
	if task.Settings.ExecutionTimeLimit != "PT0S" {
		t.Errorf("ExecutionTimeLimit = %q, want PT0S (none)", task.Settings.ExecutionTimeLimit)
	}
	if task.Exec.Command != win.Executable || task.Exec.WorkingDirectory != win.Dir {
		t.Errorf("action = %+v", task.Exec)
	}
	if got := splitWindows(task.Exec.Arguments); !reflect.DeepEqual(got, win.Args) {
		t.Errorf("arguments %s read back as %q, want %q", task.Exec.Arguments, got, win.Args)
	}
	// The file is UTF-16 with a byte-order mark and CRLF lines.
	b := utf16File(text)
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i]) | uint16(b[2*i+1])<<8
	}
	if back := string(utf16.Decode(u)); back != "\ufeff"+strings.ReplaceAll(text, "\n", "\r\n") {
		t.Errorf("the UTF-16 file does not decode to the text")
	}
}

// recorder is a Runner that records commands and answers from a table.
type recorder struct {
	log     []string
	answers map[string]string // command line prefix → output
	fail    map[string]bool   // command line prefix → fails
}

func (r *recorder) run(_ context.Context, name string, args ...string) ([]byte, error) {
	line := name + " " + strings.Join(args, " ")
	r.log = append(r.log, line)
	for p := range r.fail {
		if strings.HasPrefix(line, p) {
			return nil, fmt.Errorf("%s: failed", line)
		}
	}
	for p, out := range r.answers {
		if strings.HasPrefix(line, p) {
			return []byte(out), nil
		}
	}
	return nil, nil
}

func TestManagersRunTheSystemsCommands(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		make    func(dir string, r *recorder) Manager
		answers map[string]string
		fail    map[string]bool
	}{
		{"systemd", func(dir string, r *recorder) Manager { return Systemd{Dir: dir, Run: r.run} },
			map[string]string{"systemctl --user is-active": "active\n"}, nil},
		{"launchd", func(dir string, r *recorder) Manager { return Launchd{Dir: dir, UID: 501, Run: r.run} },
			map[string]string{"launchctl print": "gui/501/io.github.fluidity.agent = {\n\tactive count = 1\n\tstate = running\n"}, nil},
		{"schtasks", func(dir string, r *recorder) Manager { return Schtasks{Dir: dir, User: `LAPTOP\ann`, Run: r.run} },
			map[string]string{"schtasks /Query": "Folder: \\\nTaskName:      \\Fluidity\nStatus:        Running\n"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := &recorder{answers: tc.answers, fail: map[string]bool{"schtasks /Query": true}}
			m := tc.make(dir, r)
			if err := m.Start(ctx); err != ErrNotInstalled {
				t.Errorf("Start before Install = %v, want ErrNotInstalled", err)
			}
			if st, err := m.Status(ctx); err != nil || st.Installed {
				t.Errorf("Status before Install = %+v, %v; want not installed", st, err)
			}
			r.log, r.fail = nil, nil
			if err := m.Install(ctx, spec); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(m.File()); err != nil {
				t.Errorf("Install wrote no %s: %v", m.File(), err)
			}
			st, err := m.Status(ctx)
			if err != nil || !st.Installed || !st.Running {
				t.Errorf("Status = %+v, %v; want installed and running", st, err)
			}
			for _, step := range []func(context.Context) error{m.Stop, m.Start, m.Uninstall} {
				if err := step(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if tc.name != "schtasks" {
				if _, err := os.Stat(m.File()); !os.IsNotExist(err) {
					t.Errorf("Uninstall left %s: %v", m.File(), err)
				}
			}
			golden.Check(t, tc.name+"-commands.golden", strings.ReplaceAll(strings.ReplaceAll(strings.Join(r.log, "\n")+"\n", dir, "$DIR"), "$DIR"+string(filepath.Separator), "$DIR/"))
		})
	}
}

// TestSystemdUserRoundTrip installs a unit of the real name with the
// user's systemd, so it runs only when asked to (FLUIDITY_SYSTEMD_TEST=1)
// on a machine whose user manager runs.
func TestSystemdUserRoundTrip(t *testing.T) {
	if os.Getenv("FLUIDITY_SYSTEMD_TEST") == "" {
		t.Skip("installs fluidity.service for this user: set FLUIDITY_SYSTEMD_TEST=1 to run")
	}
	ctx := context.Background()
	if out, err := oscmd.Exec(ctx, "systemctl", "--user", "is-system-running"); err != nil && !strings.Contains(string(out), "degraded") {
		t.Skipf("no systemd user manager here (%s): %v", strings.TrimSpace(string(out)), err)
	}
	m, err := Default(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Install(ctx, Spec{Executable: "/bin/sleep", Args: []string{"300"}, Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	defer m.Uninstall(ctx)
	if st, err := m.Status(ctx); err != nil || !st.Running {
		t.Errorf("Status after Install = %+v, %v; want running", st, err)
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(ctx); st.Running {
		t.Errorf("Status after Stop = %+v, want stopped", st)
	}
	if err := m.Uninstall(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := m.Status(ctx); st.Installed {
		t.Errorf("Status after Uninstall = %+v, want not installed", st)
	}
}
