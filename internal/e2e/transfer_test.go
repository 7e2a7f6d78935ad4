package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// memoryLimit is the peak resident size the agent and the exit must stay
// under while they carry bodies larger than it.
const memoryLimit = 64 << 20

// TestLargeBodiesStreamThroughHTTPProxy sends 100 MB each way through the
// plain HTTP proxy with curl and checks the bytes and the memory the agent
// and the exit needed to carry them.
func TestLargeBodiesStreamThroughHTTPProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB; skipped with -short")
	}
	const size = 100 << 20
	tp := startPair(t)
	origin := newOrigin(t)
	proxy := "http://" + tp.agentAddr

	t.Run("a 100 MB download arrives intact", func(t *testing.T) {
		const seed = 1
		want := make(chan string, 1)
		go func() { want <- payloadSum(seed, size) }()
		got := newHashWriter()
		res := mustCurl(t, curlOpts{stdout: got}, "-x", proxy,
			fmt.Sprintf("%s/stream?n=%d&seed=%d", origin.URL, size, seed))
		if n := got.n.Load(); n != size {
			t.Fatalf("received %d bytes, want %d", n, size)
		}
		if s := got.sum(); s != <-want {
			t.Fatalf("sha256 of the download is %s, want the origin's", s)
		}
		t.Logf("100 MB download: %v (%.0f MB/s)", res.duration.Round(time.Millisecond), float64(size)/1e6/res.duration.Seconds())
	})

	t.Run("a 100 MB upload arrives intact", func(t *testing.T) {
		const seed = 2
		want := make(chan string, 1)
		go func() { want <- payloadSum(seed, size) }()
		// -T - streams stdin as a chunked PUT, so curl holds no copy either.
		res := mustCurl(t, curlOpts{stdin: payload(seed, size)}, "-x", proxy, "-T", "-", origin.URL+"/upload")
		if got, w := strings.TrimSpace(res.stdout), fmt.Sprintf("%s %d", <-want, size); got != w {
			t.Fatalf("origin received %q, want %q", got, w)
		}
		t.Logf("100 MB upload: %v (%.0f MB/s)", res.duration.Round(time.Millisecond), float64(size)/1e6/res.duration.Seconds())
	})

	peaks := reportMemory(t, tp.agent, tp.exit)
	for name, hwm := range peaks {
		if hwm >= memoryLimit {
			t.Errorf("%s peak RSS %s after carrying 100 MB bodies, want < %s: bodies are being buffered", name, proctest.MiB(hwm), proctest.MiB(memoryLimit))
		}
	}
}

// TestUploadThroughConnectArrivesIntact sends 50 MB through CONNECT tunnels:
// from a raw client with half-close to a target that hashes what it got, and
// from curl tunnelling an HTTP upload with -p.
func TestUploadThroughConnectArrivesIntact(t *testing.T) {
	size := int64(50 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	tp := startPair(t)

	t.Run("raw stream with half-close", func(t *testing.T) {
		const seed = 3
		target := newEchoHash(t)
		c := mustConnect(t, tp.agentAddr, target.Addr())
		start := time.Now()
		go func() {
			io.Copy(c, payload(seed, size))
			c.CloseWrite() // the target answers only after it sees EOF
		}()
		reply, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("read the target's answer: %v", err)
		}
		if got, want := strings.TrimSpace(reply), fmt.Sprintf("%s %d", payloadSum(seed, size), size); got != want {
			t.Fatalf("target received %q, want %q", got, want)
		}
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("after the answer: got %v, want EOF", err)
		}
		t.Logf("%d MB raw CONNECT upload: %v", size>>20, time.Since(start).Round(time.Millisecond))
	})

	t.Run("curl upload tunnelled with -p", func(t *testing.T) {
		const seed = 4
		origin := newOrigin(t)
		res := mustCurl(t, curlOpts{stdin: payload(seed, size)}, "-p", "-x", "http://"+tp.agentAddr, "-T", "-", origin.URL+"/upload")
		if got, want := strings.TrimSpace(res.stdout), fmt.Sprintf("%s %d", payloadSum(seed, size), size); got != want {
			t.Fatalf("origin received %q, want %q", got, want)
		}
		t.Logf("%d MB curl -p upload: %v", size>>20, res.duration.Round(time.Millisecond))
	})
}

