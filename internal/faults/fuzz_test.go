package faults

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fluidity/internal/agent"
	"fluidity/internal/egress"
	"fluidity/internal/exit"
	"fluidity/internal/pki"
	"fluidity/internal/tunnel"
)

// startInProcess runs an exit and an agent in the test process, linked over
// loopback, and an origin the exit may reach (nothing else: the egress
// policy allows only the origin's address and port). It returns the
// agent's address and the origin's URL. Everything stops when tb ends.
func startInProcess(tb testing.TB) (agentAddr, originURL string) {
	tb.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	}))
	tb.Cleanup(origin.Close)
	_, originPort, _ := net.SplitHostPort(strings.TrimPrefix(origin.URL, "http://"))

	dir := tb.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		tb.Fatal(err)
	}
	file := func(n string) string { return filepath.Join(dir, n) }
	srvTLS, err := pki.ServerConfig(file(pki.ServerCertFile), file(pki.ServerKeyFile), file(pki.CAFile))
	if err != nil {
		tb.Fatal(err)
	}
	policy, err := egress.New(egress.Config{AllowPrivate: true, AllowHosts: []string{"127.0.0.1"}, AllowPorts: []string{originPort}})
	if err != nil {
		tb.Fatal(err)
	}
	d := &egress.Dialer{Policy: policy, Timeout: 2 * time.Second}
	srv, err := exit.New(exit.Config{TLS: srvTLS, Dial: d.DialContext, ShutdownTimeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	exitLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exitDone := make(chan struct{})
	go func() {
		defer close(exitDone)
		srv.Serve(ctx, exitLn)
	}()

	cliTLS, err := pki.ClientConfig(file(pki.ClientCertFile), file(pki.ClientKeyFile), file(pki.CAFile), "")
	if err != nil {
		tb.Fatal(err)
	}
	a, err := agent.New(agent.Config{
		Exit:            exitLn.Addr().String(),
		TLS:             cliTLS,
		Tunnel:          tunnel.ClientConfig{WaitTimeout: 5 * time.Second, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		HeaderTimeout:   time.Second,
		SOCKSTimeout:    time.Second,
		ShutdownTimeout: time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := agent.Listen("127.0.0.1:0", false)
	if err != nil {
		tb.Fatal(err)
	}
	agentDone := make(chan struct{})
	go func() {
		defer close(agentDone)
		a.Serve(ctx, ln)
	}()
	tb.Cleanup(func() {
		cancel()
		<-agentDone
		<-exitDone
	})
	return ln.Addr().String(), origin.URL
}

// FuzzAgentPort feeds arbitrary bytes to the agent's one port, where the
// first byte picks SOCKS5 or HTTP, and checks after each input that the
// agent still serves a normal request on a new connection.
func FuzzAgentPort(f *testing.F) {
	agentAddr, originURL := startInProcess(f)
	authority := strings.TrimPrefix(originURL, "http://")
	host, port, _ := net.SplitHostPort(authority)
	ip := net.ParseIP(host).To4()
	p := []byte{0, 0}
	var portNum int
	for _, c := range port {
		portNum = portNum*10 + int(c-'0')
	}
	p[0], p[1] = byte(portNum>>8), byte(portNum)

	seeds := []string{
		"",
		"GET " + originURL + "/ HTTP/1.1\r\nHost: " + authority + "\r\n\r\n",
		"GET " + originURL + "/ HTTP/1.1\r\nHost: " + authority + "\r\n\r\nGET " + originURL + "/ HTTP/1.1\r\nHost: " + authority + "\r\n\r\n",
		"CONNECT " + authority + " HTTP/1.1\r\nHost: " + authority + "\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT " + authority + " HTTP/1.0\r\n\r\n",
		"CONNECT example.com:443 HTTP/1.1\r\n\r\n",
		"CONNECT\r\n\r\n",
		"COPY / HTTP/1.1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + authority + "\r\n\r\n",
		"GET " + originURL + "/ HTTP/1.1\r\nHost: " + authority + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
		"POST " + originURL + "/ HTTP/1.1\r\nHost: " + authority + "\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"GET " + originURL + "/ HTTP/1.1\r\nHost: " + authority + "\r\nContent-Length: -1\r\n\r\n",
		"\x05",
		"\x05\x00",
		"\x05\x01\x00",
		"\x05\x01\x00\x05\x01\x00\x01" + string(ip) + string(p),
		"\x05\x01\x00\x05\x01\x00\x03\x09127.0.0.1" + string(p),
		"\x05\x01\x00\x05\x01\x00\x04" + strings.Repeat("\x00", 15) + "\x01" + string(p),
		"\x05\x01\x00\x05\x02\x00\x01" + string(ip) + string(p),
		"\x05\x02\x00\x02\x05\x01\x00\x03\x00\x00\x50",
		"\x05\xff" + strings.Repeat("\x00", 255),
		"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",
		"\x16\x03\x01\x00\x05hello",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"\x00\xff\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	proxy := &url.URL{Scheme: "http", Host: agentAddr}
	client := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(proxy), DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.DialTimeout("tcp", agentAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("the agent no longer accepts connections: %v", err)
		}
		c.SetDeadline(time.Now().Add(2 * time.Second))
		c.Write(in)
		c.(*net.TCPConn).CloseWrite()
		// Whatever the agent answers is fine; that it answers at all, or
		// hangs up, within the header timeout is not asserted here.
		io.Copy(io.Discard, c)
		c.Close()

		resp, err := client.Get(originURL + "/after")
		if err != nil {
			t.Fatalf("after input %q, a normal request fails: %v", in, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != "hello\n" {
			t.Fatalf("after input %q, a normal request got %s %q %v", in, resp.Status, body, err)
		}
	})
}
