package egress

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// fakeResolver answers from a table and counts lookups.
type fakeResolver struct {
	answers map[string][]netip.Addr // by host
	err     error                   // if non-nil, every lookup fails with it
	// later, if set, replaces answers from the second lookup on: a
	// rebinding DNS server.
	later map[string][]netip.Addr
	block bool // wait for ctx to end, then fail with its error

	mu    sync.Mutex
	calls int // guarded by mu
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	r.calls++
	n := r.calls
	r.mu.Unlock()
	if r.block {
		<-ctx.Done()
		return nil, &net.DNSError{Err: ctx.Err().Error(), Name: host, IsTimeout: true}
	}
	if r.err != nil {
		return nil, r.err
	}
	answers := r.answers
	if n > 1 && r.later != nil {
		answers = r.later
	}
	addrs, ok := answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

func (r *fakeResolver) lookups() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// dialRecorder stands in for the system dialer: it records every address
// dialed, runs the Control hook as the kernel path would, and fails the
// addresses listed in fail.
type dialRecorder struct {
	fail  map[string]error // by "ip:port"
	block bool             // wait for ctx to end, then fail with its error

	mu     sync.Mutex
	dialed []string    // guarded by mu
	at     []time.Time // when each dial started; guarded by mu
}

func (r *dialRecorder) dial(ctx context.Context, network, addr string, control controlFunc) (net.Conn, error) {
	r.mu.Lock()
	r.dialed = append(r.dialed, addr)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	if err := control(network, addr, nil); err != nil {
		return nil, err
	}
	if r.block {
		<-ctx.Done()
		return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
	}
	if err := r.fail[addr]; err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

func (r *dialRecorder) addrs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.dialed)
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestDialPolicy(t *testing.T) {
	refused := syscall.ECONNREFUSED
	tests := []struct {
		name    string
		cfg     Config
		network string // "tcp" if empty
		addr    string
		answers map[string][]netip.Addr
		fail    map[string]error

		// Either dialed (the addresses dialed, the last one connecting
		// unless it is in fail) or a refusal.
		dialed      []string
		status      int
		proxyStatus string
		kind        error
		refusedIPs  []netip.Addr
	}{
		{
			name: "a public name is dialed by address",
			addr: "example.com:443", answers: map[string][]netip.Addr{"example.com": addrs("93.184.216.34")},
			dialed: []string{"93.184.216.34:443"},
		},
		{
			name: "a name resolving to a private address is refused",
			addr: "example.internal:80", answers: map[string][]netip.Addr{"example.internal": addrs("10.0.0.7")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("10.0.0.7"),
		},
		{
			name: "AllowPrivate opens private addresses",
			cfg:  Config{AllowPrivate: true},
			addr: "example.internal:80", answers: map[string][]netip.Addr{"example.internal": addrs("10.0.0.7")},
			dialed: []string{"10.0.0.7:80"},
		},
		{
			name: "only allowed answers are dialed, in order, until one connects",
			addr: "mixed.example:443",
			answers: map[string][]netip.Addr{"mixed.example": addrs(
				"10.0.0.7", "8.8.8.8", "127.0.0.1", "169.254.169.254", "1.1.1.1", "9.9.9.9")},
			fail:   map[string]error{"8.8.8.8:443": refused},
			dialed: []string{"8.8.8.8:443", "1.1.1.1:443"},
		},
		{
			name: "every address is refused together",
			addr: "all.internal:443", answers: map[string][]netip.Addr{"all.internal": addrs("127.0.0.1", "::1", "fd00:ec2::254")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("127.0.0.1", "::1", "fd00:ec2::254"),
		},
		{
			name: "a repeated answer is dialed once",
			addr: "twice.example:443", answers: map[string][]netip.Addr{"twice.example": addrs("1.1.1.1", "::ffff:1.1.1.1")},
			fail:   map[string]error{"1.1.1.1:443": refused},
			dialed: []string{"1.1.1.1:443"},
			status: 502, proxyStatus: "connection_refused", kind: ErrConnect,
		},
		{
			name: "an IPv4-mapped answer is dialed as IPv4",
			addr: "mapped.example:443", answers: map[string][]netip.Addr{"mapped.example": addrs("::ffff:8.8.8.8")},
			dialed: []string{"8.8.8.8:443"},
		},
		{
			name: "an IPv4-mapped private answer is refused",
			addr: "mapped.internal:443", answers: map[string][]netip.Addr{"mapped.internal": addrs("::ffff:192.168.1.1")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("192.168.1.1"),
		},
		{
			name: "a public IPv4 literal is dialed without DNS",
			addr: "8.8.8.8:53", dialed: []string{"8.8.8.8:53"},
		},
		{
			name: "a public IPv6 literal is dialed with brackets",
			addr: "[2606:4700::1111]:443", dialed: []string{"[2606:4700::1111]:443"},
		},
		{
			name:   "a loopback literal is refused",
			addr:   "127.0.0.1:22",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("127.0.0.1"),
		},
		{
			name:   "the metadata service literal is refused",
			addr:   "169.254.169.254:80",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("169.254.169.254"),
		},
		{
			name:   "an IPv4-mapped loopback literal is refused",
			addr:   "[::ffff:127.0.0.1]:22",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("127.0.0.1"),
		},
		{
			name:   "a NAT64 literal of a private address is refused",
			addr:   "[64:ff9b::a00:1]:80",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("64:ff9b::a00:1"),
		},
		{
			name:   "a 6to4 literal of loopback is refused",
			addr:   "[2002:7f00:1::1]:80",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("2002:7f00:1::1"),
		},
		{
			name: "a link-local literal with a zone is dialed with its zone under AllowPrivate",
			cfg:  Config{AllowPrivate: true},
			addr: "[fe80::1%eth0]:80", dialed: []string{"[fe80::1%eth0]:80"},
		},
		{
			name: "a denied port wins over an allowed range",
			cfg:  Config{AllowPorts: []string{"8000-9000"}, DenyPorts: []string{"8080"}},
			addr: "example.com:8080", answers: map[string][]netip.Addr{"example.com": addrs("93.184.216.34")},
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a port in an allowed range is dialed",
			cfg:  Config{AllowPorts: []string{"8000-9000"}, DenyPorts: []string{"8080"}},
			addr: "example.com:8081", answers: map[string][]netip.Addr{"example.com": addrs("93.184.216.34")},
			dialed: []string{"93.184.216.34:8081"},
		},
		{
			name: "a port outside AllowPorts is refused",
			cfg:  Config{AllowPorts: []string{"443"}},
			addr: "example.com:80", answers: map[string][]netip.Addr{"example.com": addrs("93.184.216.34")},
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "port 0 is refused", addr: "example.com:0",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a port above 65535 is refused", addr: "example.com:65536",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a service name as port is refused", addr: "example.com:https",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a target without a port is refused", addr: "example.com",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a malformed host name is refused", addr: "exa mple.com:80",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "an empty host is refused", addr: ":80",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a denied host wins over an allowed wildcard",
			cfg:  Config{AllowHosts: []string{"*.example.com"}, DenyHosts: []string{"bad.example.com"}},
			addr: "BAD.example.com.:443", answers: map[string][]netip.Addr{"bad.example.com": addrs("93.184.216.34")},
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "a name under an allowed wildcard is dialed",
			cfg:  Config{AllowHosts: []string{"*.example.com"}, DenyHosts: []string{"bad.example.com"}},
			addr: "good.example.com:443", answers: map[string][]netip.Addr{"good.example.com": addrs("93.184.216.34")},
			dialed: []string{"93.184.216.34:443"},
		},
		{
			name: "the apex is not under its wildcard",
			cfg:  Config{AllowHosts: []string{"*.example.com"}},
			addr: "example.com:443", answers: map[string][]netip.Addr{"example.com": addrs("93.184.216.34")},
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "AllowHosts matches an IP literal as written",
			cfg:  Config{AllowHosts: []string{"8.8.8.8"}},
			addr: "8.8.8.8:53", dialed: []string{"8.8.8.8:53"},
		},
		{
			name:   "AllowHosts refuses another IP literal",
			cfg:    Config{AllowHosts: []string{"8.8.8.8"}},
			addr:   "8.8.4.4:53",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
		{
			name: "an allowed host still has its addresses checked",
			cfg:  Config{AllowHosts: []string{"intranet.example"}},
			addr: "intranet.example:443", answers: map[string][]netip.Addr{"intranet.example": addrs("172.16.0.1")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("172.16.0.1"),
		},
		{
			name: "a denied CIDR wins over an allowed CIDR",
			cfg:  Config{AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.1.0.0/16"}},
			addr: "a.internal:443", answers: map[string][]netip.Addr{"a.internal": addrs("10.1.2.3")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("10.1.2.3"),
		},
		{
			name: "an allowed CIDR opens a private range without AllowPrivate",
			cfg:  Config{AllowCIDRs: []string{"10.0.0.0/8"}, DenyCIDRs: []string{"10.1.0.0/16"}},
			addr: "b.internal:443", answers: map[string][]netip.Addr{"b.internal": addrs("10.2.0.1")},
			dialed: []string{"10.2.0.1:443"},
		},
		{
			name: "an allowed CIDR opens only its range",
			cfg:  Config{AllowCIDRs: []string{"10.0.0.0/8"}},
			addr: "c.internal:443", answers: map[string][]netip.Addr{"c.internal": addrs("192.168.0.1")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("192.168.0.1"),
		},
		{
			name: "AllowCIDRs does not narrow public addresses",
			cfg:  Config{AllowCIDRs: []string{"10.1.0.0/16"}},
			addr: "8.8.8.8:53", dialed: []string{"8.8.8.8:53"},
		},
		{
			name:   "a denied CIDR wins over AllowPrivate",
			cfg:    Config{AllowPrivate: true, DenyCIDRs: []string{"169.254.169.254"}},
			addr:   "169.254.169.254:80",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("169.254.169.254"),
		},
		{
			name: "a denied CIDR refuses a public address",
			cfg:  Config{DenyCIDRs: []string{"8.8.8.0/24"}},
			addr: "dns.google:53", answers: map[string][]netip.Addr{"dns.google": addrs("8.8.8.8")},
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("8.8.8.8"),
		},
		{
			name:   "a denied IPv4 CIDR refuses its IPv4-mapped form",
			cfg:    Config{DenyCIDRs: []string{"8.8.8.0/24"}},
			addr:   "[::ffff:8.8.8.8]:53",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("8.8.8.8"),
		},
		{
			name:   "a denied IPv4 CIDR refuses its NAT64 form",
			cfg:    Config{DenyCIDRs: []string{"8.8.8.0/24"}},
			addr:   "[64:ff9b::808:808]:53",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("64:ff9b::808:808"),
		},
		{
			name:   "a denied IPv4-mapped CIDR refuses the IPv4 address",
			cfg:    Config{DenyCIDRs: []string{"::ffff:8.8.8.0/120"}},
			addr:   "8.8.8.8:53",
			status: 403, proxyStatus: "destination_ip_prohibited", kind: ErrRefused, refusedIPs: addrs("8.8.8.8"),
		},
		{
			name: "a NAT64 address of a public IPv4 is dialed",
			addr: "[64:ff9b::808:808]:53", dialed: []string{"[64:ff9b::808:808]:53"},
		},
		{
			name: "tcp4 dials only IPv4 answers", network: "tcp4",
			addr: "dual.example:443", answers: map[string][]netip.Addr{"dual.example": addrs("2606:4700::1111", "1.1.1.1")},
			dialed: []string{"1.1.1.1:443"},
		},
		{
			name: "tcp6 dials only IPv6 answers", network: "tcp6",
			addr: "dual.example:443", answers: map[string][]netip.Addr{"dual.example": addrs("1.1.1.1", "2606:4700::1111")},
			dialed: []string{"[2606:4700::1111]:443"},
		},
		{
			name: "tcp6 with only IPv4 answers is a DNS error", network: "tcp6",
			addr: "v4only.example:443", answers: map[string][]netip.Addr{"v4only.example": addrs("1.1.1.1")},
			status: 502, proxyStatus: "dns_error", kind: ErrResolve,
		},
		{
			name: "an empty answer is a DNS error",
			addr: "empty.example:443", answers: map[string][]netip.Addr{"empty.example": nil},
			status: 502, proxyStatus: "dns_error", kind: ErrResolve,
		},
		{
			name: "an unknown name is a DNS error",
			addr: "nx.example:443", answers: map[string][]netip.Addr{},
			status: 502, proxyStatus: "dns_error", kind: ErrResolve,
		},
		{
			name: "udp is refused", network: "udp", addr: "8.8.8.8:53",
			status: 403, proxyStatus: "http_request_denied", kind: ErrRefused,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustNew(t, tt.cfg)
			res := &fakeResolver{answers: tt.answers}
			rec := &dialRecorder{fail: tt.fail}
			d := &Dialer{Policy: p, Resolver: res, dial: rec.dial}
			network := tt.network
			if network == "" {
				network = "tcp"
			}
			c, err := d.DialContext(context.Background(), network, tt.addr)
			if c != nil {
				c.Close()
			}
			if got := rec.addrs(); !slices.Equal(got, tt.dialed) {
				t.Errorf("dialed %q, want %q", got, tt.dialed)
			}

			// Names are resolved exactly once; literals and targets
			// refused by a host or port rule never reach DNS.
			wantLookups := 1
			host, _, _ := net.SplitHostPort(tt.addr)
			if _, err := netip.ParseAddr(host); err == nil || tt.proxyStatus == "http_request_denied" {
				wantLookups = 0
			}
			if got := res.lookups(); got != wantLookups {
				t.Errorf("%d lookups, want %d", got, wantLookups)
			}

			if tt.kind == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("allowed, want an error")
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("error %v is not %v", err, tt.kind)
			}
			if e.StatusCode() != tt.status || e.ProxyStatus() != tt.proxyStatus {
				t.Errorf("status %d %s, want %d %s (%v)", e.StatusCode(), e.ProxyStatus(), tt.status, tt.proxyStatus, err)
			}
			if tt.kind == ErrRefused && tt.proxyStatus == "destination_ip_prohibited" && !slices.Equal(e.Addrs, tt.refusedIPs) {
				t.Errorf("refused addresses %v, want %v", e.Addrs, tt.refusedIPs)
			}
			if e.Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

func TestRefusalMessageSaysHowToAllow(t *testing.T) {
	d := &Dialer{
		Resolver: &fakeResolver{answers: map[string][]netip.Addr{"example.internal": addrs("10.0.0.7")}},
		dial:     (&dialRecorder{}).dial,
	}
	_, err := d.DialContext(context.Background(), "tcp", "example.internal:443")
	const want = "refused by egress policy: example.internal resolves to 10.0.0.7 (private); allow it with --allow-private or egress.allow_cidrs"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	var e *Error
	if errors.As(err, &e) && (e.Host != "example.internal" || e.Port != 443) {
		t.Errorf("error names %s port %d", e.Host, e.Port)
	}
}

func TestRebindingCannotSlipAnAddressIn(t *testing.T) {
	t.Run("a name that rebinds to a private address after the check is dialed by its first answer", func(t *testing.T) {
		res := &fakeResolver{
			answers: map[string][]netip.Addr{"rebind.example": addrs("8.8.8.8")},
			later:   map[string][]netip.Addr{"rebind.example": addrs("127.0.0.1")},
		}
		rec := &dialRecorder{}
		d := &Dialer{Resolver: res, dial: rec.dial}
		c, err := d.DialContext(context.Background(), "tcp", "rebind.example:80")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if got := rec.addrs(); !slices.Equal(got, []string{"8.8.8.8:80"}) {
			t.Errorf("dialed %q, want only 8.8.8.8:80", got)
		}
		if n := res.lookups(); n != 1 {
			t.Errorf("%d lookups, want 1", n)
		}
	})

	t.Run("a private answer after a failing public one is never dialed", func(t *testing.T) {
		res := &fakeResolver{answers: map[string][]netip.Addr{"rebind.example": addrs("8.8.8.8", "127.0.0.1", "169.254.169.254")}}
		rec := &dialRecorder{fail: map[string]error{"8.8.8.8:80": syscall.ECONNREFUSED}}
		d := &Dialer{Resolver: res, dial: rec.dial}
		_, err := d.DialContext(context.Background(), "tcp", "rebind.example:80")
		if got := rec.addrs(); !slices.Equal(got, []string{"8.8.8.8:80"}) {
			t.Errorf("dialed %q, want only 8.8.8.8:80", got)
		}
		var e *Error
		if !errors.As(err, &e) || e.StatusCode() != http.StatusBadGateway || e.ProxyStatus() != "connection_refused" {
			t.Fatalf("got %v, want 502 connection_refused", err)
		}
		if !slices.Equal(e.Addrs, addrs("8.8.8.8")) {
			t.Errorf("error names %v, want the address dialed", e.Addrs)
		}
	})
}

func TestControlChecksTheAddressTheKernelGets(t *testing.T) {
	p := mustNew(t, Config{DenyPorts: []string{"25"}})
	tests := []struct {
		name    string
		want    string // the address checked before dialing
		got     string // the address the kernel is about to connect to
		allowed bool
	}{
		{"the checked public address passes", "8.8.8.8:53", "8.8.8.8:53", true},
		{"the checked IPv6 address passes", "[2606:4700::1111]:443", "[2606:4700::1111]:443", true},
		{"a different public address is refused", "8.8.8.8:53", "8.8.4.4:53", false},
		{"a different port is refused", "8.8.8.8:53", "8.8.8.8:54", false},
		{"a private address is refused even if it was the one checked", "127.0.0.1:80", "127.0.0.1:80", false},
		{"the metadata service is refused", "169.254.169.254:80", "169.254.169.254:80", false},
		{"a denied port is refused", "8.8.8.8:25", "8.8.8.8:25", false},
		{"garbage is refused", "8.8.8.8:53", "not an address", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.control(netip.MustParseAddrPort(tt.want))("tcp4", tt.got, nil)
			if (err == nil) != tt.allowed {
				t.Fatalf("control(%s) = %v, want allowed=%v", tt.got, err, tt.allowed)
			}
			if err != nil && !errors.Is(err, ErrRefused) {
				t.Errorf("error %v is not ErrRefused", err)
			}
		})
	}
}

// listen starts a loopback listener that echoes one connection at a time
// until the test ends.
func listenEcho(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.Copy(c, c)
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return ln
}

func TestDialLoopback(t *testing.T) {
	ln := listenEcho(t)
	port := ln.Addr().(*net.TCPAddr).Port

	t.Run("AllowPrivate connects to a loopback listener, after a failing first address", func(t *testing.T) {
		d := &Dialer{
			Policy: mustNew(t, Config{AllowPrivate: true}),
			// Nothing listens on ::1 at this port (or there is no
			// IPv6): the dialer must go on to 127.0.0.1.
			Resolver: &fakeResolver{answers: map[string][]netip.Addr{"svc.test": addrs("::1", "127.0.0.1")}},
		}
		c, err := d.DialContext(context.Background(), "tcp", net.JoinHostPort("svc.test", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo: %q, %v", buf, err)
		}
	})

	t.Run("the default policy refuses it before connecting", func(t *testing.T) {
		var d Dialer
		_, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrRefused) || e.StatusCode() != http.StatusForbidden || e.ProxyStatus() != "destination_ip_prohibited" {
			t.Fatalf("got %v, want 403 destination_ip_prohibited", err)
		}
	})

	t.Run("the Control hook refuses it when the pre-check is bypassed", func(t *testing.T) {
		// dialOne skips the pre-check, as a resolver bug or a rebinding
		// race would; the real net.Dialer must still refuse.
		probe, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		var d Dialer
		target := netip.MustParseAddrPort(probe.Addr().String())
		c, err := d.dialOne(context.Background(), d.policy(), "tcp", target, 1)
		if err == nil {
			c.Close()
			t.Fatal("connected to loopback under the default policy")
		}
		if !errors.Is(err, ErrRefused) {
			t.Errorf("error %v is not ErrRefused", err)
		}
		probe.(*net.TCPListener).SetDeadline(time.Now().Add(50 * time.Millisecond))
		if c, err := probe.Accept(); err == nil {
			c.Close()
			t.Error("the listener received a connection")
		}
	})
}

func TestDialClosedPortIsRefusedQuickly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	d := &Dialer{Policy: mustNew(t, Config{AllowPrivate: true}), Timeout: time.Minute}
	start := time.Now()
	_, err = d.DialContext(context.Background(), "tcp", addr)
	if elapsed := time.Since(start); elapsed > d.Timeout/2 {
		t.Errorf("took %v: a refused connection must not wait for the timeout", elapsed)
	}
	var e *Error
	if !errors.As(err, &e) || e.StatusCode() != http.StatusBadGateway || e.ProxyStatus() != "connection_refused" {
		t.Fatalf("got %v, want 502 connection_refused", err)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, ErrConnect) {
		t.Errorf("error %v does not unwrap to ECONNREFUSED and ErrConnect", err)
	}
}

func TestDialTimeout(t *testing.T) {
	t.Run("an unanswered connect ends at the timeout with 504", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &dialRecorder{block: true}
			d := &Dialer{Timeout: 3 * time.Second, dial: rec.dial}
			start := time.Now()
			_, err := d.DialContext(context.Background(), "tcp", "8.8.8.8:443")
			if got := time.Since(start); got != 3*time.Second {
				t.Errorf("gave up after %v, want 3s", got)
			}
			var e *Error
			if !errors.As(err, &e) || e.StatusCode() != http.StatusGatewayTimeout || e.ProxyStatus() != "connection_timeout" {
				t.Fatalf("got %v, want 504 connection_timeout", err)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v does not unwrap to context.DeadlineExceeded", err)
			}
		})
	})

	t.Run("several addresses share the timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			rec := &dialRecorder{block: true}
			d := &Dialer{
				Timeout:  10 * time.Second,
				Resolver: &fakeResolver{answers: map[string][]netip.Addr{"slow.example": addrs("8.8.8.8", "8.8.4.4")}},
				dial:     rec.dial,
			}
			start := time.Now()
			_, err := d.DialContext(context.Background(), "tcp", "slow.example:443")
			if got := time.Since(start); got != 10*time.Second {
				t.Errorf("gave up after %v, want 10s", got)
			}
			if got := rec.addrs(); len(got) != 2 {
				t.Fatalf("dialed %q, want both addresses", got)
			}
			if got := rec.at[1].Sub(start); got != 5*time.Second {
				t.Errorf("second address dialed after %v, want 5s (half the timeout)", got)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("error %v is not a timeout", err)
			}
		})
	})

	t.Run("a zero timeout means 10s", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			d := &Dialer{dial: (&dialRecorder{block: true}).dial}
			start := time.Now()
			d.DialContext(context.Background(), "tcp", "8.8.8.8:443")
			if got := time.Since(start); got != 10*time.Second {
				t.Errorf("gave up after %v, want 10s", got)
			}
		})
	})

	t.Run("cancelling ctx ends the dial", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			d := &Dialer{dial: (&dialRecorder{block: true}).dial}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			_, err := d.DialContext(ctx, "tcp", "8.8.8.8:443")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
		})
	})
}

