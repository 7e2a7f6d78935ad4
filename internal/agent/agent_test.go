package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/net/proxy"

	"fluidity/internal/egress"
	"fluidity/internal/exit"
	"fluidity/internal/pki"
	"fluidity/internal/tunnel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startPair runs an exit and an agent in this process on loopback. If
// exitDown is set, the agent points at a port where nothing listens.
func startPair(t *testing.T, exitDown bool, linkWait time.Duration) (agentAddr string, a *Agent) {
	agentAddr, a, _ = startPairStop(t, exitDown, linkWait)
	return agentAddr, a
}

// startPairStop is startPair that also returns a function that stops the
// agent and waits for Serve to return.
func startPairStop(t *testing.T, exitDown bool, linkWait time.Duration) (agentAddr string, a *Agent, stop func() error) {
	t.Helper()
	return startPairWith(t, exitDown, linkWait, nil)
}

// startPairWith is startPairStop with the agent's Config adjusted by tweak.
func startPairWith(t *testing.T, exitDown bool, linkWait time.Duration, tweak func(*Config)) (agentAddr string, a *Agent, stop func() error) {
	t.Helper()
	dir := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	file := func(n string) string { return filepath.Join(dir, n) }
	exitAddr := "127.0.0.1:1" // nothing listens there
	if !exitDown {
		srvTLS, err := pki.ServerConfig(file(pki.ServerCertFile), file(pki.ServerKeyFile), file(pki.CAFile))
		if err != nil {
			t.Fatal(err)
		}
		policy, _ := egress.New(egress.Config{AllowPrivate: true})
		d := &egress.Dialer{Policy: policy}
		srv, err := exit.New(exit.Config{TLS: srvTLS, Dial: d.DialContext})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		exitAddr = ln.Addr().String()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); srv.Serve(ctx, ln) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	cliTLS, err := pki.ClientConfig(file(pki.ClientCertFile), file(pki.ClientKeyFile), file(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Exit:            exitAddr,
		TLS:             cliTLS,
		Tunnel:          tunnel.ClientConfig{WaitTimeout: linkWait, BackoffMin: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond},
		HeaderTimeout:   time.Second,
		ShutdownTimeout: 5 * time.Second,
		Logger:          slog.New(slog.DiscardHandler),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	a, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String(), a, stop
}

func startOrigin(t *testing.T) string {
	t.Helper()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.URL.Path)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestHTTPAndSOCKS5ShareOnePort(t *testing.T) {
	agentAddr, _ := startPair(t, false, 5*time.Second)
	origin := startOrigin(t)

	// HTTP proxy.
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: agentAddr})}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + origin + "/via-http")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from /via-http" {
		t.Fatalf("HTTP proxy got %q", body)
	}

	// SOCKS5 on the same port, with an independent client.
	d, err := proxy.SOCKS5("tcp", agentAddr, nil, proxy.Direct)
	if err != nil {
		t.Fatal(err)
	}
	str := &http.Transport{DialContext: d.(proxy.ContextDialer).DialContext}
	defer str.CloseIdleConnections()
	resp, err = (&http.Client{Transport: str}).Get("http://" + origin + "/via-socks")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hello from /via-socks" {
		t.Fatalf("SOCKS5 got %q", body)
	}
}

func TestLinkDownGives503WithReason(t *testing.T) {
	agentAddr, _ := startPair(t, true, 300*time.Millisecond)
	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no link to the exit") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Fatalf("503 took %v with a 300ms link wait", elapsed)
	}
}

func TestNonLoopbackListenNeedsConsent(t *testing.T) {
	_, err := Listen("0.0.0.0:0", false)
	if err == nil || !strings.Contains(err.Error(), "--allow-non-loopback") {
		t.Fatalf("Listen on 0.0.0.0 = %v, want a refusal naming --allow-non-loopback", err)
	}
	ln, err := Listen("0.0.0.0:0", true)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
}

func TestSilentClientIsCutOff(t *testing.T) {
	agentAddr, a := startPair(t, false, time.Second)
	_ = a
	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	start := time.Now()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read from a silent connection: %v, want EOF from the agent", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("silent client held %v", elapsed)
	}
}

func TestShutdownDrainsOpenTunnels(t *testing.T) {
	agentAddr, a, stop := startPairStop(t, false, 5*time.Second)
	// An echo target that answers only after the client half-closes.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		c.Write(b)
		c.Close()
	}()
	defer wg.Wait()
	c, err := net.Dial("tcp", agentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "CONNECT "+ln.Addr().String()+" HTTP/1.1\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	if a.Status().Streams != 1 {
		t.Fatalf("open streams %d, want 1", a.Status().Streams)
	}
	// Shutdown begins: no new clients, but the open tunnel keeps working.
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c2, err := net.Dial("tcp", agentAddr)
		if err != nil {
			break
		}
		c2.Close()
		if time.Now().After(deadline) {
			t.Fatal("agent still accepts connections during shutdown")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("agent stopped (%v) with a tunnel still open", err)
	default:
	}
	io.WriteString(c, "still here")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(br)
	if string(got) != "still here" {
		t.Fatalf("got %q", got)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent did not stop after the last tunnel ended")
	}
}

