package e2e

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"fluidity/internal/pki"
	"fluidity/internal/proctest"
)

// h2specBin is the h2spec binary to run; without it TestH2spec is skipped.
// .ci/run installs it and sets it.
var h2specBin = flag.String("h2spec", "", "run h2spec (this binary) against the exit")

// h2specSections are the h2spec test sections that apply to the exit, a
// CONNECT-only HTTP/2 server that answers any other method with 405 and
// requires a client certificate. Each section not listed, and why, is in
// docs/conformance.md; this list and that page change together.
var h2specSections = []string{
	"generic", "hpack",
	"http2/3", "http2/4.1", "http2/4.2/1", "http2/4.2/2", "http2/4.3",
	"http2/5", "http2/6", "http2/7", "http2/8",
}

// TestH2spec runs the HTTP/2 conformance suite h2spec against the exit.
// h2spec cannot present a client certificate, so it speaks cleartext
// HTTP/2 to a relay in this test, which opens a TLS connection with the
// client certificate (ALPN h2) to the exit for each of h2spec's and copies
// the bytes both ways. The frames are h2spec's own, end to end.
func TestH2spec(t *testing.T) {
	if *h2specBin == "" {
		t.Skip("run with -h2spec PATH (as .ci/run does) to test HTTP/2 conformance with h2spec")
	}
	certs := proctest.CertsInit(t)
	// A small stream limit, so h2spec can exceed it (5.1.2).
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private", "--max-streams", "100")
	relay := newTLSRelay(t, exitAddr, certs)

	report := filepath.Join(t.TempDir(), "h2spec.xml")
	host, port, _ := net.SplitHostPort(relay.Addr().String())
	args := append([]string{"-h", host, "-p", port, "-o", "3", "-j", report}, h2specSections...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, *h2specBin, args...).CombinedOutput()
	t.Logf("h2spec %s\n%s", strings.Join(args, " "), lastLines(string(out), 20))
	suites := readJUnit(t, report)
	passed, failed, skipped := 0, 0, 0
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			switch {
			case c.Failure != nil || c.Error != nil:
				failed++
				t.Errorf("h2spec %s %s: %s", s.Package, s.Name, c.Name)
			case c.Skipped != nil:
				skipped++
			default:
				passed++
			}
		}
	}
	t.Logf("h2spec: %d passed, %d failed, %d skipped", passed, failed, skipped)
	if err != nil && failed == 0 {
		t.Fatalf("h2spec: %v\n%s", err, out)
	}
	if passed == 0 {
		t.Fatal("h2spec ran no test")
	}
}

// tlsRelay accepts cleartext connections and relays each to the exit over
// mutual TLS.
type tlsRelay struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newTLSRelay(t *testing.T, exitAddr, certs string) net.Listener {
	t.Helper()
	f := func(n string) string { return filepath.Join(certs, n) }
	cfg, err := pki.ClientConfig(f(pki.ClientCertFile), f(pki.ClientKeyFile), f(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &tlsRelay{ln: ln}
	var (
		mu     sync.Mutex
		open   []net.Conn // guarded by mu
		closed bool       // guarded by mu
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		r.wg.Wait()
	})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, cfg)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				up.Close()
				continue
			}
			open = append(open, c, up)
			mu.Unlock()
			r.wg.Add(2)
			go func() {
				defer r.wg.Done()
				io.Copy(up, c)
				up.CloseWrite()
			}()
			go func() {
				defer r.wg.Done()
				io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	return ln
}

// junit is the part of h2spec's JUnit report the test reads.
type junit struct {
	Suites []struct {
		Package string `xml:"package,attr"`
		Name    string `xml:"name,attr"`
		Cases   []struct {
			Name    string    `xml:"classname,attr"`
			Failure *struct{} `xml:"failure"`
			Error   *struct{} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

func readJUnit(t *testing.T, path string) junit {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v", err)
	}
	var j junit
	if err := xml.Unmarshal(b, &j); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	return j
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