func TestDNSFailure(t *testing.T) {
	t.Run("no such host is 502 dns_error naming the host", func(t *testing.T) {
		dnsErr := &net.DNSError{Err: "no such host", Name: "nx.example", IsNotFound: true}
		rec := &dialRecorder{}
		d := &Dialer{Resolver: &fakeResolver{err: dnsErr}, dial: rec.dial}
		_, err := d.DialContext(context.Background(), "tcp", "nx.example:443")
		var e *Error
		if !errors.As(err, &e) || e.StatusCode() != http.StatusBadGateway || e.ProxyStatus() != "dns_error" {
			t.Fatalf("got %v, want 502 dns_error", err)
		}
		if e.Host != "nx.example" || !errors.Is(err, ErrResolve) {
			t.Errorf("error %v: host %q", err, e.Host)
		}
		var got *net.DNSError
		if !errors.As(err, &got) || got != dnsErr {
			t.Errorf("error %v does not unwrap to the resolver's error", err)
		}
		if len(rec.addrs()) != 0 {
			t.Error("dialed after a DNS failure")
		}
	})

	t.Run("a lookup that never answers is 504 dns_error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			d := &Dialer{Timeout: 5 * time.Second, Resolver: &fakeResolver{block: true}}
			_, err := d.DialContext(context.Background(), "tcp", "slow.example:443")
			var e *Error
			if !errors.As(err, &e) || e.StatusCode() != http.StatusGatewayTimeout || e.ProxyStatus() != "dns_error" {
				t.Fatalf("got %v, want 504 dns_error", err)
			}
		})
	})
}
