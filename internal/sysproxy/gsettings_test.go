package sysproxy

import (
	"context"
	"fmt"
	"maps"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"fluidity/internal/golden"
	"fluidity/internal/oscmd"
)

// fakeGSettings holds keys as gsettings prints them and records commands.
type fakeGSettings struct {
	keys map[string]string
	log  []string
}

func (f *fakeGSettings) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.log = append(f.log, name+" "+strings.Join(args, " "))
	switch {
	case name == "gsettings" && len(args) == 3 && args[0] == "get":
		v, ok := f.keys[args[1]+" "+args[2]]
		if !ok {
			return nil, fmt.Errorf("No such key %q", args[2])
		}
		return []byte(v + "\n"), nil
	case name == "gsettings" && len(args) == 4 && args[0] == "set":
		f.keys[args[1]+" "+args[2]] = args[3]
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected command %s %q", name, args)
}

func TestGNOMESetsTheProxyAndRestoresIt(t *testing.T) {
	fake := &fakeGSettings{keys: map[string]string{
		"org.gnome.system.proxy mode":                    "'none'",
		"org.gnome.system.proxy autoconfig-url":          "''",
		"org.gnome.system.proxy ignore-hosts":            "['localhost', '127.0.0.0/8', '::1', '*.corp.example']",
		"org.gnome.system.proxy.http host":               "''",
		"org.gnome.system.proxy.http port":               "8080",
		"org.gnome.system.proxy.https host":              "''",
		"org.gnome.system.proxy.https port":              "0",
		"org.gnome.system.proxy.socks host":              "'socks.example'",
		"org.gnome.system.proxy.socks port":              "1080",
		"org.gnome.system.proxy.ftp host":                "''",
		"org.gnome.system.proxy use-same-proxy":          "true",
		"org.gnome.system.proxy.http enabled":            "false",
		"org.gnome.system.proxy.http use-authentication": "false",
	}}
	before := maps.Clone(fake.keys)
	ctx, dir := context.Background(), t.TempDir()
	sys := GNOME{Run: fake.run}
	if err := On(ctx, sys, dir, Setting{Server: "127.0.0.1:8080"}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"org.gnome.system.proxy mode":         "'manual'",
		"org.gnome.system.proxy.http host":    "'127.0.0.1'",
		"org.gnome.system.proxy.https host":   "'127.0.0.1'",
		"org.gnome.system.proxy.https port":   "8080",
		"org.gnome.system.proxy ignore-hosts": "['localhost', '127.0.0.0/8', '::1', '*.corp.example']",
	} {
		if got := fake.keys[k]; got != want {
			t.Errorf("after On %s = %s, want %s", k, got, want)
		}
	}
	applied := strings.Join(fake.log, "\n") + "\n"
	fake.log = nil
	if _, err := Off(ctx, sys, dir); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fake.keys, before) {
		t.Errorf("after Off:\n%v\nwant:\n%v", fake.keys, before)
	}
	golden.Check(t, "gsettings-proxy.golden", "# fluidity proxy on\n"+applied+"# fluidity proxy off\n"+strings.Join(fake.log, "\n")+"\n")
}

// TestGNOMEWithRealGSettings changes the settings of a keyfile backend in
// a scratch directory, never the desktop's own.
func TestGNOMEWithRealGSettings(t *testing.T) {
	if _, err := exec.LookPath("gsettings"); err != nil {
		t.Skip("no gsettings (apt-get install libglib2.0-bin gsettings-desktop-schemas)")
	}
	t.Setenv("GSETTINGS_BACKEND", "keyfile")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	ctx := context.Background()
	if _, err := oscmd.Exec(ctx, "gsettings", "get", "org.gnome.system.proxy", "mode"); err != nil {
		t.Skipf("gsettings has no GNOME proxy schema (apt-get install gsettings-desktop-schemas): %v", err)
	}
	get := func(schema, key string) string {
		out, err := oscmd.Exec(ctx, "gsettings", "get", schema, key)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	if _, err := oscmd.Exec(ctx, "gsettings", "set", "org.gnome.system.proxy", "ignore-hosts", `['localhost', "it's.example"]`); err != nil {
		t.Fatal(err)
	}
	beforeIgnore, beforeMode := get("org.gnome.system.proxy", "ignore-hosts"), get("org.gnome.system.proxy", "mode")
	dir := t.TempDir()
	if err := On(ctx, GNOME{}, dir, Setting{PACURL: "http://127.0.0.1:8080/proxy.pac"}); err != nil {
		t.Fatal(err)
	}
	if got := get("org.gnome.system.proxy", "mode"); got != "'auto'" {
		t.Errorf("mode after On = %s, want 'auto'", got)
	}
	if got, err := Current(ctx, GNOME{}); err != nil || got != "PAC http://127.0.0.1:8080/proxy.pac" {
		t.Errorf("Current after On = %q, %v", got, err)
	}
	if got := get("org.gnome.system.proxy", "autoconfig-url"); got != "'http://127.0.0.1:8080/proxy.pac'" {
		t.Errorf("autoconfig-url after On = %s", got)
	}
	ignore, err := parseStringArray(get("org.gnome.system.proxy", "ignore-hosts"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"localhost", "it's.example", "127.0.0.0/8", "::1"}; !reflect.DeepEqual(ignore, want) {
		t.Errorf("ignore-hosts after On = %q, want the user's and loopback %q", ignore, want)
	}
	if _, err := Off(ctx, GNOME{}, dir); err != nil {
		t.Fatal(err)
	}
	if got := get("org.gnome.system.proxy", "mode"); got != beforeMode {
		t.Errorf("mode after Off = %s, want %s", got, beforeMode)
	}
	if got, err := Current(ctx, GNOME{}); err != nil || got != "none" {
		t.Errorf("Current after Off = %q, %v; want none (mode %s)", got, err, beforeMode)
	}
	if got := get("org.gnome.system.proxy", "ignore-hosts"); got != beforeIgnore {
		t.Errorf("ignore-hosts after Off = %s, want %s", got, beforeIgnore)
	}
}

func TestParseStringArray(t *testing.T) {
	for in, want := range map[string][]string{
		"@as []":                       nil,
		"[]":                           nil,
		"['a', 'b']":                   {"a", "b"},
		`['it\'s', "x,y"]`:             {"it's", "x,y"},
		"['localhost', '127.0.0.0/8']": {"localhost", "127.0.0.0/8"},
	} {
		got, err := parseStringArray(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseStringArray(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"'a'", "['a' 'b']", "['a", "[a]"} {
		if _, err := parseStringArray(bad); err == nil {
			t.Errorf("parseStringArray(%s) succeeded, want an error", bad)
		}
	}
	if got := formatStringArray([]string{"it's", `a\b`}); got != `['it\'s', 'a\\b']` {
		t.Errorf("formatStringArray = %s", got)
	}
}
