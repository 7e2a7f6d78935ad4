package proctest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"fluidity/internal/sockio"
)

// bin is the fluidity binary the Start functions run; set by Build or
// UseBinary from TestMain, before any test runs.
var bin string

// Build compiles fluidity/cmd/fluidity into dir and makes it the binary the
// Start functions run. It uses the go command on PATH. A test binary built
// with the portable socket code (the tag fluidity_portable, see package
// sockio) builds the binary with it too.
func Build(dir string) error {
	goBin, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		return fmt.Errorf("find the go command: %w", err)
	}
	out := filepath.Join(dir, "fluidity")
	args := []string{"build", "-o", out}
	if runtime.GOOS == "linux" && !sockio.Fast {
		args = append(args, "-tags", "fluidity_portable")
	}
	cmd := exec.Command(goBin, append(args, "fluidity/cmd/fluidity")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build fluidity/cmd/fluidity: %w", err)
	}
	bin = out
	return nil
}

// UseBinary makes path the binary the Start functions run, instead of one
// built by Build.
func UseBinary(path string) { bin = path }

// Binary is the path of the fluidity binary under test; empty before Build
// or UseBinary.
func Binary() string { return bin }

// Env is the environment for child processes: the test's own, without
// FLUIDITY_* variables (which the commands would read as configuration),
// without proxy variables and without CURL_HOME (which curl would obey).
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if strings.HasPrefix(upper, "FLUIDITY_") || strings.HasSuffix(upper, "_PROXY") || upper == "CURL_HOME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

var (
	helpMu   sync.Mutex
	helpText = map[string][]byte{} // guarded by helpMu: 'fluidity CMD --help' by CMD
)

// HasFlag reports whether 'fluidity cmd --help' lists flag. The help text
// is read once per command.
func HasFlag(cmd, flag string) bool {
	helpMu.Lock()
	defer helpMu.Unlock()
	out, ok := helpText[cmd]
	if !ok {
		c := exec.Command(bin, cmd, "--help")
		c.Env = Env()
		out, _ = c.CombinedOutput()
		helpText[cmd] = out
	}
	// The usage names a flag "  --name TYPE" or "  --name" on a line of its
	// own (older binaries: one dash).
	for _, dashes := range []string{"-", "--"} {
		if strings.Contains(string(out), "\n  "+dashes+flag+" ") || strings.Contains(string(out), "\n  "+dashes+flag+"\n") {
			return true
		}
	}
	return false
}
