package route

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPACAgreesWithDirect evaluates the PAC file in Node.js, with the
// standard PAC helper functions, and checks that it decides every host of
// the table, in URLs of several schemes, as Direct does.
func TestPACAgreesWithDirect(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed; .ci/run installs it (apt-get install nodejs)")
		}
		t.Skip("node is not installed (apt-get install nodejs): the PAC file cannot be evaluated")
	}
	r, err := Parse(testRules)
	if err != nil {
		t.Fatal(err)
	}
	results := EvalPAC(t, node, r.PAC("127.0.0.1:8080"), pacURLs())
	for i, u := range pacURLs() {
		host := HostOf(u)
		want := "PROXY 127.0.0.1:8080"
		if r.Direct(host) {
			want = "DIRECT"
		}
		if results[i] != want {
			t.Errorf("%s: the PAC file says %q, the agent %q", u, results[i], want)
		}
	}
}

func pacURLs() []string {
	var urls []string
	for _, tc := range directTable {
		h := tc.host
		if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
			h = "[" + h + "]"
		}
		if strings.Contains(h, "999.") {
			continue // not a host a URL can hold
		}
		urls = append(urls, "http://"+h+"/", "https://"+h+":8443/x?y", "ws://"+h+"/")
	}
	return urls
}

// HostOf is the host a browser passes FindProxyForURL, less brackets.
func HostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	rest, _, _ = strings.Cut(rest, "/")
	if strings.HasPrefix(rest, "[") {
		return rest[1:strings.Index(rest, "]")]
	}
	h, _, _ := strings.Cut(rest, ":")
	return h
}

// EvalPAC runs pac in Node.js for each URL and returns FindProxyForURL's
// results.
func EvalPAC(t testing.TB, node string, pac []byte, urls []string) []string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "proxy.pac")
	if err := os.WriteFile(file, pac, 0o644); err != nil {
		t.Fatal(err)
	}
	harness, err := filepath.Abs("testdata/pac_harness.js")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, harness, file)
	cmd.Stdin = strings.NewReader(strings.Join(urls, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s\nPAC file:\n%s", err, out, pac)
	}
	res := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(res) != len(urls) {
		t.Fatalf("node gave %d results for %d URLs:\n%s", len(res), len(urls), out)
	}
	return res
}
