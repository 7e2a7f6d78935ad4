package socks5

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// Wire fragments.
var (
	greeting   = []byte{0x05, 0x01, 0x00}
	selectNone = []byte{0x05, 0x00}
	noMethods  = []byte{0x05, 0xFF}
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// connect builds a request: VER CMD RSV ATYP, then addr and port as given.
func req(cmd, atyp byte, addr []byte, port uint16) []byte {
	return cat([]byte{0x05, cmd, 0x00, atyp}, addr, []byte{byte(port >> 8), byte(port)})
}

func domain(name string) []byte { return cat([]byte{byte(len(name))}, []byte(name)) }

// failure is the reply ReadRequest writes for a refused request.
func failure(r Reply) []byte { return []byte{0x05, byte(r), 0x00, 0x01, 0, 0, 0, 0, 0, 0} }

var ipv6DB8 = []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01}

// rw is a client: what it sends, and what the server wrote back.
type rw struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *rw) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *rw) Write(p []byte) (int, error) { return c.out.Write(p) }

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		target  string
		err     error  // a sentinel, or io.EOF / io.ErrUnexpectedEOF
		written []byte // everything ReadRequest wrote
	}{
		{
			name:   "an IPv4 CONNECT",
			in:     cat(greeting, req(1, 1, []byte{127, 0, 0, 1}, 80)),
			target: "127.0.0.1:80", written: selectNone,
		},
		{
			name:   "an IPv6 CONNECT is bracketed",
			in:     cat(greeting, req(1, 4, ipv6DB8, 443)),
			target: "[2001:db8::1]:443", written: selectNone,
		},
		{
			name:   "an IPv4-mapped IPv6 CONNECT keeps its form",
			in:     cat(greeting, req(1, 4, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 8, 8, 8, 8}, 53)),
			target: "[::ffff:8.8.8.8]:53", written: selectNone,
		},
		{
			name:   "a domain CONNECT is passed on unresolved",
			in:     cat(greeting, req(1, 3, domain("example.com"), 443)),
			target: "example.com:443", written: selectNone,
		},
		{
			name:   "a domain keeps its case, trailing dot and underscores",
			in:     cat(greeting, req(1, 3, domain("_Srv.Example.COM."), 8443)),
			target: "_Srv.Example.COM.:8443", written: selectNone,
		},
		{
			name:   "a 255-byte domain is accepted",
			in:     cat(greeting, req(1, 3, domain(strings.Repeat("a", 255)), 65535)),
			target: strings.Repeat("a", 255) + ":65535", written: selectNone,
		},
		{
			name:   "an IPv6 literal sent as a domain is bracketed",
			in:     cat(greeting, req(1, 3, domain("::1"), 22)),
			target: "[::1]:22", written: selectNone,
		},
		{
			name:   "no authentication is chosen among several methods",
			in:     cat([]byte{0x05, 0x03, 0x02, 0x01, 0x00}, req(1, 1, []byte{10, 0, 0, 1}, 1)),
			target: "10.0.0.1:1", written: selectNone,
		},

		{
			name: "a SOCKS4 client gets no answer",
			in:   []byte{0x04, 0x01, 0x00, 0x50, 127, 0, 0, 1, 0},
			err:  ErrVersion,
		},
		{
			name: "an HTTP client gets no answer",
			in:   []byte("GET / HTTP/1.1\r\n\r\n"),
			err:  ErrVersion,
		},
		{
			name: "a greeting without methods is answered no acceptable methods",
			in:   []byte{0x05, 0x00},
			err:  ErrMalformed, written: noMethods,
		},
		{
			name: "a greeting without no-authentication is answered no acceptable methods",
			in:   []byte{0x05, 0x02, 0x01, 0x02},
			err:  ErrNoAcceptableMethod, written: noMethods,
		},
		{
			name: "a request with version 4 is a general failure",
			in:   cat(greeting, []byte{0x04, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0, 80}),
			err:  ErrVersion, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a non-zero reserved byte is a general failure",
			in:   cat(greeting, []byte{0x05, 0x01, 0x01, 0x01, 1, 2, 3, 4, 0, 80}),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "BIND is not supported",
			in:   cat(greeting, req(2, 1, []byte{1, 2, 3, 4}, 80)),
			err:  ErrCommandNotSupported, written: cat(selectNone, failure(CommandNotSupported)),
		},
		{
			name: "UDP ASSOCIATE is not supported",
			in:   cat(greeting, req(3, 1, []byte{0, 0, 0, 0}, 0)),
			err:  ErrCommandNotSupported, written: cat(selectNone, failure(CommandNotSupported)),
		},
		{
			name: "an unknown command is not supported",
			in:   cat(greeting, req(9, 3, domain("example.com"), 80)),
			err:  ErrCommandNotSupported, written: cat(selectNone, failure(CommandNotSupported)),
		},
		{
			name: "address type 2 is not supported",
			in:   cat(greeting, []byte{0x05, 0x01, 0x00, 0x02, 1, 2, 3, 4, 0, 80}),
			err:  ErrAddressTypeNotSupported, written: cat(selectNone, failure(AddressTypeNotSupported)),
		},
		{
			name: "address type 0xff is not supported",
			in:   cat(greeting, []byte{0x05, 0x01, 0x00, 0xff}),
			err:  ErrAddressTypeNotSupported, written: cat(selectNone, failure(AddressTypeNotSupported)),
		},
		{
			name: "an empty domain is a general failure",
			in:   cat(greeting, req(1, 3, domain(""), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a domain with NUL is a general failure",
			in:   cat(greeting, req(1, 3, domain("example.com\x00.evil"), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a domain with a space is a general failure",
			in:   cat(greeting, req(1, 3, domain("exa mple.com"), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a domain with a port inside is a general failure",
			in:   cat(greeting, req(1, 3, domain("example.com:22"), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a domain with brackets is a general failure",
			in:   cat(greeting, req(1, 3, domain("[::1]"), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a domain with a slash is a general failure",
			in:   cat(greeting, req(1, 3, domain("example.com/x"), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "a domain with UTF-8 is a general failure",
			in:   cat(greeting, req(1, 3, domain("bücher.example"), 80)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "port 0 is a general failure",
			in:   cat(greeting, req(1, 1, []byte{1, 2, 3, 4}, 0)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},
		{
			name: "port 0 on a domain is a general failure",
			in:   cat(greeting, req(1, 3, domain("example.com"), 0)),
			err:  ErrMalformed, written: cat(selectNone, failure(GeneralFailure)),
		},

		{name: "an empty connection", in: nil, err: io.EOF},
		{name: "a connection closed after the version", in: []byte{0x05}, err: io.ErrUnexpectedEOF},
		{name: "a connection closed among the methods", in: []byte{0x05, 0x03, 0x00}, err: io.ErrUnexpectedEOF},
		{
			name: "a connection closed before the request",
			in:   greeting, err: io.EOF, written: selectNone,
		},
		{
			name: "a connection closed in the request header",
			in:   cat(greeting, []byte{0x05, 0x01}), err: io.ErrUnexpectedEOF, written: selectNone,
		},
		{
			name: "a connection closed in the IPv6 address",
			in:   cat(greeting, []byte{0x05, 0x01, 0x00, 0x04}, ipv6DB8[:7]), err: io.ErrUnexpectedEOF, written: selectNone,
		},
		{
			name: "a connection closed in the domain",
			in:   cat(greeting, []byte{0x05, 0x01, 0x00, 0x03, 200}, []byte("short")), err: io.ErrUnexpectedEOF, written: selectNone,
		},
		{
			name: "a connection closed in the port",
			in:   cat(greeting, []byte{0x05, 0x01, 0x00, 0x01, 1, 2, 3, 4, 0}), err: io.ErrUnexpectedEOF, written: selectNone,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Bytes after the request belong to the relay: they must
			// stay unread.
			const early = "early data"
			r := bytes.NewReader(cat(tt.in, []byte(early)))
			if tt.err == io.EOF || tt.err == io.ErrUnexpectedEOF {
				r = bytes.NewReader(tt.in)
			}
			c := &rw{in: r}
			target, err := ReadRequest(c)
			if target != tt.target {
				t.Errorf("target %q, want %q", target, tt.target)
			}
			if tt.err == nil && err != nil {
				t.Fatalf("error %v", err)
			}
			if !errors.Is(err, tt.err) {
				t.Errorf("error %v, want %v", err, tt.err)
			}
			if !bytes.Equal(c.out.Bytes(), tt.written) {
				t.Errorf("wrote % x, want % x", c.out.Bytes(), tt.written)
			}
			if tt.err == nil && r.Len() != len(early) {
				t.Errorf("%d bytes left unread, want the %d after the request", r.Len(), len(early))
			}
		})
	}
}

// boundedReader serves an endless stream and fails the test if asked to
// read into a buffer larger than a SOCKS5 length byte allows.
type boundedReader struct {
	t    *testing.T
	fill byte
	read int
}

func (r *boundedReader) Read(p []byte) (int, error) {
	if len(p) > 255 {
		r.t.Fatalf("Read into a %d-byte buffer", len(p))
	}
	for i := range p {
		p[i] = r.fill
	}
	r.read += len(p)
	return len(p), nil
}

func TestReadRequestIsBounded(t *testing.T) {
	// The largest request: 255 methods and a 255-byte domain.
	const maxRequest = 2 + 255 + 4 + 1 + 255 + 2
	worst := cat([]byte{0x05, 0xFF}, bytes.Repeat([]byte{0x00}, 255),
		req(1, 3, domain(strings.Repeat("x", 255)), 443))
	if len(worst) != maxRequest {
		t.Fatalf("worst case is %d bytes, want %d", len(worst), maxRequest)
	}

	t.Run("an endless stream of 0x05 is read only up to one request", func(t *testing.T) {
		// 05 05 <5 methods: 05…> → no acceptable method.
		r := &boundedReader{t: t, fill: 0x05}
		var w bytes.Buffer
		ReadRequest(struct {
			io.Reader
			io.Writer
		}{r, &w})
		if r.read > maxRequest {
			t.Errorf("read %d bytes", r.read)
		}
	})

	t.Run("the largest request allocates a fixed few allocations under 2 KiB", func(t *testing.T) {
		var c rw
		readOne := func() {
			c.out.Reset()
			c.in = bytes.NewReader(worst)
			if _, err := ReadRequest(&c); err != nil {
				t.Fatal(err)
			}
		}
		allocs := testing.AllocsPerRun(100, readOne)
		const runs = 1000
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			readOne()
		}
		runtime.ReadMemStats(&after)
		perRun := (after.TotalAlloc - before.TotalAlloc) / runs
		// The read buffer, the host and the target (and the test's
		// bytes.Reader); nothing that grows with what the client claims.
		if allocs > 6 || perRun > 2048 {
			t.Errorf("%v allocations, %d bytes per request", allocs, perRun)
		}
		t.Logf("%v allocations, %d bytes per request", allocs, perRun)
	})
}

func TestWriteReply(t *testing.T) {
	tests := []struct {
		name  string
		reply Reply
		bound string
		want  []byte
	}{
		{"success with an IPv4 bound address", Succeeded, "192.0.2.1:1080", []byte{5, 0, 0, 1, 192, 0, 2, 1, 0x04, 0x38}},
		{"success with an IPv6 bound address", Succeeded, "[2001:db8::1]:443", cat([]byte{5, 0, 0, 4}, ipv6DB8, []byte{0x01, 0xbb})},
		{"an IPv4-mapped bound address is sent as IPv4", Succeeded, "[::ffff:10.0.0.1]:80", []byte{5, 0, 0, 1, 10, 0, 0, 1, 0, 80}},
		{"a failure without a bound address", HostUnreachable, "", []byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bound netip.AddrPort
			if tt.bound != "" {
				bound = netip.MustParseAddrPort(tt.bound)
			}
			var b bytes.Buffer
			if err := WriteReply(&b, tt.reply, bound); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), tt.want) {
				t.Errorf("wrote % x, want % x", b.Bytes(), tt.want)
			}
		})
	}
}
