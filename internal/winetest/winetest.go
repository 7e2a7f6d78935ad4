package winetest

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var (
	//go:embed testdata/bcryptprimitives.c
	dllSource []byte
	//go:embed testdata/bcryptprimitives.def
	dllDef []byte
)

// Packages are what Setup needs on a Debian machine.
const Packages = "wine64 gcc-mingw-w64-x86-64"

// ErrNoWine means a command Setup needs is not installed.
var ErrNoWine = errors.New("wine is not installed")

// Env is a Wine prefix ready to run Go programs built for windows/amd64.
type Env struct {
	Wine   string // the wine command
	Prefix string // the WINEPREFIX
}

// DefaultPrefix is the prefix the tests use: $FLUIDITY_WINEPREFIX, or
// fluidity-wine in the user's cache directory. It is never the user's own
// WINEPREFIX, which Setup would change.
func DefaultPrefix() string {
	if p := os.Getenv("FLUIDITY_WINEPREFIX"); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "fluidity-wine")
}

// Setup makes prefix ready to run Go programs, creating it if needed, and
// returns it. It is idempotent and may run in several processes at once.
func Setup(prefix string) (*Env, error) {
	wine, err := exec.LookPath("wine")
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install %s)", ErrNoWine, Packages)
	}
	prefix, err = filepath.Abs(prefix)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(prefix + ".lock")
	if err != nil {
		return nil, fmt.Errorf("lock the wine prefix: %w", err)
	}
	defer unlock()
	e := &Env{Wine: wine, Prefix: prefix}
	system32 := filepath.Join(prefix, "drive_c", "windows", "system32")
	if _, err := os.Stat(system32); err != nil {
		cmd := e.Command("wineboot", "--init")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("wineboot --init in %s: %w\n%s", prefix, err, out)
		}
		if _, err := os.Stat(system32); err != nil {
			return nil, fmt.Errorf("wineboot made no %s: %w", system32, err)
		}
	}
	if err := installDLL(system32); err != nil {
		return nil, err
	}
	return e, nil
}

// installDLL builds bcryptprimitives.dll into system32 unless the one there
// was built from the current source.
func installDLL(system32 string) error {
	sum := sha256.Sum256(append(append([]byte{}, dllSource...), dllDef...))
	stamp := filepath.Join(system32, "bcryptprimitives.dll.fluidity-sha256")
	want := hex.EncodeToString(sum[:])
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		return nil
	}
	gcc, err := exec.LookPath("x86_64-w64-mingw32-gcc")
	if err != nil {
		return fmt.Errorf("%w: no x86_64-w64-mingw32-gcc to build bcryptprimitives.dll (apt-get install %s)", ErrNoWine, Packages)
	}
	dir, err := os.MkdirTemp("", "fluidity-dll-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for name, data := range map[string][]byte{"bcryptprimitives.c": dllSource, "bcryptprimitives.def": dllDef} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	cmd := exec.Command(gcc, "-shared", "-O2", "-s", "-o", "bcryptprimitives.dll", "bcryptprimitives.c", "bcryptprimitives.def", "-ladvapi32")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build bcryptprimitives.dll: %w\n%s", err, out)
	}
	dll, err := os.ReadFile(filepath.Join(dir, "bcryptprimitives.dll"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(system32, "bcryptprimitives.dll"), dll, 0o755); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte(want), 0o644)
}

// Environ returns environ with the prefix set, Wine's debug output off, and
// the dialogs offering to install Mono and Gecko suppressed.
func (e *Env) Environ(environ []string) []string {
	out := make([]string, 0, len(environ)+3)
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "WINEPREFIX", "WINEDEBUG", "WINEDLLOVERRIDES":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "WINEPREFIX="+e.Prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=")
}

// Command returns a command that runs the Windows program exe (a path on
// this machine, or a program in the prefix such as wineboot) with args
// under Wine, in the environment of this process.
func (e *Env) Command(exe string, args ...string) *exec.Cmd {
	cmd := exec.Command(e.Wine, append([]string{exe}, args...)...)
	cmd.Env = e.Environ(os.Environ())
	return cmd
}

// Overlay writes, into dir, a 'go build -overlay' file that makes
// os.RemoveAll work under Wine 8 (see the package comment), and returns
// its path. It patches the standard library of the go command on PATH.
func Overlay(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOROOT: %w", err)
	}
	orig := filepath.Join(strings.TrimSpace(string(out)), "src", "internal", "syscall", "windows", "at_windows.go")
	src, err := os.ReadFile(orig)
	if err != nil {
		return "", err
	}
	// The statuses after which Deleteat falls back to the call old Windows
	// has; Wine 8 answers STATUS_NOT_IMPLEMENTED (0xC0000002).
	const old = "STATUS_NOT_SUPPORTED:"
	if n := bytes.Count(src, []byte(old)); n != 1 {
		return "", fmt.Errorf("%s: found %q %d times, want once: this Go's os.RemoveAll changed; look again at what Wine needs", orig, old, n)
	}
	patched := bytes.Replace(src, []byte(old), []byte("STATUS_NOT_SUPPORTED, NTStatus(0xC0000002):"), 1)
	file := filepath.Join(dir, "at_windows.go")
	if err := os.WriteFile(file, patched, 0o644); err != nil {
		return "", err
	}
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {orig: file}})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "overlay.json")
	return path, os.WriteFile(path, overlay, 0o644)
}

// Require returns a ready prefix for a test that runs Windows programs, or
// skips the test: these tests take a while, so they run only when
// FLUIDITY_WINE is set (.ci/run sets it), and they need Packages.
func Require(t testing.TB) *Env {
	t.Helper()
	if os.Getenv("FLUIDITY_WINE") == "" {
		t.Skip("Windows under Wine: set FLUIDITY_WINE=1 to run (.ci/run does); needs " + Packages)
	}
	e, err := Setup(DefaultPrefix())
	if errors.Is(err, ErrNoWine) {
		t.Skipf("Windows under Wine: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}
