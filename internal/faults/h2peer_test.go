package faults

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Peer is a hand-driven HTTP/2 client of the exit: mutual TLS with the
// client certificate in certs, ALPN h2, frames written and read with
// x/net/http2's Framer, as an attacker (or h2spec) would speak.
type h2Peer struct {
	tc   *tls.Conn
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	next uint32 // the next stream ID to open
}

func dialH2(t *testing.T, exitAddr, certs string) *h2Peer {
	t.Helper()
	tc, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", exitAddr, exitTLS(t, certs, false, "h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN %q, want h2", p)
	}
	p := &h2Peer{tc: tc, fr: http2.NewFramer(tc, tc), next: 1}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	p.enc = hpack.NewEncoder(&p.hbuf)
	if _, err := io.WriteString(tc, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := p.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return p
}

// connect sends a CONNECT request to target on a new stream and returns
// its ID. With end set, the request also ends the client's side.
func (p *h2Peer) connect(target string, end bool) (uint32, error) {
	id := p.next
	p.next += 2
	p.hbuf.Reset()
	p.enc.WriteField(hpack.HeaderField{Name: ":method", Value: "CONNECT"})
	p.enc.WriteField(hpack.HeaderField{Name: ":authority", Value: target})
	return id, p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hbuf.Bytes(), EndHeaders: true, EndStream: end})
}

// goAwayOrEnd reads frames until a GOAWAY arrives or the connection ends,
// within d. It returns the GOAWAY (nil if the connection ended without one)
// and whether anything ended the connection in time.
func (p *h2Peer) goAwayOrEnd(d time.Duration) (*http2.GoAwayFrame, bool) {
	p.tc.SetReadDeadline(time.Now().Add(d))
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			return nil, !(errors.As(err, &ne) && ne.Timeout())
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok && ga.ErrCode != http2.ErrCodeNo {
			return ga, true
		}
	}
}
