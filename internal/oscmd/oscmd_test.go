package oscmd

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The test binary is the command: run with OSCMD_EXIT set, it writes
// OSCMD_STDOUT and OSCMD_STDERR and exits with that status.
func TestMain(m *testing.M) {
	if code := os.Getenv("OSCMD_EXIT"); code != "" {
		fmt.Fprint(os.Stdout, os.Getenv("OSCMD_STDOUT"))
		fmt.Fprint(os.Stderr, os.Getenv("OSCMD_STDERR"))
		if code != "0" {
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(t *testing.T, exit, stdout, stderr string) {
	t.Setenv("OSCMD_EXIT", exit)
	t.Setenv("OSCMD_STDOUT", stdout)
	t.Setenv("OSCMD_STDERR", stderr)
}

func TestExecReturnsStdout(t *testing.T) {
	helper(t, "0", "the output\n", "a warning")
	out, err := Exec(context.Background(), os.Args[0], "-test.run=^$")
	if err != nil || string(out) != "the output\n" {
		t.Fatalf("Exec = %q, %v; want the standard output and no error", out, err)
	}
}

// A failure names the command and carries what it wrote to both streams:
// launchctl and schtasks report some errors on stdout.
func TestExecFailureCarriesWhatTheCommandWrote(t *testing.T) {
	helper(t, "3", "ERROR: on stdout", "error: on stderr\n")
	out, err := Exec(context.Background(), os.Args[0], "-test.run=^$")
	if err == nil {
		t.Fatal("a command that exits with 3 returned no error")
	}
	for _, want := range []string{"-test.run=^$", "exit status 3", "error: on stderr ERROR: on stdout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if string(out) != "ERROR: on stdout" {
		t.Errorf("stdout = %q, want what the command wrote there", out)
	}
}

func TestExecOfAMissingCommand(t *testing.T) {
	_, err := Exec(context.Background(), "fluidity-no-such-command")
	if err == nil || !strings.Contains(err.Error(), "fluidity-no-such-command") {
		t.Fatalf("Exec of a missing command = %v; want an error naming it", err)
	}
}

// The nil Runner runs the command; another Runner is used as it is.
func TestRunnerRun(t *testing.T) {
	helper(t, "0", "ran", "")
	var none Runner
	if out, err := none.Run(context.Background(), os.Args[0], "-test.run=^$"); err != nil || string(out) != "ran" {
		t.Fatalf("nil Runner: %q, %v; want the command run", out, err)
	}
	var got []string
	fake := Runner(func(_ context.Context, name string, args ...string) ([]byte, error) {
		got = append([]string{name}, args...)
		return []byte("faked"), nil
	})
	if out, err := fake.Run(context.Background(), "launchctl", "list"); err != nil || string(out) != "faked" {
		t.Fatalf("fake Runner: %q, %v", out, err)
	}
	if strings.Join(got, " ") != "launchctl list" {
		t.Fatalf("fake Runner was called with %q", got)
	}
}
