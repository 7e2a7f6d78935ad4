package e2e

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// TestRevokedClientsAreCutOff runs an exit that reads the CRL of its
// certificate directory and a list file of its own, and revokes clients
// while it runs: with 'fluidity certs revoke' a laptop that has an agent's
// HTTP/2 link and a curl-style HTTP/1.1 tunnel open, then a phone by its
// fingerprint in the list file. Each revoked client's open links are
// closed, a real curl with its certificate is refused at the handshake,
// and the clients not revoked keep working.
func TestRevokedClientsAreCutOff(t *testing.T) {
	certs := proctest.CertsInit(t)
	for _, name := range []string{"laptop", "phone", "tablet"} {
		issueClient(t, certs, name)
	}
	list := filepath.Join(t.TempDir(), "revoked.txt")
	if err := os.WriteFile(list, []byte("# revoked client certificates\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	procs := proctest.Launcher{Admin: true, ExitFlags: []string{"--allow-private"}}
	exit, exitAddr := procs.StartExit(t, certs, "--revoked", list, "--revocation-interval", "200ms")
	origin := newOrigin(t)
	echo := proctest.NewTarget(t, func(c net.Conn) { io.Copy(c, c) })
	curlAs := func(name string) curlResult {
		return runCurl(t, curlOpts{}, directCurlArgs(certs, exitAddr, name, "-p", origin.URL+"/hello")...)
	}
	for _, name := range []string{"laptop", "phone", "tablet"} {
		if res := curlAs(name); res.code != 0 || res.stdout != "hello\n" {
			t.Fatalf("%s before any revocation: curl exit %d, %q, %s", name, res.code, res.stdout, res.stderr)
		}
	}

	held := holdTunnel(t, certs, exitAddr, "laptop", echo.Addr())
	laptopCert, laptopKey := clientFiles(certs, "laptop")
	agent, _ := proctest.StartAgent(t, certs, exitAddr, "--cert", laptopCert, "--key", laptopKey)
	if !agent.WaitLog(proctest.LinkUp, 3, linkWithin) {
		t.Fatal("the agent's pool of 3 links did not come up")
	}

	cmd := exec.Command(proctest.Binary(), "certs", "revoke", "--dir", certs, "laptop")
	cmd.Env = proctest.Env()
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Revoked laptop") {
		t.Fatalf("fluidity certs revoke laptop: %v\n%s", err, out)
	}
	revokedAt := time.Now()

	t.Run("the revoked client's open links are closed", func(t *testing.T) {
		held.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, held); err != nil && strings.Contains(err.Error(), "timeout") {
			t.Fatalf("the laptop's HTTP/1.1 tunnel is still open 10s after the revocation")
		}
		if !agent.WaitLog(proctest.LinkLost, 1, 5*time.Second) {
			t.Fatalf("the laptop's agent did not lose its link")
		}
		t.Logf("links closed %v after 'certs revoke'", time.Since(revokedAt).Round(time.Millisecond))
		if !exit.WaitLog("link cut off: its client certificate is revoked", 1, 5*time.Second) {
			t.Fatalf("the exit did not log the cut-off")
		}
		// The HTTP/1.1 tunnel and the agent's 3 links.
		waitMetric(t, exit.Admin(), "fluidity_exit_links_revoked_total", "4")
	})

	t.Run("a real curl with the revoked certificate is refused at the handshake", func(t *testing.T) {
		res := curlAs("laptop")
		if res.code == 0 {
			t.Fatalf("curl as the revoked laptop got %q", res.stdout)
		}
		t.Logf("curl as the revoked laptop: exit %d: %s", res.code, strings.TrimSpace(res.stderr))
		if !exit.WaitLog(`reason="certificate revoked"`, 1, 5*time.Second) {
			t.Fatalf("the exit did not log the refusal with its reason")
		}
		t.Logf("%s", lastLine(exit.Stderr(), "revocation list"))
		t.Logf("%s", lastLine(exit.Stderr(), "link cut off"))
		t.Logf("%s", lastLine(exit.Stderr(), `reason="certificate revoked"`))
		if line := lastLine(exit.Stderr(), `reason="certificate revoked"`); !strings.Contains(line, "laptop") || !strings.Contains(line, "revoked.crl") {
			t.Errorf("the refusal does not name the certificate and the list: %s", line)
		}
		waitMetric(t, exit.Admin(), `fluidity_exit_tls_handshake_failures_total{reason="certificate revoked"}`, "")
	})

	t.Run("by fingerprint in the list file, while others keep working", func(t *testing.T) {
		if res := curlAs("phone"); res.code != 0 {
			t.Fatalf("phone before its revocation: curl exit %d: %s", res.code, res.stderr)
		}
		phone := readCert(t, filepath.Join(certs, "phone.crt"))
		if err := os.WriteFile(list, []byte("# revoked client certificates\n"+fingerprint(phone)+" # the phone\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for curlAs("phone").code == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the phone still gets through 5s after its fingerprint was listed")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if res := curlAs("tablet"); res.code != 0 || res.stdout != "hello\n" {
			t.Fatalf("the tablet, never revoked: curl exit %d: %s", res.code, res.stderr)
		}
	})
}

// fingerprint is c's SHA-256 fingerprint as a revocation list takes it.
func fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// readCert parses the first certificate of a PEM file.
func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM block", file)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitMetric waits up to 5s until the admin listener at addr reports the
// sample prefix with the value want (any value, if want is "").
func waitMetric(t *testing.T, addr, prefix, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		line := metricLine(t, addr, prefix)
		if line != "" && (want == "" || strings.HasSuffix(line, " "+want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("metric %s: %q; want %q", prefix, line, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
