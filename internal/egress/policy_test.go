package egress

import (
	"errors"
	"net/netip"
	"testing"
)

func mustNew(t *testing.T, c Config) *Policy {
	t.Helper()
	p, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return p
}

func TestSpecialPurposeAddresses(t *testing.T) {
	tests := []struct {
		addr    string
		refused bool // by the default policy
	}{
		// Public.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"9.255.255.255", false},
		{"11.0.0.0", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"126.255.255.255", false},
		{"128.0.0.1", false},
		{"169.253.255.255", false},
		{"169.255.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"192.0.1.1", false},
		{"192.167.255.255", false},
		{"192.169.0.0", false},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"223.255.255.255", false},
		{"2606:4700:4700::1111", false},
		{"2a00:1450:4001::1", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", false},  // 6to4 of 8.8.8.8
		{"::ffff:8.8.8.8", false},   // IPv4-mapped public
		{"2001:4860:4860::8888", false},

		// Special purpose.
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"10.0.0.0", true},
		{"10.255.255.255", true},
		{"100.64.0.0", true},
		{"100.127.255.255", true},
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"169.254.0.1", true},
		{"169.254.169.254", true},
		{"172.16.0.0", true},
		{"172.31.255.255", true},
		{"192.0.0.8", true},
		{"192.0.2.1", true},
		{"192.88.99.1", true},
		{"192.168.0.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.51.100.7", true},
		{"203.0.113.9", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"240.0.0.1", true},
		{"255.255.255.254", true},
		{"255.255.255.255", true},
		{"::", true},
		{"::1", true},
		{"::127.0.0.1", true},      // IPv4-compatible
		{"::8.8.8.8", true},        // IPv4-compatible, deprecated whatever it embeds
		{"::ffff:127.0.0.1", true}, // IPv4-mapped loopback
		{"::ffff:169.254.169.254", true},
		{"::ffff:0:a00:1", true},     // IPv4-translated (outside 2000::/3)
		{"64:ff9b::7f00:1", true},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"64:ff9b:1::1", true},
		{"100::1", true},
		{"2001::1", true},
		{"2001:2::1", true},
		{"2001:db8::1", true},
		{"2002:a00:1::1", true}, // 6to4 of 10.0.0.1
		{"2002:7f00:1::", true}, // 6to4 of 127.0.0.1
		{"3fff::1", true},
		{"fc00::1", true},
		{"fd00:ec2::254", true},
		{"fdff:ffff::1", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"febf::1", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"ff0e::1", true},
		{"4000::1", true},
	}
	def := &Policy{}
	open := mustNew(t, Config{AllowPrivate: true})
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		v := def.checkAddr(a)
		if v.ok == tt.refused {
			t.Errorf("default policy: %s allowed=%v (%s), want allowed=%v", tt.addr, v.ok, v.why, !tt.refused)
		}
		if !v.ok && v.hint != hintPrivate {
			t.Errorf("default policy: %s refusal hint %q, want %q", tt.addr, v.hint, hintPrivate)
		}
		if v := open.checkAddr(a); !v.ok {
			t.Errorf("AllowPrivate: %s refused (%s)", tt.addr, v.why)
		}
	}
}

func TestPortMatching(t *testing.T) {
	p := mustNew(t, Config{AllowPorts: []string{"443", "8000-9000"}, DenyPorts: []string{"8080", "8500-8599"}})
	tests := []struct {
		port    uint16
		allowed bool
	}{
		{0, false},
		{1, false},
		{80, false},
		{442, false},
		{443, true},
		{444, false},
		{7999, false},
		{8000, true},
		{8079, true},
		{8080, false}, // deny wins over the allowed range
		{8081, true},
		{8499, true},
		{8500, false},
		{8599, false},
		{8600, true},
		{9000, true},
		{9001, false},
		{65535, false},
	}
	for _, tt := range tests {
		if v := p.checkPort(tt.port); v.ok != tt.allowed {
			t.Errorf("port %d: allowed=%v (%s), want %v", tt.port, v.ok, v.why, tt.allowed)
		}
	}
	open := &Policy{}
	for _, port := range []uint16{1, 22, 443, 65535} {
		if v := open.checkPort(port); !v.ok {
			t.Errorf("zero policy refused port %d: %s", port, v.why)
		}
	}
	if v := open.checkPort(0); v.ok {
		t.Error("zero policy allowed port 0")
	}
}

