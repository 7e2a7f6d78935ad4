package faults

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"go.uber.org/goleak"

	"fluidity/internal/proctest"
)

// soak is how long TestSoak runs; zero skips it.
var soak = flag.Duration("soak", 0, "run TestSoak for this long (for example 10m); zero skips it")

// binFlag names a fluidity binary to test instead of building one.
var binFlag = flag.String("fluidity", "", "test this fluidity binary instead of building one from the source")

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
		bin, _ := filepath.Abs(*binFlag)
		proctest.UseBinary(bin)
	default:
		dir, err := os.MkdirTemp("", "fluidity-faults-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := proctest.Build(dir); err != nil {
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

// needProcesses skips a test that starts fluidity processes when they
// cannot run here.
func needProcesses(t *testing.T) {
	t.Helper()
	if proctest.Binary() == "" {
		t.Skip("the process tests need Linux (/proc) and the go command to build fluidity")
	}
}
