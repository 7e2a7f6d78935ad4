package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
	"fluidity/internal/winetest"
)

// winPath is a path of this machine as a Windows program under Wine sees
// it: Wine maps drive Z: to /.
func winPath(p string) string { return `Z:` + strings.ReplaceAll(p, "/", `\`) }

// buildWindowsAgent cross-compiles fluidity.exe as users get it (no build
// overlay) for windows/amd64.
func buildWindowsAgent(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "fluidity.exe")
	cmd := exec.Command("go", "build", "-o", exe, "fluidity/cmd/fluidity")
	cmd.Env = append(os.Environ(), "GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build fluidity.exe: %v\n%s", err, out)
	}
	return exe
}

// regQuery returns the value's data as 'reg query' prints it, "" if it is
// absent.
func regQuery(t *testing.T, env *winetest.Env, name string) string {
	t.Helper()
	out, err := env.Command("reg", "query", `HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings`, "/v", name).Output()
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == name {
			return strings.Join(f[2:], " ")
		}
	}
	return ""
}

// TestWindowsAgentUnderWine runs fluidity.exe agent under Wine against a
// Linux exit, carries curl through it by HTTP, CONNECT and SOCKS5, sees it
// reconnect after the exit restarts, and sets the system proxy in Wine's
// registry, which 'fluidity.exe proxy off' puts back after the agent is
// killed.
func TestWindowsAgentUnderWine(t *testing.T) {
	env := winetest.Require(t)
	exe := buildWindowsAgent(t)
	certs := proctest.CertsInit(t)
	state := t.TempDir()
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private")

	// The user's own setting, which must come back.
	for _, set := range [][]string{
		{"ProxyEnable", "REG_DWORD", "0"},
		{"ProxyOverride", "REG_SZ", "*.corp.example"},
	} {
		if out, err := env.Command("reg", "add", `HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings`,
			"/v", set[0], "/t", set[1], "/d", set[2], "/f").CombinedOutput(); err != nil {
			t.Fatalf("reg add %s: %v\n%s", set[0], err, out)
		}
	}
	env.Command("reg", "delete", `HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings`, "/v", "ProxyServer", "/f").Run()

	wine := proctest.Launcher{Path: env.Wine, Env: env.Environ(proctest.Env())}
	agent, agentAddr := wine.StartReady(t, "agent.exe", proctest.AgentReady, func(addr string) []string {
		return []string{exe, "agent", "--listen", addr, "--server", exitAddr, "--certs", winPath(certs),
			"--admin", "", "--system-proxy", "--state-dir", winPath(state), "--log-level", "debug"}
	})
	proctest.WaitLinkUp(t, agent, 1, 60*time.Second)

	origin := newOrigin(t)
	tlsOrigin, caFile := newTLSOrigin(t)
	carry := func(round string) {
		t.Helper()
		if res := mustCurl(t, curlOpts{}, "-x", "http://"+agentAddr, origin.URL+"/hello"); res.stdout != "hello\n" {
			t.Errorf("%s: HTTP through the Windows agent got %q", round, res.stdout)
		}
		if res := mustCurl(t, curlOpts{}, "-x", "http://"+agentAddr, "--cacert", caFile, tlsOrigin.URL+"/"); res.stdout != "hello tls\n" {
			t.Errorf("%s: HTTPS (CONNECT) through the Windows agent got %q", round, res.stdout)
		}
		url := "http://localhost:" + urlPort(t, origin.URL) + "/hello"
		if res := mustCurl(t, curlOpts{}, "--socks5-hostname", agentAddr, url); res.stdout != "hello\n" {
			t.Errorf("%s: SOCKS5 through the Windows agent got %q", round, res.stdout)
		}
	}
	carry("first link")

	if got := regQuery(t, env, "ProxyServer"); got != agentAddr {
		t.Errorf("ProxyServer in Wine's registry = %q, want the agent's %s", got, agentAddr)
	}
	if got := regQuery(t, env, "ProxyEnable"); got != "0x1" {
		t.Errorf("ProxyEnable = %q, want 0x1", got)
	}
	if got := regQuery(t, env, "ProxyOverride"); !strings.HasPrefix(got, "*.corp.example;") || !strings.Contains(got, "127.*") {
		t.Errorf("ProxyOverride = %q, want the user's entry and loopback", got)
	}

	// The exit restarts on the same address: the agent reconnects.
	exit.Kill()
	proctest.StartExitAt(t, certs, exitAddr, "--allow-private")
	proctest.WaitLinkUp(t, agent, 2, 60*time.Second)
	carry("after the exit restarted")

	// Killed, the agent cannot restore the setting; proxy off does.
	agent.Kill()
	off := env.Command(exe, "proxy", "off", "--state-dir", winPath(state))
	off.Env = env.Environ(proctest.Env()) // no FLUIDITY_* of the test's own
	out, err := off.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "put back") {
		t.Fatalf("fluidity.exe proxy off: %v\n%s", err, out)
	}
	if got := regQuery(t, env, "ProxyEnable"); got != "0x0" {
		t.Errorf("ProxyEnable after proxy off = %q, want 0x0", got)
	}
	if got := regQuery(t, env, "ProxyServer"); got != "" {
		t.Errorf("ProxyServer after proxy off = %q, want none, as before", got)
	}
	if got := regQuery(t, env, "ProxyOverride"); got != "*.corp.example" {
		t.Errorf("ProxyOverride after proxy off = %q, want the user's", got)
	}
}