func TestHostMatching(t *testing.T) {
	tests := []struct {
		pattern string
		host    string
		match   bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "EXAMPLE.COM", true},
		{"example.com", "example.com.", true},
		{"example.com.", "example.com", true},
		{"Example.COM", "example.com", true},
		{"example.com", "www.example.com", false},
		{"example.com", "notexample.com", false},
		{"example.com", "example.co", false},
		{"*.example.com", "www.example.com", true},
		{"*.example.com", "a.b.example.com", true},
		{"*.example.com", "WWW.Example.Com.", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "badexample.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "example.com.evil.net", false},
		{"8.8.8.8", "8.8.8.8", true},
		{"8.8.8.8", "8.8.4.4", false},
		{"2001:DB8::1", "2001:db8:0::1", true},
		{"[2001:db8::1]", "2001:db8::1", true},
		{"2001:db8::1", "2001:db8::2", false},
	}
	for _, tt := range tests {
		h, problem := parseHostPattern(tt.pattern)
		if problem != "" {
			t.Fatalf("parseHostPattern(%q): %s", tt.pattern, problem)
		}
		if got := h.match(normalizeHost(tt.host)); got != tt.match {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.host, got, tt.match)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
		entry string
	}{
		{"a CIDR with a missing octet", Config{DenyCIDRs: []string{"10.0.0/8"}}, "egress.deny_cidrs", "10.0.0/8"},
		{"a CIDR with host bits set", Config{AllowCIDRs: []string{"10.0.0.1/8"}}, "egress.allow_cidrs", "10.0.0.1/8"},
		{"a CIDR with a zone", Config{AllowCIDRs: []string{"fe80::1%eth0"}}, "egress.allow_cidrs", "fe80::1%eth0"},
		{"a CIDR that is a name", Config{DenyCIDRs: []string{"example.com"}}, "egress.deny_cidrs", "example.com"},
		{"a CIDR with a too long mask", Config{DenyCIDRs: []string{"10.0.0.0/33"}}, "egress.deny_cidrs", "10.0.0.0/33"},
		{"an empty CIDR", Config{DenyCIDRs: []string{""}}, "egress.deny_cidrs", ""},
		{"port zero", Config{AllowPorts: []string{"0"}}, "egress.allow_ports", "0"},
		{"a port above 65535", Config{DenyPorts: []string{"65536"}}, "egress.deny_ports", "65536"},
		{"a service name as port", Config{AllowPorts: []string{"https"}}, "egress.allow_ports", "https"},
		{"a half-open range", Config{AllowPorts: []string{"80-"}}, "egress.allow_ports", "80-"},
		{"a reversed range", Config{DenyPorts: []string{"9000-8000"}}, "egress.deny_ports", "9000-8000"},
		{"a signed port", Config{DenyPorts: []string{"+80"}}, "egress.deny_ports", "+80"},
		{"a host with a space", Config{AllowHosts: []string{"exa mple.com"}}, "egress.allow_hosts", "exa mple.com"},
		{"a host with a port", Config{DenyHosts: []string{"example.com:443"}}, "egress.deny_hosts", "example.com:443"},
		{"a URL as host", Config{DenyHosts: []string{"https://example.com"}}, "egress.deny_hosts", "https://example.com"},
		{"a bare wildcard", Config{AllowHosts: []string{"*"}}, "egress.allow_hosts", "*"},
		{"a wildcard inside a name", Config{AllowHosts: []string{"www.*.com"}}, "egress.allow_hosts", "www.*.com"},
		{"a wildcard over an IP", Config{AllowHosts: []string{"*.8.8.8.8"}}, "egress.allow_hosts", "*.8.8.8.8"},
		{"an empty host", Config{DenyHosts: []string{""}}, "egress.deny_hosts", ""},
		{"an empty label", Config{DenyHosts: []string{"a..b"}}, "egress.deny_hosts", "a..b"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected naming its field and entry", func(t *testing.T) {
			p, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New accepted it: %+v", p)
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a configError", err, err)
			}
			if ce.Field != tt.field || ce.Entry != tt.entry {
				t.Errorf("error names %s %q, want %s %q", ce.Field, ce.Entry, tt.field, tt.entry)
			}
			if tt.cfg.Validate() == nil {
				t.Error("Validate accepted what New rejects")
			}
		})
	}

	t.Run("the message shows a correct example", func(t *testing.T) {
		_, err := New(Config{DenyCIDRs: []string{"10.0.0/8"}})
		const want = `egress.deny_cidrs: "10.0.0/8" is not a CIDR (example: 10.0.0.0/8)`
		if err == nil || err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})

	t.Run("every bad entry is reported at once", func(t *testing.T) {
		_, err := New(Config{
			AllowPorts: []string{"443", "x"},
			DenyCIDRs:  []string{"10.0.0.0/8", "nope", "::1/129"},
		})
		if err == nil {
			t.Fatal("New accepted it")
		}
		if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
			t.Errorf("got %d errors, want 3: %v", n, err)
		}
	})

	t.Run("good entries are accepted", func(t *testing.T) {
		c := Config{
			AllowHosts: []string{"example.com", "*.example.org", " spaced.example ", "EXAMPLE.NET.", "8.8.8.8", "[2001:db8::1]", "_srv.example.com"},
			DenyHosts:  []string{"*.internal"},
			AllowCIDRs: []string{"10.1.0.0/16", "2001:db8::/32", "192.168.1.10", "fd00::1", "::ffff:10.2.0.0/112"},
			DenyCIDRs:  []string{"0.0.0.0/0", "::/0"},
			AllowPorts: []string{"1", "443", "8000-9000", "65535", "22-22"},
			DenyPorts:  []string{"25"},
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		p := mustNew(t, c)
		if got := p.allowCIDRs[2]; got != netip.MustParsePrefix("192.168.1.10/32") {
			t.Errorf("bare IPv4 became %s, want /32", got)
		}
		if got := p.allowCIDRs[3]; got != netip.MustParsePrefix("fd00::1/128") {
			t.Errorf("bare IPv6 became %s, want /128", got)
		}
		if got := p.allowCIDRs[4]; got != netip.MustParsePrefix("10.2.0.0/16") {
			t.Errorf("IPv4-mapped prefix became %s, want 10.2.0.0/16", got)
		}
	})

	t.Run("the zero config is valid", func(t *testing.T) {
		if err := (Config{}).Validate(); err != nil {
			t.Fatal(err)
		}
	})
}
