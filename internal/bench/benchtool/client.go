package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// BulkResult is what client-bulk prints.
type BulkResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// LatencyResult is what client-small and client-setup print.
type LatencyResult struct {
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
	PerSec   float64 `json:"per_sec"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
}

// IdleResult is what client-idle prints once its tunnels are open.
type IdleResult struct {
	Open int `json:"open"`
}

// conn is a client connection with its read buffer.
type conn struct {
	net.Conn
	br *bufio.Reader
}

func (c *conn) Read(p []byte) (int, error) { return c.br.Read(p) }

// dialDirect connects straight to addr.
func dialDirect(addr string) (*conn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: nc, br: bufio.NewReaderSize(nc, 64<<10)}, nil
}

// dialConnect opens a CONNECT tunnel to target through the HTTP proxy at
// proxy and waits for its 200.
func dialConnect(proxy, target string) (*conn, error) {
	nc, err := net.Dial("tcp", proxy)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(nc, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReaderSize(nc, 64<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("CONNECT %s: %w", target, err)
	}
	if resp.StatusCode != http.StatusOK {
		nc.Close()
		return nil, fmt.Errorf("CONNECT %s: %s", target, resp.Status)
	}
	return &conn{Conn: nc, br: br}, nil
}

func printJSON(v any) {
	out, _ := json.Marshal(v)
	fmt.Printf("%s\n", out)
}

// runBulk downloads -n bytes on each of -streams streams in parallel.
func runBulk(args []string) error {
	fs := newFlags("client-bulk")
	mode := fs.String("mode", "tls", "tls: raw TLS 1.3 to -addr; connect: CONNECT through -proxy to -addr; socks: SOCKS5 through -proxy to -addr")
	addr := fs.String("addr", "", "source address")
	proxy := fs.String("proxy", "", "agent address (mode connect)")
	n := fs.Int64("n", 1<<30, "bytes per stream")
	streams := fs.Int("streams", 1, "parallel streams")
	fs.Parse(args)

	start := time.Now()
	total, err := inParallel(*streams, func(int) (int64, error) { return bulkStream(*mode, *addr, *proxy, *n) })
	if err != nil {
		return err
	}
	printJSON(BulkResult{Bytes: total, Seconds: time.Since(start).Seconds()})
	return nil
}

func bulkStream(mode, addr, proxy string, n int64) (int64, error) {
	var c net.Conn
	switch mode {
	case "tls":
		tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
		if err != nil {
			return 0, err
		}
		c = tc
	case "connect":
		cc, err := dialConnect(proxy, addr)
		if err != nil {
			return 0, err
		}
		c = cc
	case "socks":
		sc, err := dialSOCKS(proxy, addr)
		if err != nil {
			return 0, err
		}
		c = sc
	default:
		return 0, fmt.Errorf("mode %q: want tls, connect or socks", mode)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%d\n", n); err != nil {
		return 0, err
	}
	buf := make([]byte, chunk)
	var got int64
	for got < n {
		m, err := c.Read(buf)
		got += int64(m)
		if err != nil {
			if err == io.EOF && got == n {
				break
			}
			return got, fmt.Errorf("read after %d of %d bytes: %w", got, n, err)
		}
	}
	return got, nil
}

// requester issues GET /small on one connection and reads the answer.
type requester struct {
	c   *conn
	req []byte
}

func newRequester(c *conn, mode, origin string) *requester {
	target := "/small"
	if mode == "proxy" {
		target = "http://" + origin + "/small"
	}
	return &requester{c: c, req: fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: benchtool\r\n\r\n", target, origin)}
}

var errShortBody = errors.New("short response body")

func (r *requester) get() error {
	if _, err := r.c.Conn.Write(r.req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r.c.br, nil)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET: %s", resp.Status)
	}
	if n != int64(len(smallBody)) {
		return errShortBody
	}
	return nil
}

// dialMode connects for client-small and client-setup: direct and proxy
// reach a TCP peer (origin or agent), connect tunnels through the agent.
func dialMode(mode, origin, proxy string) (*conn, error) {
	switch mode {
	case "direct":
		return dialDirect(origin)
	case "proxy":
		return dialDirect(proxy)
	case "connect":
		return dialConnect(proxy, origin)
	}
	return nil, fmt.Errorf("mode %q: want direct, connect or proxy", mode)
}

// runSmall runs -conns keep-alive connections issuing sequential small
// GETs for -duration.
func runSmall(args []string) error {
	fs := newFlags("client-small")
	mode := fs.String("mode", "direct", "direct: to -origin; connect: CONNECT tunnels through -proxy; proxy: absolute-URI requests to -proxy")
	origin := fs.String("origin", "", "origin HTTP address")
	proxy := fs.String("proxy", "", "agent address")
	conns := fs.Int("conns", 64, "keep-alive connections")
	duration := fs.Duration("duration", 10*time.Second, "how long to issue requests")
	fs.Parse(args)

	reqs := make([]*requester, *conns)
	for i := range reqs {
		c, err := dialMode(*mode, *origin, *proxy)
		if err != nil {
			return err
		}
		defer c.Close()
		reqs[i] = newRequester(c, *mode, *origin)
		if err := reqs[i].get(); err != nil { // warm the connection up
			return err
		}
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		lat   []time.Duration
		first error
	)
	start := time.Now()
	deadline := start.Add(*duration)
	for _, r := range reqs {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 1<<16)
			var err error
			for {
				t := time.Now()
				if !t.Before(deadline) {
					break
				}
				if err = r.get(); err != nil {
					break
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			defer mu.Unlock()
			lat = append(lat, mine...)
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if first != nil {
		return first
	}
	printJSON(latencies(lat, elapsed))
	return nil
}

func latencies(lat []time.Duration, elapsed time.Duration) LatencyResult {
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))]) / 1e6
	}
	return LatencyResult{
		Requests: len(lat),
		Seconds:  elapsed.Seconds(),
		PerSec:   float64(len(lat)) / elapsed.Seconds(),
		P50ms:    pct(0.50),
		P99ms:    pct(0.99),
	}
}

// runSetup times -n sequential rounds of connect, one small GET, close.
func runSetup(args []string) error {
	fs := newFlags("client-setup")
	mode := fs.String("mode", "direct", "direct: to -origin; connect: a new CONNECT tunnel through -proxy each time")
	origin := fs.String("origin", "", "origin HTTP address")
	proxy := fs.String("proxy", "", "agent address")
	n := fs.Int("n", 2000, "rounds")
	fs.Parse(args)

	lat := make([]time.Duration, 0, *n)
	start := time.Now()
	for range *n {
		t := time.Now()
		c, err := dialMode(*mode, *origin, *proxy)
		if err != nil {
			return err
		}
		err = newRequester(c, *mode, *origin).get()
		c.Close()
		if err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	printJSON(latencies(lat, time.Since(start)))
	return nil
}

// runIdle opens -n CONNECT tunnels to -target, prints how many are open,
// then holds them until stdin is closed.
func runIdle(args []string) error {
	fs := newFlags("client-idle")
	proxy := fs.String("proxy", "", "agent address")
	target := fs.String("target", "", "holding origin address")
	n := fs.Int("n", 2000, "tunnels")
	parallel := fs.Int("parallel", 16, "tunnels being opened at once")
	fs.Parse(args)

	conns := make([]*conn, *n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, *parallel)
	for i := range conns {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := dialConnect(*proxy, *target)
			if err == nil {
				// A byte sent makes the exit's side of the stream carry data,
				// as a real idle connection would have.
				_, err = c.Write([]byte{'x'})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = err
			}
			conns[i] = c
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	if first != nil {
		return first
	}
	printJSON(IdleResult{Open: len(conns)})
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// inParallel runs f(0) … f(n-1) at once and returns the sum of the bytes
// they moved and the first error.
func inParallel(n int, f func(i int) (int64, error)) (int64, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
	)
	for i := range n {
		wg.Go(func() {
			got, err := f(i)
			mu.Lock()
			defer mu.Unlock()
			total += got
			if err != nil && first == nil {
				first = err
			}
		})
	}
	wg.Wait()
	return total, first
}
