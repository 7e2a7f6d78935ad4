package e2e

import (
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// TestRepeatedWarningsAreSummarised has one client open 500 streams to a
// closed port over one HTTP/2 link: the exit writes the first failure in
// full and counts the rest, writing the count when the window ends (here:
// when it stops). Streams that end normally still get one line each.
func TestRepeatedWarningsAreSummarised(t *testing.T) {
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.StartExit(t, certs, "--allow-private")
	origin := newOrigin(t)
	closed := proctest.FreeAddr(t)

	const n = 500
	tr := h2ToExit(t, certs, exitAddr)
	codes := make([]int, n)
	// The first alone, so that the rest share its connection.
	codes[0], _ = connectStatus(tr, exitAddr, closed, "")
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		wg.Go(func() { codes[i], _ = connectStatus(tr, exitAddr, closed, "") })
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusBadGateway {
			t.Fatalf("stream %d to a closed port: %d; want 502", i, code)
		}
	}

	const normal = 10
	for range normal {
		mustCurl(t, curlOpts{}, directCurlArgs(certs, exitAddr, "", "-p", origin.URL+"/hello")...)
	}
	target := strings.TrimPrefix(origin.URL, "http://")
	if !exit.WaitLog("target="+target, normal, 5*time.Second) {
		t.Fatalf("%d streams that ended normally logged %d lines; want one each", normal, exit.LogCount("target="+target))
	}

	failures := func() (full, summaries int) {
		for line := range strings.Lines(exit.Stderr()) {
			if !strings.Contains(line, "msg=stream") || !strings.Contains(line, "reason=refused") {
				continue
			}
			if strings.Contains(line, "repeated=") {
				summaries++
			} else {
				full++
			}
		}
		return full, summaries
	}
	if full, _ := failures(); full != 1 {
		t.Fatalf("%d failed streams of one client wrote %d full lines; want 1, the rest counted", n, full)
	}

	exit.Signal(t, syscall.SIGTERM)
	if code := exit.WaitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("the exit ended with status %d", code)
	}
	line := lastLine(exit.Stderr(), "repeated=")
	t.Logf("summary: %s", line)
	if full, summaries := failures(); full != 1 || summaries != 1 || !strings.Contains(line, "repeated=499") ||
		!strings.Contains(line, "client=fluidity-client") || !strings.Contains(line, "reason=refused") {
		t.Fatalf("after the exit stopped: %d full lines and %d summaries, the last %q; want 1 and 1, saying repeated=499 for client fluidity-client", full, summaries, line)
	}
}

// lastLine is the last line of log that holds s, or "".
func lastLine(log, s string) string {
	var last string
	for line := range strings.Lines(log) {
		if strings.Contains(line, s) {
			last = strings.TrimSpace(line)
		}
	}
	return last
}
