package cli

import (
	"net"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestEveryHelpLineFitsACommonTerminal finds every command and subcommand
// from the usages themselves, so a new one is checked without being listed.
func TestEveryHelpLineFitsACommonTerminal(t *testing.T) {
	subs := regexp.MustCompile(`Usage: fluidity (\S+) <([a-z|-]+)>`)
	var all [][]string
	for _, c := range commands() {
		_, _, stderr := run(t, nil, c.name, "--help")
		all = append(all, []string{c.name})
		if m := subs.FindStringSubmatch(stderr); m != nil {
			for _, sub := range strings.Split(m[2], "|") {
				all = append(all, []string{c.name, sub})
			}
		}
	}
	if len(all) < len(commands())+10 {
		t.Fatalf("found only %d commands and subcommands: %q", len(all), all)
	}
	all = append(all, nil) // fluidity --help
	for _, args := range all {
		name := "fluidity " + strings.Join(args, " ")
		code, stdout, stderr := run(t, nil, append(args, "--help")...)
		if code != 0 || !strings.Contains(stderr, "Usage") {
			t.Errorf("%s --help: exit %d, no usage:\n%s", name, code, stderr)
			continue
		}
		for i, line := range strings.Split(stdout+stderr, "\n") {
			if n := utf8.RuneCountInString(line); n > helpWidth {
				t.Errorf("%s --help, line %d is %d columns, more than %d:\n%s", name, i+1, n, helpWidth, line)
			}
		}
	}
}

func TestUpOnATakenPortSaysSoAndNamesListen(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, _, stderr := run(t, nil, "up", "--listen", taken.Addr().String(), "--state-dir", t.TempDir(), "--admin", "")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stderr, taken.Addr().String()+" is taken") || !strings.Contains(stderr, "--listen") {
		t.Errorf("stderr does not say the port is taken and name --listen:\n%s", stderr)
	}
	if n := strings.Count(stderr, "in use") + strings.Count(stderr, "taken"); n != 1 {
		t.Errorf("stderr says it %d times, want once:\n%s", n, stderr)
	}
}
