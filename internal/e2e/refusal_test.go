package e2e

import (
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// TestRefusalsTellTheUserWhy checks the answers a user gets when the exit
// cannot or will not reach a target.
func TestRefusalsTellTheUserWhy(t *testing.T) {
	origin := newOrigin(t)

	t.Run("policy refusal", func(t *testing.T) {
		strict := startPair(t, "--log-level", "info") // no --allow-private: loopback targets are refused
		proxy := "http://" + strict.agentAddr

		res := mustCurl(t, curlOpts{}, "-x", proxy, "-i", origin.URL+"/hello")
		if !strings.HasPrefix(res.stdout, "HTTP/1.1 403") || !strings.Contains(res.stdout, "destination_ip_prohibited") ||
			!strings.Contains(res.stdout, "refused by egress policy") {
			t.Errorf("forwarded GET: got %q, want 403 with Proxy-Status destination_ip_prohibited and the policy's reason", res.stdout)
		}

		res = runCurl(t, curlOpts{}, "-p", "-x", proxy, "-v", origin.URL+"/hello")
		if res.code == 0 || !strings.Contains(res.stderr, "< HTTP/1.1 403") || !strings.Contains(res.stderr, "error=destination_ip_prohibited") {
			t.Errorf("CONNECT: curl exit %d, stderr %q: want 403 with the Proxy-Status reason", res.code, res.stderr)
		}

		host, port := splitHostPort(t, strings.TrimPrefix(origin.URL, "http://"))
		c, reply := dialSOCKS5(t, strict.agentAddr, host, port)
		if c != nil || reply != 2 {
			t.Errorf("SOCKS5: reply %d, want 2 (connection not allowed by ruleset)", reply)
		}
		res = runCurl(t, curlOpts{}, "--socks5-hostname", strict.agentAddr, "--max-time", "10", origin.URL+"/hello")
		if res.code == 0 || res.code == 28 {
			t.Errorf("curl over SOCKS5: exit %d (%s), want a SOCKS failure, not success or a timeout", res.code, res.stderr)
		}
		t.Logf("curl over SOCKS5 to a refused target: exit %d after %v: %s", res.code, res.duration.Round(time.Millisecond), strings.TrimSpace(res.stderr))
	})

	tp := startPair(t)
	proxy := "http://" + tp.agentAddr

	t.Run("closed port", func(t *testing.T) {
		closed := proctest.FreeAddr(t)
		res := mustCurl(t, curlOpts{}, "-x", proxy, "-i", "http://"+closed+"/")
		if !strings.HasPrefix(res.stdout, "HTTP/1.1 502") || !strings.Contains(res.stdout, "connection_refused") {
			t.Errorf("got %q, want 502 with connection_refused", res.stdout)
		}
		if res.duration > 2*time.Second {
			t.Errorf("502 took %v, want it at once", res.duration)
		}
	})

	t.Run("unknown host", func(t *testing.T) {
		res := mustCurl(t, curlOpts{}, "-x", proxy, "-i", "http://nonexistent.invalid/")
		if !strings.HasPrefix(res.stdout, "HTTP/1.1 502") || !strings.Contains(res.stdout, "dns_error") ||
			!strings.Contains(res.stdout, "nonexistent.invalid") {
			t.Errorf("got %q, want 502 with dns_error naming the host", res.stdout)
		}
	})
}
