//go:build unix

package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

const proxyPassword = "s3cret-Pa55"

// agentVia starts an agent whose link to exitAddr goes through the
// upstream proxy proxyURL, with the proxy's password in the environment.
func agentVia(t *testing.T, certs, exitAddr, proxyURL, password string, extra ...string) (*proctest.Proc, string) {
	t.Helper()
	l := proctest.Launcher{Env: append(proctest.Env(), "FLUIDITY_UPSTREAM_PROXY_PASSWORD="+password)}
	return l.StartAgent(t, certs, exitAddr, append([]string{"--upstream-proxy", proxyURL}, extra...)...)
}

func assertNoPassword(t *testing.T, where, text, password string) {
	t.Helper()
	if strings.Contains(text, password) {
		t.Errorf("the proxy's password appears in %s", where)
	}
}

func TestAgentReachesTheExitThroughSquidWithBasicAuth(t *testing.T) {
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	_, exitPort, _ := net.SplitHostPort(exitAddr)
	sq := startSquid(t, exitPort, &squidAuth{scheme: "basic", user: "alice", password: proxyPassword})
	agent, agentAddr := agentVia(t, certs, exitAddr, "http://alice@"+sq.addr, proxyPassword)
	proctest.WaitLinkUp(t, agent, 1, linkWithin)
	o := newOrigin(t)
	res := mustCurl(t, curlOpts{}, "-x", "http://"+agentAddr, o.URL+"/hello")
	if res.stdout != "hello\n" {
		t.Errorf("through Squid and the exit: %q", res.stdout)
	}
	if !agent.WaitLog("via upstream proxy "+sq.addr, 1, time.Second) {
		t.Error("the agent did not say it reaches the exit through the proxy")
	}
	assertNoPassword(t, "the agent's log", agent.Stderr(), proxyPassword)
	assertNoPassword(t, "the exit's log", exit.Stderr(), proxyPassword)
	// Squid logs a CONNECT when its tunnel ends.
	agent.Kill()
	if !sq.waitAccessLog(5*time.Second, "CONNECT", exitAddr, "alice") {
		t.Errorf("Squid did not log alice's CONNECT to %s:\n%s", exitAddr, readFile(sq.dir+"/access.log"))
	}
}

func TestWrongProxyPasswordGivesThe407WithItsScheme(t *testing.T) {
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	_, exitPort, _ := net.SplitHostPort(exitAddr)
	sq := startSquid(t, exitPort, &squidAuth{scheme: "basic", user: "alice", password: proxyPassword})
	const wrong = "not-the-Pa55word"
	agent, agentAddr := agentVia(t, certs, exitAddr, "http://alice@"+sq.addr, wrong)
	// (slog's text format escapes the quotes.)
	want := `407 Proxy Authentication Required (it asks for Basic realm=\"Fluidity test proxy\"): it refused the Basic credentials of user \"alice\"`
	if !agent.WaitLog(want, 1, linkWithin) {
		t.Fatalf("the agent's log lacks %q:\n%s", want, agent.Stderr())
	}
	// A client is told too, and never sees the password either.
	res := runCurl(t, curlOpts{}, "-i", "-x", "http://"+agentAddr, "--max-time", "40", "http://127.0.0.1:9/")
	if !strings.Contains(res.stdout, "503") || !strings.Contains(res.stdout, "407") {
		t.Errorf("a client's answer while the proxy refuses us: %q", res.stdout)
	}
	for where, text := range map[string]string{"the agent's log": agent.Stderr(), "the client's answer": res.stdout} {
		assertNoPassword(t, where, text, wrong)
	}
}

func TestSquidRefusingTheExitsPortGivesItsMessage(t *testing.T) {
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	// Squid allows CONNECT to another port only, as most allow only 443.
	sq := startSquid(t, "1", nil)
	agent, _ := agentVia(t, certs, exitAddr, "http://"+sq.addr, "")
	want := "upstream proxy " + sq.addr + " would not connect to " + exitAddr + ": 403 Forbidden (ERR_ACCESS_DENIED"
	if !agent.WaitLog(want, 1, linkWithin) {
		t.Fatalf("the agent's log lacks %q:\n%s", want, agent.Stderr())
	}
	if !agent.WaitLog("ask IT to allow CONNECT to "+exitAddr, 1, time.Second) {
		t.Error("the refusal does not say what to ask for")
	}
}

func TestAgentSignsInToSquidWithNTLM(t *testing.T) {
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	_, exitPort, _ := net.SplitHostPort(exitAddr)
	sq := startSquid(t, exitPort, &squidAuth{scheme: "ntlm"})
	// Squid's ntlm_fake_auth takes any password but runs the full
	// NEGOTIATE, CHALLENGE, AUTHENTICATE exchange on one connection.
	agent, agentAddr := agentVia(t, certs, exitAddr, "http://CORP%5Cbob@"+sq.addr, proxyPassword, "--upstream-proxy-auth", "ntlm")
	proctest.WaitLinkUp(t, agent, 1, linkWithin)
	o := newOrigin(t)
	if res := mustCurl(t, curlOpts{}, "-x", "http://"+agentAddr, o.URL+"/hello"); res.stdout != "hello\n" {
		t.Errorf("through Squid (NTLM) and the exit: %q", res.stdout)
	}
	agent.Kill()
	if !sq.waitAccessLog(5*time.Second, "CONNECT", exitAddr, "bob") {
		t.Errorf("Squid did not log bob's CONNECT:\n%s", readFile(sq.dir+"/access.log"))
	}
	assertNoPassword(t, "the agent's log", agent.Stderr(), proxyPassword)
}
