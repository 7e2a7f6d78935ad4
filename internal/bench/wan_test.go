package bench

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"fluidity/internal/wanemu"
)

// The WAN benchmarks put an emulated long path (package wanemu, a relay in
// the benchmark's process) between the agent and the exit, and an
// identical one between a direct client and the origin:
//
//	client ─▶ agent ─▶ [relay] ─▶ exit ─▶ origin      (through fluidity)
//	client ─▶ [relay] ─▶ origin                       (direct, the baseline)
//	client ─▶ ssh -D ─▶ [relay] ─▶ sshd ─▶ origin     (when sshd is installed)
//
// Latencies are counted in round trips of the relay.

// wanPaths are the round trips the WAN benchmarks run at.
var wanPaths = []time.Duration{40 * time.Millisecond, 150 * time.Millisecond}

// wanSizes are the WAN benchmarks' sizes.
type wanSizes struct {
	ttfbRounds int           // sequential new HTTPS connections per mode
	pageLoads  int           // page loads per mode
	lossyLoads int           // page loads per mode over a lossy path
	bulkFor    time.Duration // about how long each bulk transfer takes at the relay's rate
}

var wanFull = wanSizes{ttfbRounds: 10, pageLoads: 3, lossyLoads: 21, bulkFor: 6 * time.Second}
var wanTiny = wanSizes{ttfbRounds: 2, pageLoads: 1, lossyLoads: 1, bulkFor: 300 * time.Millisecond}

