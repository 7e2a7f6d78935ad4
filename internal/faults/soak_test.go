package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// figures is what the soak test watches in one process.
type figures struct {
	rss        int64
	files      int
	goroutines int // -1 without an admin listener
}

func (f figures) String() string {
	g := "n/a"
	if f.goroutines >= 0 {
		g = fmt.Sprint(f.goroutines)
	}
	return fmt.Sprintf("RSS %s, open files %d, goroutines %s", proctest.MiB(f.rss), f.files, g)
}

func snapshot(t *testing.T, p *proctest.Proc) figures {
	t.Helper()
	f := figures{rss: p.RSS(t), files: p.OpenFiles(t), goroutines: -1}
	if g, ok := p.Goroutines(t); ok {
		f.goroutines = g
	}
	return f
}

// TestSoak runs mixed traffic through an agent and an exit for the
// duration given with -soak: plain HTTP requests small and large, CONNECT
// tunnels small and large, SOCKS5 tunnels. Every operation must succeed,
// and once the traffic stops the agent's and the exit's memory, open files
// and goroutines must come back near where they started.
func TestSoak(t *testing.T) {
	if *soak <= 0 {
		t.Skip("soak test: run with -soak DURATION, for example: go test ./internal/faults -run Soak -soak 10m")
	}
	needProcesses(t)
	certs := proctest.CertsInit(t)
	// Info, the default level, rather than the harness's debug.
	exit, exitAddr := procs.StartExit(t, certs, "--log-level", "info")
	agent, proxy := procs.StartAgent(t, certs, exitAddr, "--log-level", "info")
	origin := newOrigin(t)
	echo := newEcho(t)
	waitRequest(t, proxy, origin.URL+"/hello", "hello\n", 10*time.Second)

	// Warm up every kind of traffic once, then take the start figures.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := proxyClient(t, proxy, 30*time.Second)
	kinds := soakKinds(client, proxy, origin.URL, echo.Addr())
	for _, k := range kinds {
		if err := k.run(ctx); err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
	}
	time.Sleep(time.Second)
	a0, e0 := snapshot(t, agent), snapshot(t, exit)
	t.Logf("start: agent %v; exit %v", a0, e0)

	var (
		wg     sync.WaitGroup
		counts = make([]atomic.Int64, len(kinds))
		fails  atomic.Int64
		mu     sync.Mutex
		errs   []string // guarded by mu: the first few failures
	)
	runCtx, stop := context.WithTimeout(ctx, *soak)
	defer stop()
	for i, k := range kinds {
		for range k.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for runCtx.Err() == nil {
					if err := k.run(ctx); err != nil {
						fails.Add(1)
						mu.Lock()
						if len(errs) < 10 {
							errs = append(errs, fmt.Sprintf("%s: %v", k.name, err))
						}
						mu.Unlock()
						continue
					}
					counts[i].Add(1)
				}
			}()
		}
	}
	var peakA, peakE int64
	tick := time.NewTicker(min(time.Minute, max(*soak/4, time.Second)))
	defer tick.Stop()
	start := time.Now()
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-tick.C:
			a, e := snapshot(t, agent), snapshot(t, exit)
			peakA, peakE = max(peakA, a.rss), max(peakE, e.rss)
			t.Logf("%v: agent %v; exit %v; failures %d", time.Since(start).Round(time.Second), a, e, fails.Load())
		}
	}
	wg.Wait()
	client.CloseIdleConnections()

	// Let idle connections time out or close, then compare.
	deadline := time.Now().Add(30 * time.Second)
	var a1, e1 figures
	for {
		time.Sleep(time.Second)
		a1, e1 = snapshot(t, agent), snapshot(t, exit)
		if settled(a0, a1) && settled(e0, e1) || time.Now().After(deadline) {
			break
		}
	}
	var total int64
	var per []string
	for i, k := range kinds {
		n := counts[i].Load()
		total += n
		per = append(per, fmt.Sprintf("%s %d", k.name, n))
	}
	t.Logf("soak of %v: %d operations (%s), %d failed; peak RSS agent %s, exit %s",
		*soak, total, strings.Join(per, ", "), fails.Load(), proctest.MiB(peakA), proctest.MiB(peakE))
	t.Logf("end: agent %v; exit %v", a1, e1)
	if fails.Load() > 0 {
		t.Errorf("%d operations failed; first ones: %q", fails.Load(), errs)
	}
	if !settled(a0, a1) {
		t.Errorf("agent did not come back near its start: start %v, end %v", a0, a1)
	}
	if !settled(e0, e1) {
		t.Errorf("exit did not come back near its start: start %v, end %v", e0, e1)
	}
}

// settled reports whether end is near start: open files and goroutines
// within a few, memory within half again plus 16 MiB (the Go runtime gives
// freed memory back to the kernel slowly).
func settled(start, end figures) bool {
	if end.files > start.files+10 {
		return false
	}
	if start.goroutines >= 0 && end.goroutines > start.goroutines+20 {
		return false
	}
	return end.rss <= start.rss*3/2+16<<20
}

// soakKind is one kind of traffic in the soak.
type soakKind struct {
	name    string
	workers int
	run     func(ctx context.Context) error
}

func soakKinds(c *http.Client, proxy, originURL, echo string) []soakKind {
	roundTrip := func(conn net.Conn, n int) error {
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		msg := bytes.Repeat([]byte("fluidity"), n/8)
		errc := make(chan error, 1)
		go func() {
			_, err := conn.Write(msg)
			errc <- err
		}()
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, got); err != nil {
			return err
		}
		if err := <-errc; err != nil {
			return err
		}
		if !bytes.Equal(got, msg) {
			return fmt.Errorf("echo of %d bytes differs", n)
		}
		return nil
	}
	return []soakKind{
		{"http small", 4, func(ctx context.Context) error {
			body, err := get(ctx, c, originURL+"/hello")
			if err == nil && body != "hello\n" {
				err = fmt.Errorf("body %q", body)
			}
			return err
		}},
		{"http large", 1, func(ctx context.Context) error {
			const n = 8 << 20
			body, err := get(ctx, c, fmt.Sprintf("%s/bytes?n=%d", originURL, n))
			if err == nil && len(body) != n {
				err = fmt.Errorf("%d bytes, want %d", len(body), n)
			}
			return err
		}},
		{"connect small", 4, func(ctx context.Context) error {
			conn, err := dialConnect(proxy, echo, 10*time.Second)
			if err != nil {
				return err
			}
			return roundTrip(conn, 64)
		}},
		{"connect large", 1, func(ctx context.Context) error {
			conn, err := dialConnect(proxy, echo, 10*time.Second)
			if err != nil {
				return err
			}
			return roundTrip(conn, 4<<20)
		}},
		{"socks5 small", 2, func(ctx context.Context) error {
			conn, err := dialSOCKS5(proxy, echo, 10*time.Second)
			if err != nil {
				return err
			}
			return roundTrip(conn, 64)
		}},
	}
}
