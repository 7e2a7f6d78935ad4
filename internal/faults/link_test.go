package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// streamWatch holds open tunnels, each with a reader, and records when
// each reader ended.
type streamWatch struct {
	conns []net.Conn
	ended []atomic.Int64 // unix nanos when conn i's reader returned; 0 while it reads
	errs  []error        // written by reader i before ended[i] is set
	wg    sync.WaitGroup
}

// openStreams opens n CONNECT tunnels to the echo target through the
// proxy, checks each with a round trip and starts a reader on each. Every
// read is bounded by limit, so no reader can hang the test.
func openStreams(t *testing.T, proxy, echo string, n int, limit time.Duration) *streamWatch {
	t.Helper()
	w := &streamWatch{conns: make([]net.Conn, n), ended: make([]atomic.Int64, n), errs: make([]error, n)}
	t.Cleanup(w.Close)
	var (
		wg       sync.WaitGroup
		firstErr error
		errOnce  sync.Once
		sem      = make(chan struct{}, 32)
	)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := dialConnect(proxy, echo, 10*time.Second)
			if err == nil {
				err = echoRoundTrip(c, fmt.Sprintf("stream %d\n", i), 10*time.Second)
				if err != nil {
					c.Close()
				}
			}
			if err != nil {
				errOnce.Do(func() { firstErr = fmt.Errorf("stream %d: %w", i, err) })
				return
			}
			w.conns[i] = c
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	for i, c := range w.conns {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			c.SetReadDeadline(time.Now().Add(limit))
			_, err := io.Copy(io.Discard, c)
			if err == nil {
				err = io.EOF
			}
			w.errs[i] = err
			w.ended[i].Store(time.Now().UnixNano())
		}()
	}
	return w
}

