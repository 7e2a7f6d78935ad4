package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

// fluidityBin is the binary built by TestMain.
var fluidityBin string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("curl"); err != nil {
		fmt.Println("e2e: skipping: curl is not installed (the end-to-end tests drive the proxy with curl)")
		return 0
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		fmt.Println("e2e: skipping: the go command is not on PATH, so the fluidity binary cannot be built")
		return 0
	}
	dir, err := os.MkdirTemp("", "fluidity-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	fluidityBin = filepath.Join(dir, "fluidity")
	build := exec.Command(goBin, "build", "-o", fluidityBin, "fluidity/cmd/fluidity")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go build fluidity/cmd/fluidity:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutines leaked by the tests:", err)
			return 1
		}
	}
	return code
}
