package bench

import (
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// sizes are the scenario sizes: full for the benchmarks, tiny for the
// smoke test.
type sizes struct {
	bulkRounds   int           // alternating baseline/tunnel rounds in Bulk and Bulk8; medians are reported
	bulkBytes    int64         // one stream's download in Bulk
	bulk8Bytes   int64         // each of the 8 streams' download in Bulk8
	smallConns   int           // keep-alive connections in SmallRequests
	smallFor     time.Duration // how long SmallRequests issues requests per mode
	setupRounds  int           // sequential rounds in Setup
	idleTunnels  int           // tunnels held open in Memory
	memorySettle time.Duration // pause before reading RSS
}

var full = sizes{
	bulkRounds:   3,
	bulkBytes:    1 << 30,
	bulk8Bytes:   128 << 20,
	smallConns:   64,
	smallFor:     10 * time.Second,
	setupRounds:  2000,
	idleTunnels:  2000,
	memorySettle: time.Second,
}

var tiny = sizes{
	bulkRounds:   1,
	bulkBytes:    8 << 20,
	bulk8Bytes:   1 << 20,
	smallConns:   4,
	smallFor:     200 * time.Millisecond,
	setupRounds:  20,
	idleTunnels:  20,
	memorySettle: 0,
}

const gib = 1 << 30

// metrics accumulates figures over b.N iterations and reports their mean.
type metrics struct {
	order []string
	sum   map[string]float64
	n     int
}

func (m *metrics) add(unit string, v float64) {
	if m.sum == nil {
		m.sum = map[string]float64{}
	}
	if _, ok := m.sum[unit]; !ok {
		m.order = append(m.order, unit)
	}
	m.sum[unit] += v
}

func (m *metrics) mean(unit string) float64 { return m.sum[unit] / float64(max(m.n, 1)) }

func (m *metrics) report(b *testing.B) {
	for _, unit := range m.order {
		b.ReportMetric(m.mean(unit), unit)
	}
}

// bulkFigures is what one Bulk run measured: the medians of its rounds.
type bulkFigures struct {
	rawTLS, tunnel float64 // MiB/s
	ratio          float64 // the median of the rounds' tunnel/raw ratios
	tunnelBytes    int64   // bytes moved through the tunnel, all rounds
	agentCPU       float64 // agent CPU seconds per GiB through the tunnel
	exitCPU        float64
}

// runBulk alternates one raw TLS 1.3 stream between two processes with one
// CONNECT stream through agent and exit, and reads the CPU time the agent
// and the exit spend on the tunnelled transfers.
func runBulk(tb testing.TB, sz sizes) bulkFigures {
	s := newStack(tb)
	n := strconv.FormatInt(sz.bulkBytes, 10)
	var (
		f                 bulkFigures
		raw, tun, ratios  []float64
		agentCPU, exitCPU float64
	)
	for range sz.bulkRounds {
		var r, t bulkResult
		runClient(tb, &r, "client-bulk", "-mode", "tls", "-addr", s.origin.TLS, "-n", n)
		a0, e0 := cpuSeconds(tb, s.agent.pid()), cpuSeconds(tb, s.exit.pid())
		runClient(tb, &t, "client-bulk", "-mode", "connect", "-proxy", s.agentAddr, "-addr", s.origin.Source, "-n", n)
		agentCPU += cpuSeconds(tb, s.agent.pid()) - a0
		exitCPU += cpuSeconds(tb, s.exit.pid()) - e0
		f.tunnelBytes += t.Bytes
		raw, tun, ratios = append(raw, r.mibps()), append(tun, t.mibps()), append(ratios, t.mibps()/r.mibps())
	}
	f.rawTLS, f.tunnel, f.ratio = median(raw), median(tun), median(ratios)
	f.agentCPU = agentCPU / (float64(f.tunnelBytes) / gib)
	f.exitCPU = exitCPU / (float64(f.tunnelBytes) / gib)
	return f
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// BenchmarkBulk is one CONNECT stream downloading 1 GiB through agent and
// exit against one raw TLS 1.3 stream between two processes, and the CPU
// the agent and the exit spend per GiB.
func BenchmarkBulk(b *testing.B) {
	var m metrics
	for range b.N {
		f := runBulk(b, full)
		m.n++
		m.add("MiB/s-raw-tls", f.rawTLS)
		m.add("MiB/s-tunnel", f.tunnel)
		m.add("ratio", f.ratio)
		m.add("cpu-s/GiB", f.agentCPU+f.exitCPU)
		m.add("cpu-s/GiB-agent", f.agentCPU)
		m.add("cpu-s/GiB-exit", f.exitCPU)
	}
	m.report(b)
	ratio, cpu := m.mean("ratio"), m.mean("cpu-s/GiB")
	b.Logf("bulk: tunnel %.0f MiB/s, raw TLS %.0f MiB/s: ratio %.2f (target >= 0.5, aim 0.6: %s)",
		m.mean("MiB/s-tunnel"), m.mean("MiB/s-raw-tls"), ratio, verdict(ratio >= 0.5))
	b.Logf("cpu: agent %.2f + exit %.2f = %.2f CPU s/GiB (target < 3.0, aim 2.6: %s)",
		m.mean("cpu-s/GiB-agent"), m.mean("cpu-s/GiB-exit"), cpu, verdict(cpu < 3.0))
}

// bulk8Figures is what one Bulk8 run measured: the medians of its rounds.
type bulk8Figures struct {
	rawTLS1, rawTLS8, tunnel8 float64 // MiB/s
	ratio, ratio8             float64 // tunnel8 over rawTLS1 and over rawTLS8
	tunnelBytes               int64   // bytes moved through the tunnel in the last round
}

func runBulk8(tb testing.TB, sz sizes) bulk8Figures {
	s := newStack(tb)
	n1, n8 := strconv.FormatInt(sz.bulkBytes, 10), strconv.FormatInt(sz.bulk8Bytes, 10)
	var f bulk8Figures
	var raw1, raw8, tun8, ratios, ratios8 []float64
	for range sz.bulkRounds {
		var r1, r8, t8 bulkResult
		runClient(tb, &r1, "client-bulk", "-mode", "tls", "-addr", s.origin.TLS, "-n", n1)
		runClient(tb, &r8, "client-bulk", "-mode", "tls", "-addr", s.origin.TLS, "-n", n8, "-streams", "8")
		runClient(tb, &t8, "client-bulk", "-mode", "connect", "-proxy", s.agentAddr, "-addr", s.origin.Source, "-n", n8, "-streams", "8")
		raw1, raw8, tun8 = append(raw1, r1.mibps()), append(raw8, r8.mibps()), append(tun8, t8.mibps())
		ratios, ratios8 = append(ratios, t8.mibps()/r1.mibps()), append(ratios8, t8.mibps()/r8.mibps())
		f.tunnelBytes = t8.Bytes
	}
	f.rawTLS1, f.rawTLS8, f.tunnel8 = median(raw1), median(raw8), median(tun8)
	f.ratio, f.ratio8 = median(ratios), median(ratios8)
	return f
}

// BenchmarkBulk8 is 8 parallel CONNECT streams (1 GiB in all) against one
// raw TLS 1.3 stream, the figure the target is stated against, and 8
// parallel raw TLS streams for scale.
func BenchmarkBulk8(b *testing.B) {
	var m metrics
	for range b.N {
		f := runBulk8(b, full)
		m.n++
		m.add("MiB/s-raw-tls", f.rawTLS1)
		m.add("MiB/s-raw-tls-8", f.rawTLS8)
		m.add("MiB/s-tunnel-8", f.tunnel8)
		m.add("ratio", f.ratio)
		m.add("ratio-vs-raw-tls-8", f.ratio8)
	}
	m.report(b)
	ratio := m.mean("ratio")
	b.Logf("bulk8: tunnel 8 streams %.0f MiB/s, raw TLS 1 stream %.0f MiB/s: ratio %.2f (target >= 0.5: %s); raw TLS 8 streams %.0f MiB/s, ratio %.2f",
		m.mean("MiB/s-tunnel-8"), m.mean("MiB/s-raw-tls"), ratio, verdict(ratio >= 0.5),
		m.mean("MiB/s-raw-tls-8"), m.mean("ratio-vs-raw-tls-8"))
}

// smallFigures is what one SmallRequests run measured.
type smallFigures struct {
	direct, tunnel, proxy latencyResult
}

func runSmall(tb testing.TB, sz sizes) smallFigures {
	s := newStack(tb)
	args := func(mode string) []string {
		return []string{"client-small", "-mode", mode, "-origin", s.origin.HTTP, "-proxy", s.agentAddr,
			"-conns", strconv.Itoa(sz.smallConns), "-duration", sz.smallFor.String()}
	}
	var f smallFigures
	runClient(tb, &f.direct, args("direct")...)
	runClient(tb, &f.tunnel, args("connect")...)
	runClient(tb, &f.proxy, args("proxy")...)
	return f
}

// BenchmarkSmallRequests is 64 keep-alive CONNECT tunnels issuing small
// GETs for 10s against 64 keep-alive connections straight to the origin,
// and the same GETs as absolute-URI requests to the agent (plain HTTP
// proxying, keep-alive).
func BenchmarkSmallRequests(b *testing.B) {
	var m metrics
	for range b.N {
		f := runSmall(b, full)
		m.n++
		m.add("req/s-direct", f.direct.PerSec)
		m.add("req/s-tunnel", f.tunnel.PerSec)
		m.add("ratio", f.tunnel.PerSec/f.direct.PerSec)
		m.add("p50-ms-tunnel", f.tunnel.P50ms)
		m.add("p99-ms-tunnel", f.tunnel.P99ms)
		m.add("p99-ms-direct", f.direct.P99ms)
		m.add("req/s-proxy", f.proxy.PerSec)
		m.add("ratio-proxy", f.proxy.PerSec/f.direct.PerSec)
		m.add("p99-ms-proxy", f.proxy.P99ms)
	}
	m.report(b)
	ratio, p99 := m.mean("ratio"), m.mean("p99-ms-tunnel")
	b.Logf("small: tunnel %.0f req/s, direct %.0f req/s: ratio %.2f (target >= 0.45, aim 0.5: %s); tunnel p99 %.2f ms (target < 10 ms: %s)",
		m.mean("req/s-tunnel"), m.mean("req/s-direct"), ratio, verdict(ratio >= 0.45), p99, verdict(p99 < 10))
	b.Logf("small: plain HTTP proxying %.0f req/s: ratio %.2f, p99 %.2f ms",
		m.mean("req/s-proxy"), m.mean("ratio-proxy"), m.mean("p99-ms-proxy"))
}

// setupFigures is what one Setup run measured.
type setupFigures struct {
	direct, tunnel latencyResult
}

func runSetup(tb testing.TB, sz sizes) setupFigures {
	s := newStack(tb)
	args := func(mode string) []string {
		return []string{"client-setup", "-mode", mode, "-origin", s.origin.HTTP, "-proxy", s.agentAddr,
			"-n", strconv.Itoa(sz.setupRounds)}
	}
	var f setupFigures
	runClient(tb, &f.direct, args("direct")...)
	runClient(tb, &f.tunnel, args("connect")...)
	return f
}

// BenchmarkSetup is a new CONNECT tunnel plus one small GET, 2000 times in
// sequence, against a new direct connection plus the same GET.
func BenchmarkSetup(b *testing.B) {
	var m metrics
	for range b.N {
		f := runSetup(b, full)
		m.n++
		m.add("p50-ms-tunnel", f.tunnel.P50ms)
		m.add("p99-ms-tunnel", f.tunnel.P99ms)
		m.add("p50-ms-direct", f.direct.P50ms)
		m.add("p99-ms-direct", f.direct.P99ms)
	}
	m.report(b)
	p50 := m.mean("p50-ms-tunnel")
	b.Logf("setup: tunnel p50 %.3f ms, p99 %.3f ms (target p50 < 1 ms, aim 0.5 ms: %s); direct p50 %.3f ms, p99 %.3f ms",
		p50, m.mean("p99-ms-tunnel"), verdict(p50 < 1), m.mean("p50-ms-direct"), m.mean("p99-ms-direct"))
}

// memoryFigures is what one Memory run measured, in KiB per tunnel.
type memoryFigures struct {
	open                int // tunnels held when RSS was read
	agent, exit, origin float64
}

func runMemory(tb testing.TB, sz sizes) memoryFigures {
	s := newStack(tb)
	_, tool := build(tb)
	time.Sleep(sz.memorySettle)
	a0, e0, o0 := rssKB(tb, s.agent.pid()), rssKB(tb, s.exit.pid()), rssKB(tb, s.originProc.pid())
	idle := startProc(tb, "client-idle", true, tool, "client-idle",
		"-proxy", s.agentAddr, "-target", s.origin.Hold, "-n", strconv.Itoa(sz.idleTunnels))
	var r struct{ Open int }
	idle.readJSON(tb, &r)
	time.Sleep(sz.memorySettle)
	a1, e1, o1 := rssKB(tb, s.agent.pid()), rssKB(tb, s.exit.pid()), rssKB(tb, s.originProc.pid())
	idle.stop()
	n := float64(r.Open)
	return memoryFigures{open: r.Open, agent: (a1 - a0) / n, exit: (e1 - e0) / n, origin: (o1 - o0) / n}
}

// BenchmarkMemory is the growth of the agent's and the exit's resident
// memory when 2000 idle CONNECT tunnels are opened on fresh processes.
// The origin, which holds the other end of each tunnel with one goroutine
// per connection, is reported for scale.
func BenchmarkMemory(b *testing.B) {
	var m metrics
	for range b.N {
		f := runMemory(b, full)
		m.n++
		m.add("KB/tunnel-agent", f.agent)
		m.add("KB/tunnel-exit", f.exit)
		m.add("KB/conn-origin", f.origin)
	}
	m.report(b)
	a, e := m.mean("KB/tunnel-agent"), m.mean("KB/tunnel-exit")
	b.Logf("memory: %d idle tunnels: agent %.1f KB, exit %.1f KB per tunnel (target < 20 KB each: %s); origin %.1f KB per connection",
		full.idleTunnels, a, e, verdict(a < 20 && e < 20), m.mean("KB/conn-origin"))
}

// TestSmoke runs every scenario with tiny sizes, to check the harness
// itself. It builds the binaries and starts processes, so it runs only
// when BENCH_SMOKE is set.
func TestSmoke(t *testing.T) {
	if os.Getenv("BENCH_SMOKE") == "" {
		t.Skip("set BENCH_SMOKE=1 to start the processes of the benchmarks with tiny sizes")
	}
	t.Run("WAN: first byte through every path", func(t *testing.T) {
		f := runWANFirstByte(t, 20*time.Millisecond, wanTiny)
		for _, name := range []string{"rtts-direct", "rtts-connect", "rtts-socks", "rtts-connect-nofast"} {
			if f.v[name] < 1 {
				t.Errorf("%s: %.2f round trips, fewer than the one any new connection needs", name, f.v[name])
			}
		}
		t.Logf("%v", f.v)
	})
	t.Run("WAN: page load through every path", func(t *testing.T) {
		f := runWANPageLoad(t, 20*time.Millisecond, wanTiny)
		t.Logf("%v", f.v)
	})
	t.Run("WAN: page load over a lossy path, one link and pools", func(t *testing.T) {
		f := runWANLossyPageLoad(t, 20*time.Millisecond, true, wanTiny)
		t.Logf("%v", f.v)
	})
	t.Run("WAN: bulk through every path", func(t *testing.T) {
		f := runWANBulk(t, 20*time.Millisecond, 50, wanTiny)
		if f.v["of-limit"] > 1.05 || f.v["of-limit-direct"] > 1.05 {
			t.Errorf("faster than the path's limit: tunnel %.2f, direct %.2f of it", f.v["of-limit"], f.v["of-limit-direct"])
		}
		t.Logf("%v", f.v)
	})
	t.Run("bulk moves every byte", func(t *testing.T) {
		f := runBulk(t, tiny)
		if want := int64(tiny.bulkRounds) * tiny.bulkBytes; f.tunnelBytes != want {
			t.Errorf("moved %d bytes through the tunnel, want %d", f.tunnelBytes, want)
		}
	})
	t.Run("bulk8 moves every byte", func(t *testing.T) {
		f := runBulk8(t, tiny)
		if want := 8 * tiny.bulk8Bytes; f.tunnelBytes != want {
			t.Errorf("moved %d bytes through the tunnel, want %d", f.tunnelBytes, want)
		}
	})
	t.Run("small requests complete in every mode", func(t *testing.T) {
		f := runSmall(t, tiny)
		for name, r := range map[string]latencyResult{"direct": f.direct, "tunnel": f.tunnel, "proxy": f.proxy} {
			if r.Requests == 0 {
				t.Errorf("%s: no requests completed", name)
			}
		}
	})
	t.Run("setup completes every round", func(t *testing.T) {
		f := runSetup(t, tiny)
		if f.direct.Requests != tiny.setupRounds || f.tunnel.Requests != tiny.setupRounds {
			t.Errorf("rounds: direct %d, tunnel %d, want %d", f.direct.Requests, f.tunnel.Requests, tiny.setupRounds)
		}
	})
	t.Run("setup with IAM completes every round on one STS call", func(t *testing.T) {
		f := runSetupIAM(t, tiny)
		if want := 3 * (tiny.setupRounds / 2); f.rounds != want {
			t.Errorf("rounds with IAM: %d, want %d", f.rounds, want)
		}
		if f.stsCalls != 1 {
			t.Errorf("STS calls: %d, want 1 (the token is verified once, then cached)", f.stsCalls)
		}
	})
	t.Run("memory holds every tunnel", func(t *testing.T) {
		f := runMemory(t, tiny)
		if f.open != tiny.idleTunnels {
			t.Errorf("%d tunnels open, want %d", f.open, tiny.idleTunnels)
		}
	})
}
