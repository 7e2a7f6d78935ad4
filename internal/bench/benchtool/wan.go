package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// The clients of the WAN benchmarks: new HTTPS connections, as a browser
// opens them, straight to the origin (through the benchmark's relay),
// through a CONNECT proxy or through a SOCKS5 proxy.

// dialVia opens a TCP connection to target: straight (mode direct, where
// addr is the relay in front of target), with CONNECT through the HTTP
// proxy at proxy (mode connect) or through the SOCKS5 proxy at proxy (mode
// socks). Like a browser, it waits for the proxy's answer before it starts
// TLS.
func dialVia(mode, addr, proxy, target string) (net.Conn, error) {
	switch mode {
	case "direct":
		return net.Dial("tcp", addr)
	case "connect":
		c, err := dialConnect(proxy, target)
		if err != nil {
			return nil, err
		}
		return c, nil
	case "socks":
		return dialSOCKS(proxy, target)
	}
	return nil, fmt.Errorf("mode %q: want direct, connect or socks", mode)
}

// dialSOCKS opens a SOCKS5 connection (no authentication, CONNECT to a
// domain name or IP literal) and waits for its reply.
func dialSOCKS(proxy, target string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(target)
	if err != nil {
		return nil, err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, err
	}
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		return nil, err
	}
	req := []byte{5, 1, 0, 5, 1, 0, 3, byte(len(host))}
	req = append(req, host...)
	req = append(req, byte(port>>8), byte(port))
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var head [2 + 4]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		c.Close()
		return nil, fmt.Errorf("socks5: %w", err)
	}
	if head[0] != 5 || head[1] != 0 || head[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("socks5: refused (reply %d)", head[3])
	}
	var rest int
	switch head[5] {
	case 1:
		rest = 4 + 2
	case 4:
		rest = 16 + 2
	case 3:
		var l [1]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			c.Close()
			return nil, err
		}
		rest = int(l[0]) + 2
	default:
		c.Close()
		return nil, errors.New("socks5: bad address type in reply")
	}
	if _, err := io.ReadFull(c, make([]byte, rest)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

var tlsClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}

// runTTFB times -n sequential new HTTPS connections: connect (and proxy
// set-up), TLS 1.3 handshake, a request for one byte, its first byte.
func runTTFB(args []string) error {
	fs := newFlags("client-ttfb")
	mode := fs.String("mode", "direct", "direct: to -addr; connect or socks: through the proxy at -proxy to -target")
	addr := fs.String("addr", "", "mode direct: the address to connect to")
	proxy := fs.String("proxy", "", "the proxy's address")
	target := fs.String("target", "", "the TLS source's address, as the proxy is asked for it")
	n := fs.Int("n", 10, "rounds")
	fs.Parse(args)

	lat := make([]time.Duration, 0, *n)
	start := time.Now()
	for range *n {
		t := time.Now()
		c, err := dialVia(*mode, *addr, *proxy, *target)
		if err != nil {
			return err
		}
		tc := tls.Client(c, tlsClientConfig)
		_, err = io.WriteString(tc, "1\n")
		if err == nil {
			_, err = io.ReadFull(tc, make([]byte, 1))
		}
		tc.Close()
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	printJSON(latencies(lat, time.Since(start)))
	return nil
}

// PageResult is what client-page prints.
type PageResult struct {
	Loads   int     `json:"loads"`
	P50ms   float64 `json:"p50_ms"`
	Objects int     `json:"objects"`
	Bytes   int64   `json:"bytes"`
}

// runPage loads a "page" -n times in sequence: -objects HTTPS GETs of
// -size bytes each, spread over -conns new keep-alive connections opened
// at once, as a browser does for one origin.
func runPage(args []string) error {
	fs := newFlags("client-page")
	mode := fs.String("mode", "direct", "direct: to -addr; connect or socks: through the proxy at -proxy to -target")
	addr := fs.String("addr", "", "mode direct: the address to connect to")
	proxy := fs.String("proxy", "", "the proxy's address")
	target := fs.String("target", "", "the HTTPS origin's address, as the proxy is asked for it")
	objects := fs.Int("objects", 30, "objects per page")
	conns := fs.Int("conns", 6, "connections per page")
	size := fs.Int("size", 32<<10, "bytes per object")
	n := fs.Int("n", 3, "page loads")
	fs.Parse(args)

	var lat []time.Duration
	var total int64
	for range *n {
		t := time.Now()
		got, err := inParallel(*conns, func(i int) (int64, error) {
			count := *objects / *conns
			if i < *objects%*conns {
				count++
			}
			return fetchObjects(*mode, *addr, *proxy, *target, count, *size)
		})
		total += got
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	l := latencies(lat, 0)
	printJSON(PageResult{Loads: *n, P50ms: l.P50ms, Objects: *objects, Bytes: total})
	return nil
}

// fetchObjects opens one HTTPS connection and GETs count objects on it in
// sequence.
func fetchObjects(mode, addr, proxy, target string, count, size int) (int64, error) {
	c, err := dialVia(mode, addr, proxy, target)
	if err != nil {
		return 0, err
	}
	tc := tls.Client(c, tlsClientConfig)
	defer tc.Close()
	br := bufio.NewReaderSize(tc, 64<<10)
	var got int64
	for range count {
		if _, err := fmt.Fprintf(tc, "GET /bytes?n=%d HTTP/1.1\r\nHost: %s\r\n\r\n", size, target); err != nil {
			return got, err
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return got, err
		}
		k, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		got += k
		if err != nil {
			return got, err
		}
		if k != int64(size) {
			return got, errShortBody
		}
	}
	return got, nil
}