// newRelay starts a relay to target for the benchmark's lifetime.
func newRelay(tb testing.TB, target string, cfg wanemu.Config) *wanemu.Relay {
	tb.Helper()
	r, err := wanemu.New(target, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// wanStack is a stack whose agent reaches its exit through a relay, with
// the same path to the origin for the direct baseline.
type wanStack struct {
	*stack
	link        *wanemu.Relay // agent → exit
	directTLS   *wanemu.Relay // client → the origin's TLS source
	directHTTPS *wanemu.Relay // client → the origin's HTTPS server
	opts        stackOptions
}

func newWANStack(tb testing.TB, cfg wanemu.Config, agentArgs ...string) *wanStack {
	tb.Helper()
	w := &wanStack{}
	w.opts = stackOptions{agentArgs: agentArgs, relay: func(exit string) string {
		w.link = newRelay(tb, exit, cfg)
		return w.link.Addr()
	}, originArgs: func(o originAddrs) []string {
		// The origin's TLS ports stand for 443: clients speak first there.
		return []string{"--fast-open-ports", port(o.TLS) + "," + port(o.HTTPS)}
	}}
	w.stack = newStackWith(tb, w.opts)
	w.directTLS = newRelay(tb, w.origin.TLS, cfg)
	w.directHTTPS = newRelay(tb, w.origin.HTTPS, cfg)
	return w
}

// ttfb runs client-ttfb in mode and returns its p50 in round trips of rtt.
func (w *wanStack) ttfb(tb testing.TB, rounds int, rtt time.Duration, mode, proxy string) float64 {
	var r latencyResult
	runClient(tb, &r, "client-ttfb", "-mode", mode, "-addr", w.directTLS.Addr(), "-proxy", proxy,
		"-target", w.origin.TLS, "-n", strconv.Itoa(rounds))
	return r.P50ms / float64(rtt.Milliseconds())
}

type pageResult struct {
	Loads int     `json:"loads"`
	P50ms float64 `json:"p50_ms"`
	Bytes int64   `json:"bytes"`
}

func (w *wanStack) page(tb testing.TB, loads int, rtt time.Duration, mode, proxy string) float64 {
	var r pageResult
	runClient(tb, &r, "client-page", "-mode", mode, "-addr", w.directHTTPS.Addr(), "-proxy", proxy,
		"-target", w.origin.HTTPS, "-n", strconv.Itoa(loads))
	return r.P50ms / float64(rtt.Milliseconds())
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func rttName(rtt time.Duration) string { return fmt.Sprintf("rtt=%v", rtt) }

// figures are one WAN run's results by metric name, in report order.
type figures struct {
	names []string
	v     map[string]float64
}

func (f *figures) set(name string, v float64) {
	if f.v == nil {
		f.v = map[string]float64{}
	}
	if _, ok := f.v[name]; !ok {
		f.names = append(f.names, name)
	}
	f.v[name] = v
}

func (f *figures) addTo(m *metrics) {
	m.n++
	for _, name := range f.names {
		m.add(name, f.v[name])
	}
}

// BenchmarkWANFirstByte is the time to the first byte of a new HTTPS
// connection (TCP or proxy set-up, TLS 1.3 handshake with the origin, a
// request and its first byte), in round trips of the path: straight to the
// origin through the relay, through fluidity (fast open on, the default,
// and off), and through ssh -D where sshd is installed.
func BenchmarkWANFirstByte(b *testing.B) {
	for _, rtt := range wanPaths {
		b.Run(rttName(rtt), func(b *testing.B) {
			var m metrics
			for range b.N {
				f := runWANFirstByte(b, rtt, wanFull)
				f.addTo(&m)
			}
			m.report(b)
			b.Logf("%v: first byte of a new HTTPS connection, round trips: direct %.2f, fluidity CONNECT %.2f (fast open off: %.2f), SOCKS5 %.2f, ssh -D %.2f; goal: no more than direct: %s",
				rtt, m.mean("rtts-direct"), m.mean("rtts-connect"), m.mean("rtts-connect-nofast"), m.mean("rtts-socks"), m.mean("rtts-ssh"),
				verdict(m.mean("rtts-connect") <= m.mean("rtts-direct")))
		})
	}
}

func runWANFirstByte(tb testing.TB, rtt time.Duration, sz wanSizes) figures {
	cfg := wanemu.Config{Delay: rtt / 2}
	w := newWANStack(tb, cfg)
	slow := newWANStack(tb, cfg, "--fast-open=false")
	ssh := sshProxy(tb, cfg)
	var f figures
	f.set("rtts-direct", w.ttfb(tb, sz.ttfbRounds, rtt, "direct", ""))
	f.set("rtts-connect", w.ttfb(tb, sz.ttfbRounds, rtt, "connect", w.agentAddr))
	f.set("rtts-socks", w.ttfb(tb, sz.ttfbRounds, rtt, "socks", w.agentAddr))
	f.set("rtts-connect-nofast", slow.ttfb(tb, sz.ttfbRounds, rtt, "connect", slow.agentAddr))
	if ssh != "" {
		f.set("rtts-ssh", w.ttfb(tb, sz.ttfbRounds, rtt, "socks", ssh))
	}
	return f
}

// BenchmarkWANPageLoad is a page of 30 objects of 32 KiB over 6 new HTTPS
// connections opened at once (5 objects in sequence on each), in round
// trips of the path.
func BenchmarkWANPageLoad(b *testing.B) {
	for _, rtt := range wanPaths {
		b.Run(rttName(rtt), func(b *testing.B) {
			var m metrics
			for range b.N {
				f := runWANPageLoad(b, rtt, wanFull)
				f.addTo(&m)
			}
			m.report(b)
			b.Logf("%v: page load (30 objects, 6 connections), round trips: direct %.2f, fluidity %.2f, ssh -D %.2f",
				rtt, m.mean("rtts-direct"), m.mean("rtts-connect"), m.mean("rtts-ssh"))
		})
	}
}

func runWANPageLoad(tb testing.TB, rtt time.Duration, sz wanSizes) figures {
	cfg := wanemu.Config{Delay: rtt / 2}
	w := newWANStack(tb, cfg)
	ssh := sshProxy(tb, cfg)
	var f figures
	f.set("rtts-direct", w.page(tb, sz.pageLoads, rtt, "direct", ""))
	f.set("rtts-connect", w.page(tb, sz.pageLoads, rtt, "connect", w.agentAddr))
	if ssh != "" {
		f.set("rtts-ssh", w.page(tb, sz.pageLoads, rtt, "socks", ssh))
	}
	return f
}

// lossyPath is a path of round trip rtt with loss inside TCP at about
// 1.4 %: one byte in 100 kB (a 1448-byte segment in 69) is "lost", and its
// connection, that way, delivers nothing more for 200 ms plus a round trip,
// the retransmission timeout Linux arrives at on a steady path (its 200 ms
// floor plus the smoothed round trip). Every loss is taken to cost a
// timeout, the worst case: a fast retransmit would cost about one round
// trip.
func lossyPath(rtt time.Duration) wanemu.Config {
	return wanemu.Config{Delay: rtt / 2, StallFor: 200*time.Millisecond + rtt, StallBytes: 100e3}
}

// BenchmarkWANLossyPageLoad is WANPageLoad's page over a lossy path (see
// lossyPath), to weigh one link against a pool: straight through the
// relay (6 TCP connections, each stalled on its own), and through agents
// with a pool of 1, 2 and 3 links (--links) to the same exit through the
// relay: one link carries the 6 streams, all held by each of its stalls;
// a pool spreads them over its links. The same without loss (loss=none)
// shows what the pool costs where nothing is lost.
func BenchmarkWANLossyPageLoad(b *testing.B) {
	for _, rtt := range wanPaths {
		for _, lossy := range []bool{true, false} {
			name := rttName(rtt) + "/loss=1.4%"
			if !lossy {
				name = rttName(rtt) + "/loss=none"
			}
			b.Run(name, func(b *testing.B) {
				var m metrics
				for range b.N {
					f := runWANLossyPageLoad(b, rtt, lossy, wanFull)
					f.addTo(&m)
				}
				m.report(b)
				b.Logf("%s: page load (30 objects, 6 connections), median round trips: direct %.2f, one link %.2f, pool of 2 links %.2f, of 3 links %.2f",
					name, m.mean("rtts-direct"), m.mean("rtts-link1"), m.mean("rtts-pool2"), m.mean("rtts-pool3"))
			})
		}
	}
}

func runWANLossyPageLoad(tb testing.TB, rtt time.Duration, lossy bool, sz wanSizes) figures {
	cfg := wanemu.Config{Delay: rtt / 2}
	if lossy {
		cfg = lossyPath(rtt)
	}
	w := newWANStack(tb, cfg, "--links", "1")
	pool := func(n int) string {
		opts := w.opts
		opts.agentArgs = []string{"--links", strconv.Itoa(n)}
		addr, _ := w.startAgent(tb, opts, w.link.Addr())
		return addr
	}
	modes := []struct{ name, mode, proxy string }{
		{"rtts-direct", "direct", ""},
		{"rtts-link1", "connect", w.agentAddr},
		{"rtts-pool2", "connect", pool(2)},
		{"rtts-pool3", "connect", pool(3)},
	}
	// One load of each in turn, so that a slower moment of the machine
	// falls on all of them alike.
	got := make(map[string][]float64)
	for range sz.lossyLoads {
		for _, m := range modes {
			got[m.name] = append(got[m.name], w.page(tb, 1, rtt, m.mode, m.proxy))
		}
	}
	var f figures
	for _, m := range modes {
		v := got[m.name]
		slices.Sort(v)
		f.set(m.name, v[len(v)/2])
		tb.Logf("%v, %s: %.1f", rtt, m.name, v)
	}
	return f
}

// BenchmarkWANBulk is one download through fluidity over a path limited
// to 50 and to 200 Mbit/s, at 40, 150 and 200 ms, against the path's limit and against a direct
// TLS download through the same relay.
func BenchmarkWANBulk(b *testing.B) {
	// 200 ms at 200 Mbit/s needs 5 MB in flight, more than a stream's
	// 4 MiB window: there only a grown window keeps up.
	for _, rtt := range append(wanPaths, 200*time.Millisecond) {
		for _, mbit := range []int64{50, 200} {
			b.Run(fmt.Sprintf("%s/rate=%dMbit", rttName(rtt), mbit), func(b *testing.B) {
				var m metrics
				for range b.N {
					f := runWANBulk(b, rtt, mbit, wanFull)
					f.addTo(&m)
				}
				m.report(b)
				b.Logf("%v, %d Mbit/s: tunnel %.2f of the path's limit (direct TLS %.2f, ssh -D %.2f); goal ≥ 0.90: %s",
					rtt, mbit, m.mean("of-limit"), m.mean("of-limit-direct"), m.mean("of-limit-ssh"), verdict(m.mean("of-limit") >= 0.9))
			})
		}
	}
}

func runWANBulk(tb testing.TB, rtt time.Duration, mbit int64, sz wanSizes) figures {
	rate := mbit * 1e6 / 8
	cfg := wanemu.Config{Delay: rtt / 2, Rate: rate}
	w := newWANStack(tb, cfg)
	ssh := sshProxy(tb, cfg)
	n := strconv.FormatInt(int64(sz.bulkFor.Seconds()*float64(rate)), 10)
	limit := float64(rate) / (1 << 20)
	var d, t bulkResult
	runClient(tb, &d, "client-bulk", "-mode", "tls", "-addr", w.directTLS.Addr(), "-n", n)
	runClient(tb, &t, "client-bulk", "-mode", "connect", "-proxy", w.agentAddr, "-addr", w.origin.Source, "-n", n)
	var f figures
	f.set("MiB/s-limit", limit)
	f.set("MiB/s-direct", d.mibps())
	f.set("MiB/s-tunnel", t.mibps())
	f.set("of-limit", t.mibps()/limit)
	f.set("of-limit-direct", d.mibps()/limit)
	if ssh != "" {
		var s bulkResult
		runClient(tb, &s, "client-bulk", "-mode", "socks", "-proxy", ssh, "-addr", w.origin.Source, "-n", n)
		f.set("MiB/s-ssh", s.mibps())
		f.set("of-limit-ssh", s.mibps()/limit)
	}
	return f
}

// sshProxy starts sshd on loopback, reached through a relay with cfg, and
// ssh -D in front of it, and returns the SOCKS5 address of ssh -D; "" if
// sshd is not installed (the benchmark then reports no ssh figure).
func sshProxy(tb testing.TB, cfg wanemu.Config) string {
	tb.Helper()
	sshd, err := exec.LookPath("sshd")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/sshd"); err2 != nil {
			return ""
		}
		sshd = "/usr/sbin/sshd"
	}
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return ""
	}
	dir := tb.TempDir()
	for _, key := range []string{"host", "user"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, key)).CombinedOutput()
		if err != nil {
			tb.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600); err != nil {
		tb.Fatal(err)
	}
	os.MkdirAll("/run/sshd", 0o755) // privilege separation wants it
	sshdAddr := freeAddr(tb)
	host, port, _ := net.SplitHostPort(sshdAddr)
	d := startProc(tb, "sshd", false, sshd, "-D", "-e", "-f", "/dev/null", "-p", port,
		"-o", "ListenAddress="+host, "-h", filepath.Join(dir, "host"),
		"-o", "AuthorizedKeysFile="+filepath.Join(dir, "authorized_keys"), "-o", "StrictModes=no",
		"-o", "PidFile=none", "-o", "PermitRootLogin=prohibit-password", "-o", "UsePAM=no")
	waitListening(tb, d, sshdAddr)
	r := newRelay(tb, sshdAddr, cfg)
	_, rport, _ := net.SplitHostPort(r.Addr())
	socks := freeAddr(tb)
	c := startProc(tb, "ssh -D", false, ssh, "-N", "-D", socks, "-p", rport, "-i", filepath.Join(dir, "user"),
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ExitOnForwardFailure=yes", "root@127.0.0.1")
	waitListening(tb, c, socks)
	return socks
}
