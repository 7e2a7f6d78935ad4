package e2e

import (
	"testing"
	"time"

	"fluidity/internal/proctest"
)

// linkWithin is how long an agent may take to bring its link up.
const linkWithin = 15 * time.Second

// tunnelPair is an exit and an agent connected to it.
type tunnelPair struct {
	certs     string
	exit      *proctest.Proc
	exitAddr  string
	agent     *proctest.Proc
	agentAddr string
}

// startPair starts an exit with exitExtra as extra flags (--allow-private
// if none are given) and an agent, and waits until the link is up.
func startPair(t *testing.T, exitExtra ...string) *tunnelPair {
	t.Helper()
	if exitExtra == nil {
		exitExtra = []string{"--allow-private"}
	}
	tp := &tunnelPair{certs: proctest.CertsInit(t)}
	tp.exit, tp.exitAddr = proctest.StartExit(t, tp.certs, exitExtra...)
	tp.agent, tp.agentAddr = proctest.StartAgent(t, tp.certs, tp.exitAddr)
	proctest.WaitLinkUp(t, tp.agent, 1, linkWithin)
	return tp
}

// reportMemory logs the memory figures of the processes and returns the
// peaks by process name.
func reportMemory(t *testing.T, ps ...*proctest.Proc) map[string]int64 {
	t.Helper()
	peaks := map[string]int64{}
	for _, p := range ps {
		rss, hwm := p.RSS(t), p.HWM(t)
		t.Logf("%s memory: VmRSS %s, VmHWM (peak) %s", p.Name(), proctest.MiB(rss), proctest.MiB(hwm))
		peaks[p.Name()] = hwm
	}
	return peaks
}
