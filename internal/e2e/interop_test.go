package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// TestCurlSpeaksToExitDirectly uses the exit as a standard HTTPS proxy from
// curl (HTTP/1.1 CONNECT, chosen by ALPN) with a client certificate, and
// checks that curl is refused, and the exit logs why, without a valid one.
func TestCurlSpeaksToExitDirectly(t *testing.T) {
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	origin := newOrigin(t)
	tlsOrigin, originCA := newTLSOrigin(t)
	proxy := "https://" + exitAddr
	withCert := func(dir, name string) []string {
		return []string{"--proxy", proxy, "--proxy-cacert", filepath.Join(certs, pki.CAFile),
			"--proxy-cert", filepath.Join(dir, name+".crt"), "--proxy-key", filepath.Join(dir, name+".key")}
	}
	client := withCert(certs, "client")

	t.Run("plain http tunnelled with -p", func(t *testing.T) {
		res := mustCurl(t, curlOpts{}, append(client, "-p", origin.URL+"/hello")...)
		if res.stdout != "hello\n" {
			t.Fatalf("got %q", res.stdout)
		}
	})
	t.Run("https", func(t *testing.T) {
		res := mustCurl(t, curlOpts{}, append(client, "--cacert", originCA, tlsOrigin.URL+"/")...)
		if res.stdout != "hello tls\n" {
			t.Fatalf("got %q", res.stdout)
		}
	})
	t.Run("plain http without -p is refused with a reason", func(t *testing.T) {
		// The exit is a CONNECT proxy only; a forwarded GET is refused.
		res := runCurl(t, curlOpts{}, append(client, "-i", origin.URL+"/hello")...)
		if !strings.Contains(res.stdout, "405") || !strings.Contains(res.stdout, "only CONNECT") {
			t.Fatalf("curl exit %d, output %q: want 405 saying only CONNECT is served", res.code, res.stdout)
		}
	})

	other := proctest.CertsInit(t)
	expired := filepath.Join(t.TempDir(), "expired")
	ca, err := pki.LoadCA(filepath.Join(certs, pki.CAFile), filepath.Join(certs, pki.CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old, err := ca.IssueClient("expired-client", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := old.WriteFiles(expired+".crt", expired+".key", false); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		args   []string
		reason string
	}{
		{"no client certificate is refused", []string{"--proxy", proxy, "--proxy-cacert", filepath.Join(certs, pki.CAFile)}, "no client certificate"},
		{"a certificate from another CA is refused", withCert(other, "client"), "unknown certificate authority"},
		{"an expired certificate is refused", withCert(filepath.Dir(expired), "expired"), "certificate expired"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runCurl(t, curlOpts{}, append(tc.args, "-p", origin.URL+"/hello")...)
			if res.code == 0 {
				t.Fatalf("curl succeeded (%q), want it refused", res.stdout)
			}
			if !exit.WaitLog(`reason="`+tc.reason, 1, 5*time.Second) {
				t.Fatalf("curl exit %d (%s); the exit did not log the reason %q", res.code, strings.TrimSpace(res.stderr), tc.reason)
			}
			t.Logf("refused: curl exit %d: %s", res.code, strings.TrimSpace(res.stderr))
		})
	}
}

// TestHTTP1TunnelToExitHalfCloses drives the exit's HTTP/1.1 CONNECT path
// from a Go TLS client with the agent's certificate: an upload followed by
// a half-close reaches the target intact, and the target's answer still
// comes back after it.
func TestHTTP1TunnelToExitHalfCloses(t *testing.T) {
	size := int64(20 << 20)
	if testing.Short() {
		size = 4 << 20
	}
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	target := newEchoHash(t)
	file := func(name string) string { return filepath.Join(certs, name) }
	cfg, err := pki.ClientConfig(file(pki.ClientCertFile), file(pki.ClientKeyFile), file(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, cfg)
	if err != nil {
		t.Fatalf("dial exit: %v", err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(60 * time.Second))
	fmt.Fprintf(tc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target.Addr(), target.Addr())
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	const seed = 8
	go func() {
		io.Copy(tc, payload(seed, size))
		tc.CloseWrite()
	}()
	reply, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("read the target's answer: %v", err)
	}
	if got, want := strings.TrimSpace(reply), fmt.Sprintf("%s %d", payloadSum(seed, size), size); got != want {
		t.Fatalf("target received %q, want %q", got, want)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("after the answer: got %v, want EOF", err)
	}
}
