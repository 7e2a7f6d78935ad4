package e2e

import (
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// TestHTTP1TunnelsPerClientAreCapped runs an exit that allows two HTTP/1.1
// CONNECT tunnels per client. With two open, a third from the same client
// certificate (a real curl) gets 429 naming the limit, while another
// client's gets through; once one closes, the first client's gets through
// again.
func TestHTTP1TunnelsPerClientAreCapped(t *testing.T) {
	certs := proctest.CertsInit(t)
	issueClient(t, certs, "phone")
	procs := proctest.Launcher{Admin: true, ExitFlags: []string{"--allow-private"}}
	exit, exitAddr := procs.StartExit(t, certs, "--max-tunnels-per-client", "2")
	origin := newOrigin(t)
	echo := newEchoHash(t)

	held := []*heldTunnel{holdTunnel(t, certs, exitAddr, "", echo.Addr()), holdTunnel(t, certs, exitAddr, "", echo.Addr())}

	res := runCurl(t, curlOpts{}, directCurlArgs(certs, exitAddr, "", "-v", "-p", origin.URL+"/hello")...)
	if res.code == 0 || !strings.Contains(res.stderr, "< HTTP/1.1 429") || !strings.Contains(res.stderr, "connection_limit_reached") ||
		!strings.Contains(res.stderr, "max_tunnels_per_client") {
		t.Fatalf("a third tunnel of one client: curl exit %d, stderr:\n%s\nwant 429 with connection_limit_reached naming max_tunnels_per_client", res.code, res.stderr)
	}
	if !exit.WaitLog("reason=max_tunnels_per_client", 1, 5*time.Second) {
		t.Errorf("the exit did not log the refusal")
	}
	if line := metricLine(t, exit.Admin(), `fluidity_exit_links_refused_total{reason="max_tunnels_per_client"}`); !strings.HasSuffix(line, " 1") {
		t.Errorf("refusals counted: %q; want 1", line)
	}

	if res := mustCurl(t, curlOpts{}, directCurlArgs(certs, exitAddr, "phone", "-p", origin.URL+"/hello")...); res.stdout != "hello\n" {
		t.Fatalf("another client's tunnel: %q", res.stdout)
	}

	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		res = runCurl(t, curlOpts{}, directCurlArgs(certs, exitAddr, "", "-p", origin.URL+"/hello")...)
		if res.code == 0 && res.stdout == "hello\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one of its tunnels closed, the client's curl: exit %d, %s", res.code, res.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
