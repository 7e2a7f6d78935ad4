package faults

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"fluidity/internal/proctest"
)

// Issue 2: a client that floods PING and SETTINGS frames and never reads
// what they provoke is cut off (GOAWAY ENHANCE_YOUR_CALM, as x/net's server
// does past 10,000 queued control frames), and the exit's memory stays
// flat; other clients are served meanwhile.
func TestControlFrameFloodIsCut(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.Launcher{Admin: true}.StartExit(t, certs, "--allow-private")
	_, agentAddr := proctest.StartAgent(t, certs, exitAddr)
	echo := newEcho(t)
	before := settledRSS(t, exit)

	p := dialH2(t, exitAddr, certs)
	start := time.Now()
	var data [8]byte
	cut := false
	for time.Since(start) < 6*time.Second {
		p.tc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		err := p.fr.WritePing(false, data)
		if err == nil && data[0] == 0 {
			err = p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 16384})
		}
		data[0]++
		if err != nil {
			if isTimeout(err) {
				continue // the exit reads no more: keep trying until it hangs up
			}
			cut = true
			break
		}
	}
	t.Logf("flooding for %v; cut: %v", time.Since(start).Round(time.Millisecond), cut)
	if !cut {
		t.Error("the exit kept the connection of a peer that floods PING and SETTINGS and never reads")
	}
	if grew := exit.RSS(t) - before; grew > 64<<20 {
		t.Errorf("the exit's memory grew by %s under the flood", proctest.MiB(grew))
	}
	c, err := dialConnect(agentAddr, echo.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echoRoundTrip(c, "still served\n", 5*time.Second); err != nil {
		t.Fatalf("a client beside the flood: %v", err)
	}
}

// Issue 3: rapid reset (CVE-2023-44487). HEADERS and RST_STREAM pairs at
// full speed, each for a target whose dial hangs: a stream counts against
// the limit until its handler has returned, its dial stops at once when it
// is reset, and the connection is sent GOAWAY ENHANCE_YOUR_CALM. The exit's
// goroutines stay bounded, a client beside it is served without delay, and
// every stream is released.
func TestRapidResetIsCut(t *testing.T) {
	needProcesses(t)
	certs := proctest.CertsInit(t)
	exit, exitAddr := proctest.Launcher{Admin: true}.StartExit(t, certs, "--allow-private", "--max-streams", "100")
	_, agentAddr := proctest.StartAgent(t, certs, exitAddr)
	echo := newEcho(t)
	hole := synHole(t)
	baseG, _ := exit.Goroutines(t)

	// A client beside the attack measures its round trips.
	stop := make(chan struct{})
	var (
		wg       sync.WaitGroup
		slowest  time.Duration
		legitN   int
		legitErr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := dialConnect(agentAddr, echo.Addr(), 5*time.Second)
		if err != nil {
			legitErr = err
			return
		}
		defer c.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if err := echoRoundTrip(c, "beside the attack\n", 5*time.Second); err != nil {
				legitErr = err
				return
			}
			slowest = max(slowest, time.Since(t0))
			legitN++
			time.Sleep(10 * time.Millisecond)
		}
	}()

	p := dialH2(t, exitAddr, certs)
	goAway := make(chan *http2.GoAwayFrame, 1)
	go func() {
		ga, _ := p.goAwayOrEnd(15 * time.Second)
		goAway <- ga
	}()
	var peakG, pairs int
	start := time.Now()
	for time.Since(start) < 8*time.Second {
		p.tc.SetWriteDeadline(time.Now().Add(time.Second))
		id, err := p.connect(hole, false)
		if err == nil {
			err = p.fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
		if err != nil {
			break
		}
		pairs++
		if pairs%500 == 0 {
			if g, _ := exit.Goroutines(t); g > peakG {
				peakG = g
			}
			select {
			case ga := <-goAway:
				goAway <- ga
				goto cut
			default:
			}
		}
	}
cut:
	ga := <-goAway
	close(stop)
	wg.Wait()
	t.Logf("%d HEADERS+RST_STREAM pairs in %v; peak %d goroutines (%d before); a client beside it made %d round trips, the slowest %v",
		pairs, time.Since(start).Round(time.Millisecond), peakG, baseG, legitN, slowest.Round(time.Microsecond))
	if ga == nil || ga.ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("the attacker got %v, want GOAWAY ENHANCE_YOUR_CALM", ga)
	}
	if peakG > baseG+300 {
		t.Errorf("the exit ran %d goroutines under the attack (%d before): streams were not bounded by the limit of 100", peakG, baseG)
	}
	if legitErr != nil {
		t.Errorf("a client beside the attack: %v", legitErr)
	}
	if slowest > time.Second {
		t.Errorf("a round trip beside the attack took %v", slowest)
	}
	waitMetric(t, exit, "fluidity_exit_streams_open", 0, 5*time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for {
		g, _ := exit.Goroutines(t)
		if g <= baseG+20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines 5s after the attack, %d before", g, baseG)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
