package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"go.uber.org/goleak"

	"fluidity/internal/proctest"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if _, err := exec.LookPath("curl"); err != nil {
		fmt.Println("e2e: skipping: curl is not installed (the end-to-end tests drive the proxy with curl)")
		return 0
	}
	if _, err := exec.LookPath("go"); err != nil {
		fmt.Println("e2e: skipping: the go command is not on PATH, so the fluidity binary cannot be built")
		return 0
	}
	dir, err := os.MkdirTemp("", "fluidity-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := proctest.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
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
