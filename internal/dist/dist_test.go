package dist

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBuildAndCheck builds the native platform's archive and runs its
// version command. Cross-compiling takes minutes on a small machine, so it
// runs when asked (FLUIDITY_DIST=1); CI's 'make dist' builds and checks
// every platform.
func TestBuildAndCheck(t *testing.T) {
	if os.Getenv("FLUIDITY_DIST") == "" {
		t.Skip("compiles fluidity: set FLUIDITY_DIST=1 to run ('make dist' builds every platform)")
	}
	dir := t.TempDir()
	native := Platform{runtime.GOOS, runtime.GOARCH}
	const version, commit = "v0.0.0-test", "0123456789abcdef0123456789abcdef01234567"
	if err := Build(context.Background(), Options{Dir: dir, Version: version, Commit: commit, Platforms: []Platform{native}}); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir, version, commit, []Platform{native}); err != nil {
		t.Fatalf("Check of a fresh archive: %v", err)
	}
	bin, err := extract(filepath.Join(dir, Archive(version, native)), native)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), binaryName(native))
	os.WriteFile(exe, bin, 0o755)
	out, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) || !strings.Contains(string(out), commit) || !strings.Contains(string(out), native.String()) {
		t.Errorf("fluidity version = %q, %v; want the version, the commit and %s", out, err, native)
	}
}

// TestCheckFindsEachProblem packs this test binary, which is a real
// executable of this platform, with the stamps appended (the headers do not
// mind), and spoils the archives one way at a time.
func TestCheckFindsEachProblem(t *testing.T) {
	native := Platform{runtime.GOOS, runtime.GOARCH}
	if native.OS != "linux" && native.OS != "darwin" && native.OS != "windows" {
		t.Skip("no release for", native)
	}
	// Made at run time, so the test binary does not hold them already.
	version, commit := fmt.Sprintf("v9.9.%d-check", os.Getpid()), fmt.Sprintf("%040x", time.Now().UnixNano())
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	stamped := filepath.Join(t.TempDir(), binaryName(native))
	os.WriteFile(stamped, append(self, []byte(version+" "+commit)...), 0o755)
	unstamped := filepath.Join(t.TempDir(), binaryName(native))
	os.WriteFile(unstamped, self, 0o755)
	wrongArch := Platform{native.OS, map[string]string{"amd64": "arm64", "arm64": "amd64"}[native.Arch]}
	wrongOS := Platform{map[string]string{"linux": "windows", "windows": "darwin", "darwin": "linux"}[native.OS], native.Arch}

	// layout packs bin as the archive of p in a fresh directory, with its
	// sum, and returns the directory.
	layout := func(bin string, p Platform) string {
		dir := t.TempDir()
		name := Archive(version, p)
		if err := pack(filepath.Join(dir, name), p, bin, nil); err != nil {
			t.Fatal(err)
		}
		sum, _ := fileSum(filepath.Join(dir, name))
		os.WriteFile(filepath.Join(dir, SumsFile), []byte(sum+"  "+name+"\n"), 0o644)
		return dir
	}
	if err := Check(layout(stamped, native), version, commit, []Platform{native}); err != nil {
		t.Fatalf("Check of a good archive: %v", err)
	}
	for _, tc := range []struct {
		name  string
		dir   func() string
		check Platform
		want  string
	}{
		{"a changed archive", func() string {
			dir := layout(stamped, native)
			f, _ := os.OpenFile(filepath.Join(dir, Archive(version, native)), os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte{0})
			f.Close()
			return dir
		}, native, "SHA-256"},
		{"a platform not built", func() string { return layout(stamped, native) }, wrongArch, "not in SHA256SUMS"},
		{"a binary of another architecture", func() string { return layout(stamped, wrongArch) }, wrongArch, "want " + wrongArch.Arch},
		{"a binary of another system", func() string { return layout(stamped, wrongOS) }, wrongOS, "not a"},
		{"a binary without the stamps", func() string { return layout(unstamped, native) }, native, "does not carry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(tc.dir(), version, commit, []Platform{tc.check})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want it to report %q", err, tc.want)
			}
		})
	}
}
