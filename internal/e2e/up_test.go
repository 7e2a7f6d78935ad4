package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// TestUpRunsBothSidesAndReusesCertificates runs 'fluidity up' as a user
// would: it prints the proxy address and a curl example, carries a request,
// stops cleanly on Ctrl-C, and a second run keeps the certificates of the
// first.
func TestUpRunsBothSidesAndReusesCertificates(t *testing.T) {
	origin := newOrigin(t)
	stateDir := filepath.Join(t.TempDir(), "state")

	runUp := func(t *testing.T) {
		t.Helper()
		up, addr := proctest.StartReady(t, "up", proctest.AgentReady, func(addr string) []string {
			// The origin is on loopback, which up refuses by default.
			return []string{"up", "--state-dir", stateDir, "--listen", addr, "--log-level", "debug", "--allow-private"}
		})
		if !up.WaitStdout("Press Ctrl-C to stop.", 5*time.Second) {
			t.Fatalf("up printed no banner:\n%s", up.Stdout())
		}
		out := up.Stdout()
		for _, want := range []string{"local proxy on " + addr, "curl -x http://" + addr, "--socks5-hostname " + addr, "Private targets are allowed (--allow-private)"} {
			if !strings.Contains(out, want) {
				t.Errorf("up printed %q, want it to contain %q", out, want)
			}
		}
		proctest.WaitLinkUp(t, up, 1, linkWithin)
		res := mustCurl(t, curlOpts{}, "-x", "http://"+addr, origin.URL+"/hello")
		if res.stdout != "hello\n" {
			t.Fatalf("curl through up got %q", res.stdout)
		}
		stopAt := time.Now()
		up.Signal(t, syscall.SIGINT)
		if code := up.WaitExit(t, 3*time.Second); code != 0 {
			t.Fatalf("up exited with status %d after SIGINT, want 0", code)
		}
		t.Logf("up stopped %v after SIGINT", time.Since(stopAt).Round(time.Millisecond))
	}

	runUp(t)
	before := readDir(t, filepath.Join(stateDir, "certs"))
	if len(before) < 6 {
		t.Fatalf("first run left %d files in the state directory, want the CA, server and client files", len(before))
	}
	runUp(t)
	after := readDir(t, filepath.Join(stateDir, "certs"))
	if len(after) != len(before) {
		t.Fatalf("second run changed the certificate files: %d before, %d after", len(before), len(after))
	}
	for name, data := range before {
		if !bytes.Equal(after[name], data) {
			t.Errorf("second run changed %s", name)
		}
	}
}

// TestUpRefusesPrivateTargetsByDefault runs 'fluidity up' without flags:
// it says that private targets are refused, and a request through it to a
// service on this machine gets the exit's 403 naming the address, while
// with --allow-private the same request goes through.
func TestUpRefusesPrivateTargetsByDefault(t *testing.T) {
	origin := newOrigin(t)
	for _, tc := range []struct {
		name   string
		flags  []string
		banner string
		status string
	}{
		{"by default", nil, "Private targets (this machine, your network, cloud metadata) are refused; --allow-private lets them through.", "403"},
		{"with --allow-private", []string{"--allow-private"}, "Private targets are allowed (--allow-private)", "200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stateDir := filepath.Join(t.TempDir(), "state")
			up, addr := proctest.StartReady(t, "up", proctest.AgentReady, func(addr string) []string {
				return append([]string{"up", "--state-dir", stateDir, "--listen", addr, "--admin", ""}, tc.flags...)
			})
			if !up.WaitStdout("Press Ctrl-C to stop.", 5*time.Second) {
				t.Fatalf("up printed no banner:\n%s", up.Stdout())
			}
			if !strings.Contains(up.Stdout(), tc.banner) {
				t.Fatalf("up's banner does not say %q:\n%s", tc.banner, up.Stdout())
			}
			proctest.WaitLinkUp(t, up, 1, linkWithin)
			res := runCurl(t, curlOpts{}, "-x", "http://"+addr, "-i", origin.URL+"/hello")
			if !strings.HasPrefix(res.stdout, "HTTP/1.1 "+tc.status) {
				t.Fatalf("a request to %s through up: %q; want %s", origin.URL, res.stdout, tc.status)
			}
			if tc.status == "403" && (!strings.Contains(res.stdout, "destination_ip_prohibited") || !strings.Contains(res.stdout, "127.0.0.1")) {
				t.Fatalf("the refusal does not name the address and the reason: %q", res.stdout)
			}
		})
	}
}

// readDir returns the contents of every file in dir by name.
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

// TestAgentStopsPromptlyOnInterrupt checks that Ctrl-C stops an agent at
// once when nothing is in progress, even though its keep-alive connection to
// the origin of an earlier request is still open through the tunnel.
func TestAgentStopsPromptlyOnInterrupt(t *testing.T) {
	tp := startPair(t)
	origin := newOrigin(t)
	mustCurl(t, curlOpts{}, "-x", "http://"+tp.agentAddr, origin.URL+"/hello")
	stopAt := time.Now()
	tp.agent.Signal(t, syscall.SIGINT)
	if code := tp.agent.WaitExit(t, 3*time.Second); code != 0 {
		t.Fatalf("agent exited with status %d after SIGINT, want 0", code)
	}
	t.Logf("agent stopped %v after SIGINT", time.Since(stopAt).Round(time.Millisecond))
}
