package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// curlResult is what a curl run left behind.
type curlResult struct {
	code     int    // exit status; 0 is success
	stdout   string // empty when stdout went to a writer
	stderr   string
	duration time.Duration
}

// curlOpts redirect curl's standard streams; nil means a buffer (stdout) or
// nothing (stdin).
type curlOpts struct {
	stdin  io.Reader
	stdout io.Writer
}

// runCurl runs curl with args, ignoring any .curlrc, silent but showing
// errors, and with a 60s cap so a hang fails the test instead of stalling it.
func runCurl(t *testing.T, o curlOpts, args ...string) curlResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	return runCurlCtx(ctx, t, o, args...)
}

func runCurlCtx(ctx context.Context, t *testing.T, o curlOpts, args ...string) curlResult {
	t.Helper()
	full := append([]string{"-q", "-sS", "--max-time", "60"}, args...)
	cmd := exec.CommandContext(ctx, "curl", full...)
	cmd.Env = proctest.Env()
	var stdout, stderr bytes.Buffer
	cmd.Stdin = o.stdin
	cmd.Stdout = &stdout
	if o.stdout != nil {
		cmd.Stdout = o.stdout
	}
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	res := curlResult{stdout: stdout.String(), stderr: stderr.String(), duration: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		// Errorf, not Fatalf: curl may run on a goroutine of the test.
		t.Errorf("run curl %s: %v", strings.Join(args, " "), err)
		res.code = -1
	}
	return res
}

// mustCurl runs curl and fails the test unless it exits 0.
func mustCurl(t *testing.T, o curlOpts, args ...string) curlResult {
	t.Helper()
	res := runCurl(t, o, args...)
	if res.code != 0 {
		t.Fatalf("curl %s: exit status %d\nstderr: %s\nstdout: %s", strings.Join(args, " "), res.code, res.stderr, res.stdout)
	}
	return res
}

// proxyConn is a connection tunnelled through a proxy. Reads go through the
// buffered reader that parsed the proxy's answer, which may hold the first
// bytes of the stream. It embeds the net.Conn interface, not *net.TCPConn,
// so that io.Copy cannot reach around the buffer through TCPConn.WriteTo.
type proxyConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *proxyConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection to the proxy.
func (c *proxyConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

// dialConnect opens a CONNECT tunnel to target through the HTTP proxy at
// proxy. It returns the proxy's response; the connection is nil unless the
// proxy answered 200.
func dialConnect(t *testing.T, proxy, target string) (*proxyConn, *http.Response) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(nc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		nc.Close()
		t.Fatalf("CONNECT %s: read response: %v", target, err)
	}
	nc.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusOK {
		nc.Close()
		return nil, resp
	}
	c := &proxyConn{Conn: nc, r: br}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// mustConnect is dialConnect that fails the test unless the tunnel opens.
func mustConnect(t *testing.T, proxy, target string) *proxyConn {
	t.Helper()
	c, resp := dialConnect(t, proxy, target)
	if c == nil {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("CONNECT %s: %s: %s", target, resp.Status, body)
	}
	return c
}

// dialSOCKS5 asks the SOCKS5 server at proxy for a connection to host:port
// by name. It returns the reply code (0 is success) and, on success, the
// connection.
func dialSOCKS5(t *testing.T, proxy, host string, port int) (net.Conn, byte) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", proxy, 5*time.Second)
	if err != nil {
		t.Fatalf("dial proxy: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(nc)
	// Greeting: version 5, one method, no authentication.
	if _, err := nc.Write([]byte{5, 1, 0}); err != nil {
		t.Fatalf("socks5 greeting: %v", err)
	}
	var choice [2]byte
	if _, err := io.ReadFull(br, choice[:]); err != nil || choice != [2]byte{5, 0} {
		t.Fatalf("socks5 method choice: %v %v", choice, err)
	}
	req := []byte{5, 1, 0, 3, byte(len(host))}
	req = append(req, host...)
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := nc.Write(req); err != nil {
		t.Fatalf("socks5 request: %v", err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("socks5 reply: %v", err)
	}
	if hdr[1] != 0 {
		return nil, hdr[1]
	}
	var skip int
	switch hdr[3] {
	case 1:
		skip = 4 + 2
	case 4:
		skip = 16 + 2
	case 3:
		n, err := br.ReadByte()
		if err != nil {
			t.Fatalf("socks5 reply: %v", err)
		}
		skip = int(n) + 2
	default:
		t.Fatalf("socks5 reply: address type %d", hdr[3])
	}
	if _, err := br.Discard(skip); err != nil {
		t.Fatalf("socks5 reply: %v", err)
	}
	nc.SetDeadline(time.Time{})
	return &proxyConn{Conn: nc, r: br}, 0
}

// splitHostPort splits a loopback address into host and numeric port.
func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return host, port
}

// urlPort is the port of an httptest server's URL.
func urlPort(t *testing.T, url string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(url, "http://"), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}
