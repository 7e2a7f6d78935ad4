// Package golden compares what a test produced with a file kept in the
// repository, and rewrites the file instead when the test runs with
// -update (for a change that is meant).
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files the tests compare with")

// Check fails t unless got is the content of testdata/name, in the test's
// package directory. With -update it first writes got there, making the
// file's directory if need be.
func Check(t testing.TB, name, got string) {
	t.Helper()
	CheckFile(t, filepath.Join("testdata", name), got)
}

// CheckFile is Check for a file elsewhere, such as a generated document;
// path is relative to the test's package directory.
func CheckFile(t testing.TB, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run the test with -update if the change is meant):\n--- got\n%s--- want\n%s", path, got, want)
	}
}
