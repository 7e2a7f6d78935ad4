package faults

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
)

// soak is how long TestSoak runs; zero skips it.
var soak = flag.Duration("soak", 0, "run TestSoak for this long (for example 10m); zero skips it")

// binFlag names a fluidity binary to test instead of building one.
var binFlag = flag.String("fluidity", "", "test this fluidity binary instead of building one from the source")

// fluidityBin is the binary built by TestMain (or given with -fluidity); empty when it could not be
// built, and the process tests skip.
var fluidityBin string

// helperEnv, when set in the environment, makes the test binary run as a
// helper process instead of running tests (see runHelper).
const helperEnv = "FLUIDITY_FAULTS_HELPER"

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(runHelper(h))
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	flag.Parse()
	raiseOpenFiles()
	switch {
	case runtime.GOOS != "linux", fuzzWorker():
	case *binFlag != "":
		fluidityBin, _ = filepath.Abs(*binFlag)
	default:
		dir, err := os.MkdirTemp("", "fluidity-faults-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "faults: goroutines leaked by the tests:", err)
			return 1
		}
	}
	return code
}

// fuzzWorker reports whether this process runs fuzz inputs for 'go test
// -fuzz', which needs no fluidity binary.
func fuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// build compiles fluidity into dir and sets fluidityBin.
func build(dir string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "fluidity")
	cmd := exec.Command(goBin, "build", "-o", bin, "fluidity/cmd/fluidity")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build fluidity/cmd/fluidity: %w", err)
	}
	fluidityBin = bin
	return nil
}

// openFilesLimit is the soft RLIMIT_NOFILE after raiseOpenFiles, which
// child processes inherit.
var openFilesLimit uint64

// raiseOpenFiles raises the soft limit on open files to the hard limit (and
// the hard limit too, where the process may), for this process and the
// processes it starts.
func raiseOpenFiles() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 16, Max: max(lim.Max, 1<<16)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil {
		openFilesLimit = lim.Cur
	}
}

// needProcesses skips a test that starts fluidity processes when they
// cannot run here.
func needProcesses(t *testing.T) {
	t.Helper()
	if fluidityBin == "" {
		t.Skip("the process tests need Linux (/proc) and the go command to build fluidity")
	}
}

// childEnv is the environment for child processes: the test's own, without
// FLUIDITY_* variables (which the commands would read as configuration) and
// without proxy variables.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		upper := strings.ToUpper(name)
		if strings.HasPrefix(upper, "FLUIDITY_") || strings.HasSuffix(upper, "_PROXY") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