// waitEnded waits until every reader has ended or within has passed since
// start, and returns the slowest reader's time after start and how many
// still read.
func (w *streamWatch) waitEnded(start time.Time, within time.Duration) (slowest time.Duration, open int) {
	deadline := start.Add(within)
	for {
		open, slowest = 0, 0
		for i := range w.ended {
			e := w.ended[i].Load()
			if e == 0 {
				open++
				continue
			}
			slowest = max(slowest, time.Unix(0, e).Sub(start))
		}
		if open == 0 || time.Now().After(deadline) {
			return slowest, open
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// timeouts counts the readers that ended by their own deadline: clients
// that would have hung.
func (w *streamWatch) timeouts() int {
	n := 0
	for _, err := range w.errs {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			n++
		}
	}
	return n
}

func (w *streamWatch) Close() {
	for _, c := range w.conns {
		if c != nil {
			c.Close()
		}
	}
	w.wg.Wait()
}

// TestBlackholedLink stops the relay between agent and exit from carrying
// anything, with no FIN and no reset, while streams are open. The agent
// must declare the link dead within its ping deadline, fail the open
// streams so no client hangs, and reconnect once packets flow again.
func TestBlackholedLink(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs)
	relay := newLinkRelay(t, exitAddr)
	agent, proxy := procs.StartAgent(t, certs, relay.Addr(),
		"--ping-interval", "1s", "--ping-timeout", "2s", "--dial-timeout", "2s", "--link-wait", "15s")
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	echo := newEcho(t)
	origin := newOrigin(t)

	const streams = 20
	w := openStreams(t, proxy, echo.Addr(), streams, 20*time.Second)

	start := time.Now()
	relay.setBlackhole(true)
	// Ping interval 1s + ping timeout 2s: dead within 3s; allow scheduling slack.
	const noticeWithin = 5 * time.Second
	if !agent.WaitLog(proctest.LinkLost, 1, noticeWithin) {
		t.Fatalf("the agent did not declare the blackholed link dead within %v (ping interval 1s, timeout 2s)", noticeWithin)
	}
	noticed := time.Since(start)
	slowest, open := w.waitEnded(start, noticeWithin+2*time.Second)
	if open > 0 {
		t.Fatalf("%d of %d clients still waiting %v after the link went silent", open, streams, time.Since(start).Round(time.Millisecond))
	}
	if n := w.timeouts(); n > 0 {
		t.Fatalf("%d clients hung until their own deadline", n)
	}
	t.Logf("link declared dead %v after the blackhole; every client's stream ended within %v",
		noticed.Round(time.Millisecond), slowest.Round(time.Millisecond))

	// While the network is silent, new requests wait for a link (they do
	// not fail at once); let one wait across the recovery.
	waiting := make(chan error, 1)
	go func() {
		c := proxyClient(t, proxy, 20*time.Second)
		body, err := get(context.Background(), c, origin.URL+"/hello")
		if err == nil && body != "hello\n" {
			err = fmt.Errorf("body %q", body)
		}
		waiting <- err
	}()
	time.Sleep(time.Second)
	relay.setBlackhole(false)
	healed := time.Now()
	proctest.WaitLinkUp(t, agent, 2, 15*time.Second)
	t.Logf("link up again %v after the relay forwarded again", time.Since(healed).Round(time.Millisecond))
	select {
	case err := <-waiting:
		if err != nil {
			t.Errorf("a request made during the blackhole failed after recovery: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a request made during the blackhole still waits 20s after recovery")
	}
	c, err := dialConnect(proxy, echo.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("new tunnel after recovery: %v", err)
	}
	defer c.Close()
	if err := echoRoundTrip(c, "after the blackhole\n", 5*time.Second); err != nil {
		t.Fatalf("new tunnel after recovery: %v", err)
	}
	if exit.Exited() {
		t.Fatal("the exit died")
	}
}

// TestExitKilledUnder200Streams kills the exit with SIGKILL while 200
// CONNECT tunnels are open: every client must see its stream end at once,
// the agent must reconnect when the exit is back, and the agent must hold
// no more connections or goroutines than before the streams.
func TestExitKilledUnder200Streams(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs)
	agent, proxy := procs.StartAgent(t, certs, exitAddr, "--link-wait", "15s")
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	echo := newEcho(t)
	origin := newOrigin(t)
	waitRequest(t, proxy, origin.URL+"/hello", "hello\n", 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	files0 := agent.OpenFiles(t)
	g0, haveAdmin := agent.Goroutines(t)

	const streams = 200
	w := openStreams(t, proxy, echo.Addr(), streams, 20*time.Second)
	if n := agent.OpenFiles(t); n < files0+streams {
		t.Fatalf("agent holds %d files with %d streams open, %d before: the streams are not all open", n, streams, files0)
	}
	if haveAdmin {
		g, _ := agent.Goroutines(t)
		t.Logf("agent goroutines: %d before the streams, %d with %d streams open", g0, g, streams)
	}

	killed := time.Now()
	exit.Kill()
	const within = 3 * time.Second
	slowest, open := w.waitEnded(killed, within)
	if open > 0 {
		t.Fatalf("%d of %d clients still waiting %v after the exit was killed", open, streams, within)
	}
	if n := w.timeouts(); n > 0 {
		t.Fatalf("%d clients hung until their own deadline", n)
	}
	t.Logf("all %d streams ended within %v of the kill", streams, slowest.Round(time.Millisecond))
	w.Close()

	restarted := time.Now()
	procs.StartExitAt(t, certs, exitAddr)
	proctest.WaitLinkUp(t, agent, 2, 20*time.Second)
	waitRequest(t, proxy, origin.URL+"/hello", "hello\n", 10*time.Second)
	t.Logf("the agent reconnected and served a request %v after the exit restarted", time.Since(restarted).Round(time.Millisecond))

	// Nothing of the 200 streams may stay behind in the agent.
	deadline := time.Now().Add(5 * time.Second)
	var files int
	for {
		files = agent.OpenFiles(t)
		if files <= files0+5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if files > files0+5 {
		t.Errorf("agent holds %d open files after the streams ended, %d before them: connections leaked", files, files0)
	}
	t.Logf("agent open files: %d before, %d after", files0, files)
	if !haveAdmin {
		t.Skip("goroutine check skipped: this fluidity has no 'agent --admin' listener to read go_goroutines from")
	}
	g := goroutinesDownTo(t, agent, g0+10, deadline)
	if g > g0+10 {
		t.Errorf("agent runs %d goroutines after the streams ended, %d before them: goroutines leaked", g, g0)
	}
	t.Logf("agent goroutines: %d before, %d after", g0, g)
}

// TestExitRestartsUnderLoad kills and restarts the exit 20 times while
// clients keep sending requests through the agent. After every restart
// requests must succeed again promptly, and the agent's memory must stay
// flat.
func TestExitRestartsUnderLoad(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := procs.StartExit(t, certs)
	agent, proxy := procs.StartAgent(t, certs, exitAddr,
		"--ping-interval", "1s", "--ping-timeout", "2s", "--link-wait", "10s")
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	origin := newOrigin(t)

	// The load: workers fetching small and larger bodies in a loop.
	ctx, cancel := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := proxyClient(t, proxy, 10*time.Second)
			url := origin.URL + "/hello"
			if i%2 == 1 {
				url = origin.URL + "/bytes?n=262144"
			}
			for ctx.Err() == nil {
				if _, err := get(ctx, c, url); err != nil {
					failed.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	defer func() {
		cancel()
		wg.Wait()
	}()

	const restarts = 20
	var rssAfter3 int64
	var slowest time.Duration
	for i := range restarts {
		time.Sleep(150 * time.Millisecond) // let the load run on this exit
		exit.Kill()
		before := ok.Load()
		restarted := time.Now()
		exit = procs.StartExitAt(t, certs, exitAddr)
		// The agent keeps up: within a few seconds of the restart, the
		// background requests succeed again.
		for ok.Load() < before+4 {
			if time.Since(restarted) > 10*time.Second {
				t.Fatalf("restart %d: no requests succeeded within 10s of the exit restarting (%d failed so far); the agent's last word: %s",
					i+1, failed.Load(), lastLine(agent, proctest.LinkLost))
			}
			time.Sleep(10 * time.Millisecond)
		}
		slowest = max(slowest, time.Since(restarted))
		if i == 2 {
			time.Sleep(300 * time.Millisecond)
			rssAfter3 = agent.RSS(t)
		}
	}
	time.Sleep(300 * time.Millisecond)
	rssEnd := agent.RSS(t)
	t.Logf("%d restarts: %d requests succeeded, %d failed; slowest recovery %v; agent RSS %s after 3 restarts, %s after %d",
		restarts, ok.Load(), failed.Load(), slowest.Round(time.Millisecond), proctest.MiB(rssAfter3), proctest.MiB(rssEnd), restarts)
	if limit := rssAfter3*3/2 + 8<<20; rssEnd > limit {
		t.Errorf("agent RSS grew from %s after 3 restarts to %s after %d (limit %s)", proctest.MiB(rssAfter3), proctest.MiB(rssEnd), restarts, proctest.MiB(limit))
	}
}

// lastLine is the last line of p's log that contains s.
func lastLine(p *proctest.Proc, s string) string {
	out := p.Stderr()
	i := strings.LastIndex(out, s)
	if i < 0 {
		return "(none)"
	}
	start := strings.LastIndexByte(out[:i], '\n') + 1
	end := strings.IndexByte(out[i:], '\n')
	if end < 0 {
		return out[start:]
	}
	return out[start : i+end]
}
