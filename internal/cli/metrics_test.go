package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/proxy"

	"fluidity/internal/admin"
	"fluidity/internal/agent"
	"fluidity/internal/metrics"
	"fluidity/internal/pki"
)

// scrape returns the samples of the Prometheus text at url, keyed by the
// series as written (name{labels}).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	code, body := httpGet(t, url)
	if code != 200 {
		t.Fatalf("GET %s: %d", url, code)
	}
	samples := map[string]float64{}
	for line := range strings.SplitSeq(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		samples[line[:i]] = v
	}
	return samples
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startEchoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// startExitAt runs an exit from cfg on addr, with its admin listener on
// adminLn if not nil, until the returned func (or the test's end) stops it.
func startExitAt(t *testing.T, cfg serverConfig, obs *metrics.Exit, addr string, adminLn net.Listener, acfg admin.Config) (stop func()) {
	t.Helper()
	srv, closeIAM, err := newExit(cfg, slog.New(slog.DiscardHandler), obs)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveWithAdmin(ctx, adminLn, acfg, func(ctx context.Context) error { return srv.Serve(ctx, ln) })
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("exit: %v", err)
			}
			closeIAM()
		})
	}
	t.Cleanup(stop)
	return stop
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestMetricsStatusAndReadinessOfALivePair runs an exit and an agent in
// this process, sends known traffic through them, and checks what the
// admin listeners and 'fluidity status' say.
func TestMetricsStatusAndReadinessOfALivePair(t *testing.T) {
	certs := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: certs}); err != nil {
		t.Fatal(err)
	}
	echo := startEchoServer(t)
	_, echoPort, _ := net.SplitHostPort(echo)
	refusedTarget := "127.0.0.1:9"

	// The exit: loopback allowed, port 9 refused by policy.
	scfg := defaultServerConfig()
	scfg.Listen = "127.0.0.1:0"
	scfg.Certs = certs
	scfg.AllowPrivate = true
	scfg.Egress.DenyPorts = []string{"9"}
	if err := scfg.Validate(); err != nil {
		t.Fatal(err)
	}
	exitReg := metrics.NewRegistry()
	exitObs := metrics.NewExit(exitReg, 0)
	exitAdminLn, err := admin.Listen("127.0.0.1:0", false, "")
	if err != nil {
		t.Fatal(err)
	}
	exitMetrics := "http://" + exitAdminLn.Addr().String() + "/metrics"
	exitAddr := freeAddr(t)
	stopExit := startExitAt(t, scfg, exitObs, exitAddr, exitAdminLn, admin.Config{Gatherer: exitReg})

	// The agent, with its admin listener.
	acfg := defaultAgentConfig()
	acfg.Listen = "127.0.0.1:0"
	acfg.Server = exitAddr
	acfg.Certs = certs
	if err := acfg.Validate(); err != nil {
		t.Fatal(err)
	}
	agentReg := metrics.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	a, closeIAM, err := newAgent(ctx, acfg, nil, slog.New(slog.DiscardHandler), agentReg)
	if err != nil {
		t.Fatal(err)
	}
	agentLn, err := agent.Listen(acfg.Listen, false)
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := admin.Listen("127.0.0.1:0", false, "")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := adminLn.Addr().String()
	agentDone := make(chan error, 1)
	go func() {
		agentDone <- serveWithAdmin(ctx, adminLn, agentAdmin(a, agentReg, false, slog.New(slog.DiscardHandler)),
			func(ctx context.Context) error { return a.Serve(ctx, agentLn) })
	}()
	defer func() {
		cancel()
		if err := <-agentDone; err != nil {
			t.Errorf("agent: %v", err)
		}
		closeIAM()
	}()
	proxyAddr := agentLn.Addr().String()
	ready := func(want int) func() bool {
		return func() bool { code, _ := httpGet(t, "http://"+adminAddr+"/readyz"); return code == want }
	}
	eventually(t, "the agent to be ready", ready(200))

	// Known traffic: two CONNECT tunnels of 1000 bytes, one SOCKS5 stream
	// of 500 bytes, all echoed; one CONNECT refused by the policy.
	echoThrough := func(c net.Conn, n int) {
		t.Helper()
		defer c.Close()
		payload := strings.Repeat("x", n)
		io.WriteString(c, payload)
		c.(interface{ CloseWrite() error }).CloseWrite()
		got, _ := io.ReadAll(c)
		if string(got) != payload {
			t.Fatalf("echo: got %d bytes, want %d", len(got), n)
		}
	}
	connect := func(target string) (net.Conn, int) {
		t.Helper()
		c, err := net.Dial("tcp", proxyAddr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			c.Close()
			return nil, resp.StatusCode
		}
		return &readerConn{Conn: c, r: br}, 200
	}
	for range 2 {
		c, code := connect(echo)
		if code != 200 {
			t.Fatalf("CONNECT to the echo server: %d", code)
		}
		echoThrough(c, 1000)
	}
	d, err := proxy.SOCKS5("tcp", proxyAddr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := d.Dial("tcp", "127.0.0.1:"+echoPort)
	if err != nil {
		t.Fatal(err)
	}
	echoThrough(sc, 500)
	if _, code := connect(refusedTarget); code != http.StatusForbidden {
		t.Fatalf("CONNECT to a denied port: %d, want 403", code)
	}

	// A client without a certificate fails its handshake at the exit.
	noCert, err := pki.ClientConfig(filepath.Join(certs, pki.ClientCertFile), filepath.Join(certs, pki.ClientKeyFile), filepath.Join(certs, pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	noCert.Certificates, noCert.GetClientCertificate = nil, nil
	if c, err := tls.Dial("tcp", exitAddr, noCert); err == nil {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1))
		c.Close()
	}

	const handshake = `fluidity_exit_tls_handshake_failures_total{reason="no client certificate"}`
	var ex, ag map[string]float64
	eventually(t, "every stream to be counted", func() bool {
		ex, ag = scrape(t, exitMetrics), scrape(t, "http://"+adminAddr+"/metrics")
		// The refused stream is counted when its handler returns, after
		// the client has its 403.
		return ex[`fluidity_exit_stream_results_total{reason="ok"}`] == 3 && ex[handshake] == 1 &&
			ex[`fluidity_exit_stream_results_total{reason="policy"}`] == 1 &&
			ag[`fluidity_agent_stream_results_total{frontend="connect",reason="policy"}`] == 1 &&
			ag["fluidity_agent_streams_open"] == 0 && ex["fluidity_exit_streams_open"] == 0 &&
			ag["fluidity_agent_links_up"] == defaultLinks
	})
	for _, c := range []struct {
		samples map[string]float64
		series  string
		want    float64
	}{
		{ex, "fluidity_exit_streams_total", 3},
		{ex, `fluidity_exit_stream_results_total{reason="policy"}`, 1},
		{ex, `fluidity_exit_stream_results_total{reason="refused"}`, 0},
		{ex, `fluidity_exit_stream_results_total{reason="dial_failed"}`, 0},
		{ex, `fluidity_exit_bytes_total{direction="up"}`, 2500},
		{ex, `fluidity_exit_bytes_total{direction="down"}`, 2500},
		{ex, `fluidity_exit_identity_streams_total{identity="fluidity-client"}`, 3},
		{ex, `fluidity_exit_identity_bytes_total{direction="up",identity="fluidity-client"}`, 2500},
		{ex, "fluidity_exit_stream_setup_seconds_count", 3},
		{ex, "fluidity_exit_links_open", defaultLinks},
		{ex, "fluidity_exit_links_total", defaultLinks},
		{ex, handshake, 1},
		{ag, "fluidity_agent_link_up", 1},
		{ag, "fluidity_agent_links_up", defaultLinks},
		{ag, `fluidity_agent_link_state{state="up"}`, 1},
		{ag, "fluidity_agent_streams_total", 3},
		{ag, `fluidity_agent_bytes_total{direction="up"}`, 2500},
		{ag, `fluidity_agent_bytes_total{direction="down"}`, 2500},
		{ag, `fluidity_agent_stream_results_total{frontend="connect",reason="ok"}`, 2},
		{ag, `fluidity_agent_stream_results_total{frontend="socks5",reason="ok"}`, 1},
		{ag, `fluidity_agent_stream_results_total{frontend="connect",reason="policy"}`, 1},
		{ag, "fluidity_agent_stream_setup_seconds_count", 3},
		{ag, "fluidity_agent_link_reconnects_total", 0},
	} {
		if got, ok := c.samples[c.series]; !ok || got != c.want {
			t.Errorf("%s = %v (present %v), want %v", c.series, got, ok, c.want)
		}
	}

	t.Run("fluidity status prints the link for a person", func(t *testing.T) {
		code, stdout, stderr := run(t, nil, "status", "--admin", adminAddr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, want := range []string{"Link:        up for ", exitAddr, "fluidity-client (client certificate)",
			"0 open, 3 since start", "2.4 KiB up, 2.4 KiB down", "Reconnects:  0", "round trip ",
			fmt.Sprintf("Links:       %d of %d up (streams 0, 0, 0)", defaultLinks, defaultLinks)} {
			if !strings.Contains(stdout, want) {
				t.Errorf("status lacks %q:\n%s", want, stdout)
			}
		}
	})
	t.Run("fluidity status --json is the agent's report", func(t *testing.T) {
		code, stdout, stderr := run(t, []string{"FLUIDITY_ADMIN=" + adminAddr}, "status", "--json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var r agent.Report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%v:\n%s", err, stdout)
		}
		if r.State != "up" || r.Exit != exitAddr || r.Identity != "fluidity-client" || r.StreamsTotal != 3 ||
			r.BytesUp != 2500 || r.BytesDown != 2500 || r.Listen != proxyAddr {
			t.Fatalf("report %+v", r)
		}
	})

	// The exit goes away: /readyz says so; it comes back: ready again.
	stopExit()
	eventually(t, "/readyz to say 503", ready(503))
	if _, body := httpGet(t, "http://"+adminAddr+"/readyz"); !strings.Contains(body, "tunnel link to "+exitAddr) {
		t.Fatalf("readyz body %q does not say why", body)
	}
	code, stdout, _ := run(t, nil, "status", "--admin", adminAddr)
	if code != 0 || strings.Contains(stdout, "Link:        up") {
		t.Fatalf("status while the exit is down: exit %d\n%s", code, stdout)
	}
	startExitAt(t, scfg, metrics.NewExit(metrics.NewRegistry(), 0), exitAddr, nil, admin.Config{})
	eventually(t, "/readyz to say 200 again", ready(200))
	// Ready once a link is up; every link of the pool comes back, each
	// one reconnect.
	eventually(t, "every link to come back", func() bool {
		return scrape(t, "http://"+adminAddr+"/metrics")["fluidity_agent_links_up"] == defaultLinks
	})
	if got := scrape(t, "http://"+adminAddr+"/metrics")["fluidity_agent_link_reconnects_total"]; got != defaultLinks {
		t.Fatalf("reconnects %v, want %d, one per link", got, defaultLinks)
	}
}

func TestStatusWithoutAnAgentSaysHowToStartOne(t *testing.T) {
	addr := freeAddr(t) // nothing listens there any more
	code, stdout, stderr := run(t, nil, "status", "--admin", addr)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "no agent at "+addr) || !strings.Contains(stderr, "fluidity agent") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// readerConn reads through r, which may hold bytes read past a response.
type readerConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c *readerConn) CloseWrite() error          { return c.Conn.(*net.TCPConn).CloseWrite() }
