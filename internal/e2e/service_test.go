//go:build unix

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// waitFile polls path until it holds s n times.
// waitLinkUps waits until the agent's log file at path says its link came
// up n times (proctest.LinkUps), and returns the file.
func waitLinkUps(t *testing.T, path string, n int, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		b, _ := os.ReadFile(path)
		if proctest.LinkUps(string(b)) >= n {
			return string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not say the link came up %d times after %v:\n%s", path, n, d, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServiceRunRestartsACrashedAgent runs what the login service runs,
// 'fluidity service run', kills its agent as a crash would, and sees it
// started again, all of it in the log file, and 'service status' say so.
func TestServiceRunRestartsACrashedAgent(t *testing.T) {
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	state := t.TempDir()
	listen := proctest.FreeAddr(t)
	run := proctest.Start(t, "service run", "service", "run", "--state-dir", state, "--",
		"--server", exitAddr, "--certs", certs, "--listen", listen, "--admin", "")
	log := filepath.Join(state, "fluidity-agent.log")
	waitLinkUps(t, log, 1, 30*time.Second)

	var st struct {
		PID      int `json:"pid"`
		Restarts int `json:"restarts"`
	}
	b, err := os.ReadFile(filepath.Join(state, "service-state.json"))
	if err != nil || json.Unmarshal(b, &st) != nil || st.PID == 0 {
		t.Fatalf("service-state.json = %s, %v; want the agent's pid", b, err)
	}
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	text := waitLinkUps(t, log, 2, 30*time.Second)
	if !strings.Contains(text, "program crashed; restarting") {
		t.Errorf("the log does not say the agent crashed and was restarted:\n%s", text)
	}
	mustCurl(t, curlOpts{}, "-x", "http://"+listen, newOrigin(t).URL+"/hello")

	cmd := exec.Command(proctest.Binary(), "service", "status", "--state-dir", state)
	cmd.Env = proctest.Env()
	out, _ := cmd.CombinedOutput()
	for _, want := range []string{"restarts after a crash: 1", "Log: " + log, "Agent: pid "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("service status does not say %q:\n%s", want, out)
		}
	}

	// Stopped, it stops the agent and exits 0 (a service manager does not
	// restart it).
	b, _ = os.ReadFile(filepath.Join(state, "service-state.json"))
	json.Unmarshal(b, &st)
	run.Signal(t, syscall.SIGTERM)
	if code := run.WaitExit(t, 20*time.Second); code != 0 {
		t.Errorf("service run exited %d after SIGTERM, want 0", code)
	}
	if syscall.Kill(st.PID, 0) == nil {
		t.Errorf("the agent (pid %d) still runs after service run stopped", st.PID)
	}
}
