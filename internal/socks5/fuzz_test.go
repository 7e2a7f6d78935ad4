package socks5

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

func FuzzReadRequest(f *testing.F) {
	seeds := [][]byte{
		cat(greeting, req(1, 1, []byte{127, 0, 0, 1}, 80)),
		cat(greeting, req(1, 4, ipv6DB8, 443)),
		cat(greeting, req(1, 3, domain("example.com"), 443)),
		cat(greeting, req(1, 3, domain("::1"), 22)),
		cat(greeting, req(1, 3, domain("[::1]"), 22)),
		cat(greeting, req(1, 3, domain("fe80::1%eth0"), 22)),
		cat(greeting, req(1, 3, domain(strings.Repeat("a", 255)), 1)),
		cat(greeting, req(1, 3, domain(""), 80)),
		cat(greeting, req(1, 3, domain("a\x00b"), 80)),
		cat(greeting, req(2, 1, []byte{1, 2, 3, 4}, 80)),
		cat(greeting, req(1, 1, []byte{1, 2, 3, 4}, 0)),
		cat(greeting, []byte{0x05, 0x01, 0x01, 0x01, 1, 2, 3, 4, 0, 80}),
		cat(greeting, []byte{0x05, 0x01, 0x00, 0x09}),
		cat([]byte{0x05, 0xFF}, bytes.Repeat([]byte{0x02}, 255)),
		{0x05, 0x00},
		{0x04, 0x01},
		{0x05},
		nil,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := &limitedReadSize{r: bytes.NewReader(in), t: t}
		var out bytes.Buffer
		target, err := ReadRequest(struct {
			io.Reader
			io.Writer
		}{r, &out})

		// Bounded: at most one greeting and one request are read, and
		// at most a method selection and one reply are written.
		const maxRequest = 2 + 255 + 4 + 1 + 255 + 2
		if r.n > maxRequest {
			t.Fatalf("read %d bytes", r.n)
		}
		if out.Len() > 2+4+16+2 {
			t.Fatalf("wrote %d bytes", out.Len())
		}
		if err != nil {
			if target != "" {
				t.Fatalf("error %v with target %q", err, target)
			}
			return
		}
		if !bytes.Equal(out.Bytes(), selectNone) {
			t.Fatalf("success but wrote % x", out.Bytes())
		}
		host, port, err := net.SplitHostPort(target)
		if err != nil {
			t.Fatalf("target %q does not split: %v", target, err)
		}
		if net.JoinHostPort(host, port) != target {
			t.Fatalf("target %q does not round-trip: %q %q", target, host, port)
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			t.Fatalf("target %q has port %q", target, port)
		}
		if host == "" || strings.ContainsAny(host, "\x00 /[]@") {
			t.Fatalf("target %q has host %q", target, host)
		}
	})
}

// limitedReadSize counts bytes read and fails the test if asked to read
// into a buffer larger than a SOCKS5 length byte allows.
type limitedReadSize struct {
	r io.Reader
	t *testing.T
	n int
}

func (l *limitedReadSize) Read(p []byte) (int, error) {
	if len(p) > 255 {
		l.t.Fatalf("Read into a %d-byte buffer", len(p))
	}
	n, err := l.r.Read(p)
	l.n += n
	return n, err
}
