package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// clientFiles are the certificate and key of a client named name in certs:
// client.crt for the one 'certs init' made, NAME.crt for one from
// 'certs issue-client'.
func clientFiles(certs, name string) (cert, key string) {
	if name == "" || name == pki.DefaultClientName {
		return filepath.Join(certs, pki.ClientCertFile), filepath.Join(certs, pki.ClientKeyFile)
	}
	return filepath.Join(certs, name+".crt"), filepath.Join(certs, name+".key")
}

// issueClient runs 'fluidity certs issue-client' for name in certs.
func issueClient(t *testing.T, certs, name string) {
	t.Helper()
	cmd := exec.Command(proctest.Binary(), "certs", "issue-client", "--dir", certs, "--name", name)
	cmd.Env = proctest.Env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fluidity certs issue-client %s: %v\n%s", name, err, out)
	}
}

// directCurlArgs are curl's arguments for a request through the exit at
// exitAddr as an HTTPS proxy, presenting client name's certificate.
func directCurlArgs(certs, exitAddr, name string, args ...string) []string {
	cert, key := clientFiles(certs, name)
	return append([]string{"--proxy", "https://" + exitAddr, "--proxy-cacert", filepath.Join(certs, pki.CAFile),
		"--proxy-cert", cert, "--proxy-key", key}, args...)
}

// heldTunnel is an HTTP/1.1 CONNECT tunnel straight to the exit, kept open
// by the test.
type heldTunnel struct {
	*tls.Conn
	r *bufio.Reader
}

func (h *heldTunnel) Read(p []byte) (int, error) { return h.r.Read(p) }

// holdTunnel opens an HTTP/1.1 CONNECT tunnel to target through the exit
// at exitAddr as client name, and fails unless the exit answers 200. The
// tunnel is closed when the test ends.
func holdTunnel(t *testing.T, certs, exitAddr, name, target string) *heldTunnel {
	t.Helper()
	cert, key := clientFiles(certs, name)
	cfg, err := pki.ClientConfig(cert, key, filepath.Join(certs, pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg.NextProtos = []string{"http/1.1"}
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, cfg)
	if err != nil {
		t.Fatalf("dial exit as %s: %v", name, err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(tc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT %s as %s: %v %v", target, name, resp, err)
	}
	tc.SetDeadline(time.Time{})
	return &heldTunnel{Conn: tc, r: br}
}

// metricLine returns the sample line of the admin listener at addr whose
// text starts with prefix (a metric name with its labels), or "".
func metricLine(t *testing.T, addr, prefix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, prefix+" ") {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
