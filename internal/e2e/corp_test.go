//go:build unix

package e2e

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/golden"
	"fluidity/internal/pki"
	"fluidity/internal/proctest"
	"fluidity/internal/route"
)

// interceptor is a CONNECT proxy that terminates TLS with a CA of its own,
// as a TLS-inspecting corporate proxy does. It counts the bytes that reach
// it through TLS: a client that detects the interception sends none.
type interceptor struct {
	ln         net.Listener
	wg         sync.WaitGroup
	handshakes atomic.Int64 // TLS handshakes that completed
	appBytes   atomic.Int64 // bytes read after a completed handshake
}

func newInterceptor(t *testing.T) *interceptor {
	t.Helper()
	ca, err := pki.NewCA("Corp TLS Inspection CA", time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer([]string{pki.DefaultServerName}, nil, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &interceptor{ln: ln}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil || req.Method != http.MethodConnect {
					return
				}
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				tc := tls.Server(&prefixed{Conn: c, r: br}, cfg)
				if tc.Handshake() != nil {
					return
				}
				p.handshakes.Add(1)
				n, _ := io.Copy(io.Discard, tc)
				p.appBytes.Add(n)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

type prefixed struct {
	net.Conn
	r *bufio.Reader
}

func (c *prefixed) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestAgentReportsTLSInterceptionAndSendsNothing(t *testing.T) {
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	ip := newInterceptor(t)
	l := proctest.Launcher{Admin: true}
	agent, agentAddr := l.StartAgent(t, certs, exitAddr, "--upstream-proxy", "http://"+ip.ln.Addr().String())
	want := "the network between you and the exit is intercepting TLS: the certificate that came back for " + exitAddr +
		` was issued by \"Corp TLS Inspection CA\"`
	if !agent.WaitLog(want, 1, linkWithin) {
		t.Fatalf("the agent's log lacks %q:\n%s", want, agent.Stderr())
	}
	out, err := exec.Command(proctest.Binary(), "status", "--admin", agent.Admin(), "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "intercepting TLS") || !strings.Contains(string(out), "Corp TLS Inspection CA") ||
		!strings.Contains(string(out), "ask IT for "+exitAddr+" to be exempted") {
		t.Errorf("fluidity status (%v) does not name the interception:\n%s", err, out)
	}
	// A client gets the reason, and not a byte goes through the
	// interceptor.
	res := runCurl(t, curlOpts{}, "-i", "-x", "http://"+agentAddr, "--max-time", "40", "http://127.0.0.1:9/")
	if !strings.Contains(res.stdout, "intercepting TLS") {
		t.Errorf("a client's answer does not name the interception: %q", res.stdout)
	}
	if n := ip.appBytes.Load(); n != 0 || ip.handshakes.Load() != 0 {
		t.Errorf("the interceptor completed %d handshakes and read %d bytes of application data; want none", ip.handshakes.Load(), n)
	}
}

// TestPACFileAgreesWithTheAgent fetches the PAC file the agent serves,
// evaluates it in Node.js for a table of URLs, and checks it against the
// rules, and the agent's own routing against both: a target the rules send
// direct is reached without the exit (whose default policy refuses
// loopback), over plain HTTP, CONNECT and SOCKS5, while the same origin
// at an address not in the rules goes to the exit and is refused.
func TestPACFileAgreesWithTheAgent(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("node is not installed; .ci/run installs it")
		}
		t.Skip("node is not installed (apt-get install nodejs): the PAC file cannot be evaluated")
	}
	rules := []string{"127.0.0.1", ".intranet.example", "10.0.0.0/8", "fd00::/8", "<local>"}
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs) // refuses loopback targets
	// The origin's port is a fast-open port, so that the direct targets
	// below prove fast open never sends them into the tunnel.
	o := newOrigin(t)
	port := urlPort(t, o.URL)
	agent, agentAddr := proctest.StartAgent(t, certs, exitAddr, "--direct", strings.Join(rules, ","), "--fast-open-ports", port)
	proctest.WaitLinkUp(t, agent, 1, linkWithin)

	pac := mustCurl(t, curlOpts{}, "--noproxy", "*", "http://"+agentAddr+"/proxy.pac").stdout
	if !strings.Contains(pac, "FindProxyForURL") {
		t.Fatalf("the agent served no PAC file: %q", pac)
	}
	r, err := route.Parse(rules)
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{
		"http://127.0.0.1:8000/", "https://127.0.0.2/", "http://wiki.intranet.example/", "https://intranet.example:8443/",
		"http://intranet.example.evil.com/", "http://10.20.30.40/", "http://11.0.0.1/", "http://[fd00::5]/", "http://[fe80::1]/",
		"http://printer/", "http://printer.lan/", "https://example.com/", "wss://chat.example.com/",
	}
	dir, _ := os.Getwd()
	harness := filepath.Join(dir, "..", "route", "testdata", "pac_harness.js")
	pacFile := filepath.Join(t.TempDir(), "proxy.pac")
	writeFile(t, pacFile, pac)
	cmd := exec.Command(node, harness, pacFile)
	cmd.Stdin = strings.NewReader(strings.Join(urls, "\n") + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	got := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(got) != len(urls) {
		t.Fatalf("node gave %d answers for %d URLs: %s", len(got), len(urls), out)
	}
	for i, u := range urls {
		want := "PROXY " + agentAddr
		if r.Direct(mustURL(t, u).Hostname()) {
			want = "DIRECT"
		}
		if got[i] != want {
			t.Errorf("%s: the PAC file says %q, the agent's rules %q", u, got[i], want)
		}
	}

	// The agent itself: 127.0.0.1 is direct, 127.0.0.2 goes to the exit,
	// which refuses loopback targets.
	for _, args := range [][]string{
		{"-x", "http://" + agentAddr},
		{"-p", "-x", "http://" + agentAddr},
		{"--socks5-hostname", agentAddr},
	} {
		res := runCurl(t, curlOpts{}, append(args, "http://127.0.0.1:"+port+"/hello")...)
		if res.code != 0 || res.stdout != "hello\n" {
			t.Errorf("curl %v to a direct target: exit %d, %q %s", args, res.code, res.stdout, res.stderr)
		}
		res = runCurl(t, curlOpts{}, append(args, "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.2:"+port+"/hello")...)
		if res.code == 0 && res.stdout == "200" {
			t.Errorf("curl %v to 127.0.0.2, not in the rules, bypassed the exit's policy", args)
		}
	}
	// The PAC file is not served to other names (DNS rebinding).
	if res := runCurl(t, curlOpts{}, "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: rebind.example",
		"http://"+agentAddr+"/proxy.pac"); res.stdout != "403" {
		t.Errorf("PAC file for Host rebind.example: %s", res.stdout)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// doctorCase is one golden test of fluidity doctor.
type doctorCase struct {
	name string
	args []string
	fail bool // exit status 1
}

var (
	portRE     = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	durationRE = regexp.MustCompile(`\d+(\.\d+)?(ns|µs|ms|s)\b`)
	dateRE     = regexp.MustCompile(`\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?`)
	tmpRE      = regexp.MustCompile("/tmp/[^\\s`']+")
)

func normalizeDoctor(s string) string {
	s = portRE.ReplaceAllString(s, "127.0.0.1:PORT")
	s = durationRE.ReplaceAllString(s, "DURATION")
	s = dateRE.ReplaceAllString(s, "DATE")
	return tmpRE.ReplaceAllString(s, "TMP")
}

func TestDoctorGolden(t *testing.T) {
	certs := proctest.CertsInit(t)
	_, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	other := proctest.CertsInit(t)
	expired := expiredCerts(t, certs)
	ip := newInterceptor(t)
	stopped := proctest.FreeAddr(t)
	base := func(server, dir string, extra ...string) []string {
		return append([]string{"doctor", "--server", server, "--certs", dir, "--doctor-target", exitAddr, "--upstream-proxy", "none"}, extra...)
	}
	cases := []doctorCase{
		{"healthy", base(exitAddr, certs), false},
		{"stopped_exit", base(stopped, certs), true},
		{"wrong_ca", append(base(exitAddr, certs), "--ca", filepath.Join(other, "ca.crt")), true},
		{"expired_certificate", base(exitAddr, expired), true},
		{"intercepting_proxy", append(base(exitAddr, certs)[:7], "--upstream-proxy", "http://"+ip.ln.Addr().String()), true},
	}
	if _, err := exec.LookPath("squid"); err == nil || os.Getenv("CI") != "" {
		sq := startSquid(t, "1", nil) // allows CONNECT to no port of ours
		cases = append(cases, doctorCase{"blocked_port", append(base(exitAddr, certs)[:7], "--upstream-proxy", "http://"+sq.addr), true})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(proctest.Binary(), tc.args...)
			cmd.Env = proctest.Env()
			out, err := cmd.Output()
			if (err != nil) != tc.fail {
				t.Errorf("doctor %v: exit error %v, want failure %v", tc.args, err, tc.fail)
			}
			got := normalizeDoctor(string(out))
			golden.Check(t, filepath.Join("doctor", tc.name+".txt"), got)
		})
	}
}

// expiredCerts returns a certificate directory with the CA of certs and a
// client certificate of its that expired.
func expiredCerts(t *testing.T, certs string) string {
	t.Helper()
	ca, err := pki.LoadCA(filepath.Join(certs, "ca.crt"), filepath.Join(certs, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "certs-expired")
	os.MkdirAll(dir, 0o700)
	is, err := ca.IssueClient("fluidity-client", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := is.WriteFiles(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), false); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(certs, "ca.crt"))
	writeFile(t, filepath.Join(dir, "ca.crt"), string(b))
	return dir
}
