package faults

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// startHolder runs the hold helper (see runHelper) and returns its address.
// It ends when the test does.
func startHolder(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(proctest.Env(), helperEnv+"=hold")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the holding target: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("the holding target did not print its address: %v", err)
	}
	go io.Copy(io.Discard, stdout)
	return strings.TrimSpace(line)
}

// Test10000Streams opens 10,000 CONNECT tunnels through one agent, over one
// link, to a target that holds them; it reports what each costs the agent
// and the exit in resident memory, and checks that once the clients close
// them, both processes let go of every connection.
func Test10000Streams(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 10,000 connections; skipped with -short")
	}
	needProcesses(t)
	streams := 10000
	// The test process holds the client end of every stream (the holder
	// process holds the target ends); the agent and the exit hold one
	// connection per stream each. Leave room for the rest.
	if fit := int(openFilesLimit) - 300; fit < streams {
		if fit < 1000 {
			t.Skipf("open-files limit %d is too low for this test", openFilesLimit)
		}
		t.Logf("open-files limit %d: scaling down to %d streams", openFilesLimit, fit)
		streams = fit
	}
	hold := startHolder(t)
	certs := proctest.CertsInit(t)
	// "--log-level info" comes after the harness's debug level and wins.
	exit, exitAddr := procs.StartExit(t, certs, "--max-streams", "12000", "--log-level", "info")
	agentArgs := []string{"--log-level", "info"}
	if proctest.HasFlag("agent", "max-connections") {
		agentArgs = append(agentArgs, "--max-connections", "12000")
	}
	agent, proxy := procs.StartAgent(t, certs, exitAddr, agentArgs...)
	proctest.WaitLinkUp(t, agent, 1, 10*time.Second)
	c, err := dialConnect(proxy, hold, 5*time.Second)
	if err != nil {
		t.Fatalf("no tunnel through the agent: %v", err)
	}
	c.Close()
	time.Sleep(500 * time.Millisecond)
	a0, e0 := agent.RSS(t), exit.RSS(t)
	af0, ef0 := agent.OpenFiles(t), exit.OpenFiles(t)
	g0, haveAdmin := agent.Goroutines(t)
	eg0, ok := exit.Goroutines(t)
	if !ok {
		eg0 = -1
	}

	conns := make([]net.Conn, streams)
	var closeOnce sync.Once
	closeAll := func() {
		closeOnce.Do(func() {
			for _, c := range conns {
				if c != nil {
					c.Close()
				}
			}
		})
	}
	t.Cleanup(closeAll)
	start := time.Now()
	var (
		next   atomic.Int64
		failed atomic.Int64
		first  atomic.Value
		wg     sync.WaitGroup
	)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= streams || failed.Load() > 0 {
					return
				}
				c, err := dialConnect(proxy, hold, 30*time.Second)
				if err != nil {
					failed.Add(1)
					first.CompareAndSwap(nil, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("opening %d tunnels: %v", streams, first.Load())
	}
	opened := time.Since(start)
	time.Sleep(time.Second)
	a1, e1 := agent.RSS(t), exit.RSS(t)
	af1, ef1 := agent.OpenFiles(t), exit.OpenFiles(t)
	// The agent holds each client's connection, the exit each target's;
	// the streams themselves share the one link.
	if af1-af0 < streams || ef1-ef0 < streams {
		t.Errorf("open files with %d tunnels: agent %d → %d, exit %d → %d: not every tunnel is open end to end", streams, af0, af1, ef0, ef1)
	}
	perAgent := float64(a1-a0) / float64(streams) / 1024
	perExit := float64(e1-e0) / float64(streams) / 1024
	t.Logf("%d idle tunnels on one link, opened in %v: agent RSS %s → %s (%.1f KB per tunnel), exit RSS %s → %s (%.1f KB per tunnel)",
		streams, opened.Round(time.Millisecond), proctest.MiB(a0), proctest.MiB(a1), perAgent, proctest.MiB(e0), proctest.MiB(e1), perExit)
	if haveAdmin {
		g1, _ := agent.Goroutines(t)
		t.Logf("agent goroutines: %d → %d (%.1f per tunnel)", g0, g1, float64(g1-g0)/float64(streams))
	}
	if eg0 >= 0 {
		eg1, _ := exit.Goroutines(t)
		t.Logf("exit goroutines: %d → %d (%.1f per tunnel)", eg0, eg1, float64(eg1-eg0)/float64(streams))
	}
	// The tunnel's memory target is under 20 KB per idle tunnel per side;
	// RSS also counts the kernel's view of freed pages, so allow some slack.
	const limitKB = 24
	if perAgent > limitKB || perExit > limitKB {
		t.Errorf("memory per idle tunnel: agent %.1f KB, exit %.1f KB; want each under 20 KB (tolerance %d KB)", perAgent, perExit, limitKB)
	}

	closeAll()
	deadline := time.Now().Add(15 * time.Second)
	var af2, ef2 int
	for {
		af2, ef2 = agent.OpenFiles(t), exit.OpenFiles(t)
		if (af2 <= af0+10 && ef2 <= ef0+10) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("open files after closing: agent %d (was %d), exit %d (was %d)", af2, af0, ef2, ef0)
	if af2 > af0+10 || ef2 > ef0+10 {
		t.Errorf("15s after the clients closed %d tunnels, the agent holds %d files (%d before) and the exit %d (%d before)",
			streams, af2, af0, ef2, ef0)
	}
	if !haveAdmin {
		t.Skip("goroutine check skipped: this fluidity has no 'agent --admin' listener to read go_goroutines from")
	}
	g2 := goroutinesDownTo(t, agent, g0+20, deadline)
	if g2 > g0+20 {
		t.Errorf("agent goroutines after closing %d tunnels: %d, %d before", streams, g2, g0)
	}
}
