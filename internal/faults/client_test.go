package faults

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// tunnelConn is a connection tunnelled through the agent. Reads go through
// the buffered reader that parsed the proxy's answer.
type tunnelConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *tunnelConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// dialConnect opens a CONNECT tunnel to target through the proxy, within
// timeout. Safe to call from any goroutine.
func dialConnect(proxy, target string, timeout time.Duration) (*tunnelConn, error) {
	nc, err := net.DialTimeout("tcp", proxy, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial proxy: %w", err)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(nc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("CONNECT %s: read response: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		nc.Close()
		return nil, fmt.Errorf("CONNECT %s: %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	nc.SetDeadline(time.Time{})
	return &tunnelConn{Conn: nc, r: br}, nil
}

// dialSOCKS5 opens a connection to target (an IPv4 host:port) through the
// SOCKS5 front-end of the proxy, within timeout.
func dialSOCKS5(proxy, target string, timeout time.Duration) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	port, _ := strconv.Atoi(portStr)
	ip := net.ParseIP(host).To4()
	if ip == nil {
		return nil, fmt.Errorf("socks5 target %q: want an IPv4 address", target)
	}
	nc, err := net.DialTimeout("tcp", proxy, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial proxy: %w", err)
	}
	nc.SetDeadline(time.Now().Add(timeout))
	req := []byte{5, 1, 0, 5, 1, 0, 1}
	req = append(req, ip...)
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	if _, err := nc.Write(req); err != nil {
		nc.Close()
		return nil, fmt.Errorf("socks5: %w", err)
	}
	// Method choice (2 bytes), then a reply with an IPv4 or IPv6 address.
	var hdr [6]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		nc.Close()
		return nil, fmt.Errorf("socks5 reply: %w", err)
	}
	if hdr[0] != 5 || hdr[1] != 0 || hdr[3] != 0 {
		nc.Close()
		return nil, fmt.Errorf("socks5: method % x, reply code %d", hdr[:2], hdr[3])
	}
	skip := 4 + 2
	if hdr[5] == 4 {
		skip = 16 + 2
	}
	if _, err := io.ReadFull(nc, make([]byte, skip)); err != nil {
		nc.Close()
		return nil, fmt.Errorf("socks5 reply: %w", err)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}

// proxyClient is an HTTP client that sends everything through the agent.
// Its connections are closed when the test ends.
func proxyClient(t testing.TB, proxy string, timeout time.Duration) *http.Client {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: proxy}
	tr := &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

// get fetches url with c and returns the body; an error for any status
// other than 200.
func get(ctx context.Context, c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

// waitRequest retries a GET of url through the proxy until it answers want
// or timeout passes, and returns how long that took.
func waitRequest(t *testing.T, proxy, url, want string, timeout time.Duration) time.Duration {
	t.Helper()
	c := proxyClient(t, proxy, 3*time.Second)
	start := time.Now()
	var err error
	for time.Since(start) < timeout {
		var body string
		body, err = get(context.Background(), c, url)
		if err == nil && body == want {
			return time.Since(start)
		}
		if err == nil {
			err = fmt.Errorf("body %q, want %q", body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no request through the agent succeeded within %v; last: %v", timeout, err)
	return 0
}

// newOrigin starts an HTTP origin in the test process:
//
//	/hello       "hello\n"
//	/bytes?n=N   N bytes
func newOrigin(t testing.TB) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello\n") })
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, zeros{}, n)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// newEcho starts a target that echoes what it reads.
func newEcho(t testing.TB) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) { io.Copy(c, c) })
}

// newBlaster starts a target that writes zeros as fast as the reader lets
// it until the connection ends.
func newBlaster(t testing.TB) *proctest.Target {
	return proctest.NewTarget(t, func(c net.Conn) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			discard(c)
		}()
		io.Copy(c, zeros{})
		c.Close()
		<-done
	})
}

// echoRoundTrip writes msg on c and reads it back, within timeout.
func echoRoundTrip(c net.Conn, msg string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return fmt.Errorf("echo: got %q, want %q", buf, msg)
	}
	return nil
}
