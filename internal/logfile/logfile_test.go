package logfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFileRotatesBySizeAndKeepsTheNewest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs", "agent.log")
	l, err := Open(path, Options{MaxBytes: 20, Keep: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"one 456789\n", "two 456789\n", "three 6789\n", "four 56789\n", "five 56789\n"} {
		if _, err := l.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		path:        "five 56789\n",
		path + ".1": "four 56789\n",
		path + ".2": "three 6789\n",
	} {
		if got := read(t, name); got != want {
			t.Errorf("%s holds %q, want %q", filepath.Base(name), got, want)
		}
	}
	if _, err := os.Stat(path + ".3"); !os.IsNotExist(err) {
		t.Errorf("%s.3 exists (err %v): only 2 rotated files are kept", filepath.Base(path), err)
	}
	if _, err := l.Write([]byte("late\n")); err == nil {
		t.Error("a write after Close succeeded")
	}
}

func TestFileAppendsToWhatAnEarlierRunWrote(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	if err := os.WriteFile(path, []byte("earlier run 90123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path, Options{MaxBytes: 30})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The earlier 18 bytes count: 18 + 13 passes 30.
	l.Write([]byte("this run 123\n"))
	if got := read(t, path); got != "this run 123\n" {
		t.Errorf("log after a write past the limit holds %q, want only the new line", got)
	}
	if got := read(t, path+".1"); got != "earlier run 90123\n" {
		t.Errorf("rotated log holds %q, want the earlier run's line", got)
	}
}

func TestALargeWriteGoesWholeIntoOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.log")
	l, err := Open(path, Options{MaxBytes: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	big := strings.Repeat("x", 25) + "\n"
	l.Write([]byte("small\n"))
	l.Write([]byte(big))
	if got := read(t, path); got != big {
		t.Errorf("log holds %q, want the large write whole", got)
	}
	if got := read(t, path+".1"); got != "small\n" {
		t.Errorf("rotated log holds %q, want the line before", got)
	}
}