// TestStalledStreamDoesNotSlowOthers leaves a tunnel whose reader never
// reads full of data, and checks that a download on another connection
// through the same agent and the same link is not held up, and that the
// stalled stream still delivers every byte once it is read.
func TestStalledStreamDoesNotSlowOthers(t *testing.T) {
	size := int64(20 << 20)
	if testing.Short() {
		size = 4 << 20
	}
	// More than every buffer between the target and the stalled reader can
	// hold, so the target can only write it all if nothing pushes back.
	stallSize := stalledPathBound(t) + 16<<20
	// One link, so the stalled stream and the download share it.
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	agent, agentAddr := proctest.StartAgent(t, certs, exitAddr, "--links", "1")
	proctest.WaitLinkUp(t, agent, 1, linkWithin)
	origin := newOrigin(t)
	proxy := "http://" + agentAddr
	url := fmt.Sprintf("%s/stream?n=%d&seed=5", origin.URL, size)
	wantSum := payloadSum(5, size)

	download := func() time.Duration {
		t.Helper()
		got := newHashWriter()
		res := mustCurl(t, curlOpts{stdout: got}, "-x", proxy, url)
		if got.sum() != wantSum || got.n.Load() != size {
			t.Fatalf("download: %d bytes with the wrong checksum", got.n.Load())
		}
		return res.duration
	}
	baseline := download()

	const stallSeed = 6
	var written atomic.Int64
	blaster := newBlaster(t, stallSeed, stallSize, &written)
	stalled := mustConnect(t, agentAddr, blaster.Addr())
	// Wait until the stalled stream is full: the target can write no more.
	var last int64 = -1
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := written.Load()
		if n == last && n > 0 {
			break
		}
		if n >= stallSize {
			t.Fatalf("the target wrote all %d bytes though nobody read them: nothing pushes back", stallSize)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stalled stream did not fill up (target wrote %d bytes)", n)
		}
		last = n
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("stalled stream holds %s written by the target and not read", proctest.MiB(written.Load()))

	reportMemory(t, agent, exit)
	during := download()
	t.Logf("%d MB download: %v before the stall, %v during it", size>>20, baseline.Round(time.Millisecond), during.Round(time.Millisecond))
	if limit := 5*baseline + 2*time.Second; during > limit {
		t.Errorf("download took %v while another stream was stalled, want < %v (5× the %v baseline + 2s)", during, limit, baseline)
	}

	got := newHashWriter()
	if _, err := io.Copy(got, stalled); err != nil {
		t.Fatalf("read the stalled stream: %v", err)
	}
	if got.n.Load() != stallSize || got.sum() != payloadSum(stallSeed, stallSize) {
		t.Fatalf("stalled stream delivered %d bytes (want %d) or wrong bytes", got.n.Load(), stallSize)
	}
}

// stalledPathBound is the most a stream whose reader never reads can hold
// on its way through the agent and the exit: four TCP buffers (the target's
// send and the exit's receive buffer, the agent's send and the reader's
// receive buffer), each of which the kernel may autotune up to the host's
// limit, and between them the tunnel stream's largest window (4 × the 4 MiB
// default; see tunnel.Config.MaxStreamWindow). Hosts differ: a tcp_rmem
// limit of 32 MiB is common, so no fixed size serves everywhere.
func stalledPathBound(t *testing.T) int64 {
	t.Helper()
	limit := func(name string) int64 {
		b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
		if err != nil {
			t.Fatalf("read the TCP buffer limits: %v", err)
		}
		f := strings.Fields(string(b)) // min default max
		if len(f) != 3 {
			t.Fatalf("%s: %q, want three numbers", name, b)
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return n
	}
	const maxStreamWindow = 16 << 20
	return 2*(limit("tcp_rmem")+limit("tcp_wmem")) + maxStreamWindow
}
