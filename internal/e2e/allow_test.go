package e2e

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// TestAnAgentBeyondLoopbackServesOnlyItsAllowlist listens on this
// machine's non-loopback address with an allowlist that leaves that
// address out, as a LAN neighbour would be: the agent warns at start, and
// curl from that address is refused.
func TestAnAgentBeyondLoopbackServesOnlyItsAllowlist(t *testing.T) {
	var self netip.Addr
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
			self = p.Addr()
			break
		}
	}
	if !self.IsValid() {
		t.Skip("this machine has no non-loopback IPv4 address")
	}
	tp := startPair(t)
	other := netip.PrefixFrom(self.Next(), 32).String()
	agent, _ := proctest.StartReady(t, "open agent", proctest.AgentReady, func(string) []string {
		return []string{"agent", "--listen", net.JoinHostPort(self.String(), "0"), "--allow-non-loopback",
			"--allow-clients", other, "--server", tp.exitAddr, "--certs", tp.certs, "--admin", ""}
	})
	if !agent.WaitLog("listening beyond loopback", 1, 5*time.Second) || !strings.Contains(agent.Stderr(), other) {
		t.Fatalf("the agent did not warn at start that it listens beyond loopback, naming %s:\n%s", other, agent.Stderr())
	}
	// Its real port is in its start-up line.
	var port string
	for _, f := range strings.Fields(agent.Stderr()) {
		if strings.HasPrefix(f, "addr="+self.String()+":") {
			port = strings.TrimPrefix(f, "addr="+self.String()+":")
			break
		}
	}
	if port == "" {
		t.Fatalf("no listening address in the agent's log:\n%s", agent.Stderr())
	}
	origin := newOrigin(t)
	res := runCurl(t, curlOpts{}, "--interface", self.String(), "-x", "http://"+net.JoinHostPort(self.String(), port), origin.URL+"/hello")
	if res.code == 0 || res.stdout == "hello\n" {
		t.Errorf("a client outside the allowlist was served: exit %d, %q", res.code, res.stdout)
	}
	if !agent.WaitLog("client refused: its address is not in allow_clients", 1, 5*time.Second) {
		t.Errorf("the agent did not log the refusal:\n%s", agent.Stderr())
	}
}