func TestRequestsThatOnlyLookLikeConnectReachTheHTTPProxy(t *testing.T) {
	agentAddr, _ := startPair(t, false, 5*time.Second)
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method+" "+r.URL.Path)
	})}
	oln, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(oln)
	defer origin.Close()
	for _, tc := range []struct {
		name, req string
		status    int
		body      string
	}{
		{"a COPY request is forwarded", "COPY http://" + oln.Addr().String() + "/doc HTTP/1.1\r\nHost: " + oln.Addr().String() + "\r\n\r\n", 200, "COPY /doc"},
		{"garbage starting with C gets 400", "C\x00\x01 nonsense\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", agentAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || (tc.body != "" && string(body) != tc.body) {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
		})
	}
}

func TestExitShutdownIsNotHeldByIdleUpstreamConnections(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	file := func(n string) string { return filepath.Join(dir, n) }
	srvTLS, err := pki.ServerConfig(file(pki.ServerCertFile), file(pki.ServerKeyFile), file(pki.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := egress.New(egress.Config{AllowPrivate: true})
	d := &egress.Dialer{Policy: policy}
	const shutdownTimeout = 5 * time.Second
	srv, err := exit.New(exit.Config{TLS: srvTLS, Dial: d.DialContext, ShutdownTimeout: shutdownTimeout})
	if err != nil {
		t.Fatal(err)
	}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	exitCtx, stopExit := context.WithCancel(context.Background())
	exitDone := make(chan struct{})
	go func() { defer close(exitDone); srv.Serve(exitCtx, eln) }()
	defer func() { stopExit(); <-exitDone }()

	cliTLS, err := pki.ClientConfig(file(pki.ClientCertFile), file(pki.ClientKeyFile), file(pki.CAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Exit: eln.Addr().String(), TLS: cliTLS, ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	aln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan struct{})
	go func() { defer close(agentDone); a.Serve(agentCtx, aln) }()
	defer func() { stopAgent(); <-agentDone }()

	// A plain HTTP request leaves an idle keep-alive upstream connection,
	// which is an open tunnel stream.
	origin := startOrigin(t)
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: aln.Addr().String()})}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + origin + "/x")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	waitUntil(t, func() bool { return srv.OpenStreams() == 1 })

	start := time.Now()
	stopExit()
	select {
	case <-exitDone:
	case <-time.After(2 * shutdownTimeout):
		t.Fatal("exit did not stop")
	}
	if took := time.Since(start); took > shutdownTimeout/2 {
		t.Fatalf("exit took %v to stop (shutdown timeout %v): an idle pooled stream held the draining link", took, shutdownTimeout)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReportShowsTheIdentityTheExitVerified(t *testing.T) {
	dir := t.TempDir()
	if err := pki.Init(pki.InitOptions{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	file := func(n string) string { return filepath.Join(dir, n) }
	srvTLS, _ := pki.ServerConfig(file(pki.ServerCertFile), file(pki.ServerKeyFile), file(pki.CAFile))
	policy, _ := egress.New(egress.Config{AllowPrivate: true})
	d := &egress.Dialer{Policy: policy}
	const arn = "arn:aws:iam::111122223333:role/agent"
	srv, err := exit.New(exit.Config{TLS: srvTLS, Dial: d.DialContext,
		Authorize: func(context.Context, string, http.Header) (string, error) { return arn, nil }})
	if err != nil {
		t.Fatal(err)
	}
	eln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, eln) }()
	defer func() { cancel(); <-done }()

	cliTLS, _ := pki.ClientConfig(file(pki.ClientCertFile), file(pki.ClientKeyFile), file(pki.CAFile), "")
	a, err := New(Config{Exit: eln.Addr().String(), TLS: cliTLS, ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	aln, _ := Listen("127.0.0.1:0", false)
	actx, stop := context.WithCancel(context.Background())
	adone := make(chan struct{})
	go func() { defer close(adone); a.Serve(actx, aln) }()
	defer func() { stop(); <-adone }()

	if got := a.Report().Verified; got != "" {
		t.Fatalf("verified identity %q before any stream", got)
	}
	c, err := a.Dial(context.Background(), "tcp", startOrigin(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := a.Report().Verified; got != arn {
		t.Fatalf("verified identity %q, want %q", got, arn)
	}
}
