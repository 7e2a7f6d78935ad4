package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"

	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The checklist of a hardened HTTP/2 server, taken from x/net/http2's
// server, each item tested with a hostile client written with x/net/http2's
// Framer over crypto/tls against Serve, as the exit runs it.

// attacker is a hand-driven client of a server connection.
type attacker struct {
	t      *testing.T
	tc     *tls.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	served chan error // Serve's result
}

// holdHandler accepts CONNECT requests and keeps each stream open until it
// ends or its context does.
func holdHandler(ctx context.Context, req *Request, s *Stream) {
	if s.Accept() == nil {
		<-ctx.Done()
	}
}

func newAttacker(t *testing.T, cfg Config, h Handler) *attacker {
	t.Helper()
	srvTLS, cliTLS := tlsPair(t)
	a, b := tcpPair(t)
	x := &attacker{t: t, served: make(chan error, 1)}
	go func() {
		tc := tls.Server(NewBufferedConn(b), srvTLS)
		if err := tc.Handshake(); err != nil {
			x.served <- err
			return
		}
		x.served <- Serve(context.Background(), tc, cfg, h)
	}()
	x.tc = tls.Client(a, cliTLS)
	if err := x.tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		x.tc.Close()
		select {
		case <-x.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the attacker left")
		}
	})
	x.fr = http2.NewFramer(x.tc, x.tc)
	x.fr.AllowIllegalWrites = true // an attacker writes what it likes
	x.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	x.enc = hpack.NewEncoder(&x.hbuf)
	io.WriteString(x.tc, http2.ClientPreface)
	if err := x.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return x
}

// block encodes a header block.
func (x *attacker) block(fields ...hpack.HeaderField) []byte {
	x.hbuf.Reset()
	for _, f := range fields {
		x.enc.WriteField(f)
	}
	return bytes.Clone(x.hbuf.Bytes())
}

func hf(name, value string) hpack.HeaderField { return hpack.HeaderField{Name: name, Value: value} }

// connect opens stream id with a CONNECT request, with extra fields.
func (x *attacker) connect(id uint32, end bool, extra ...hpack.HeaderField) {
	x.t.Helper()
	if err := x.tryConnect(id, end, extra...); err != nil {
		x.t.Fatal(err)
	}
}

func (x *attacker) tryConnect(id uint32, end bool, extra ...hpack.HeaderField) error {
	fields := append([]hpack.HeaderField{hf(":method", "CONNECT"), hf(":authority", "example.com:443")}, extra...)
	return x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: x.block(fields...), EndHeaders: true, EndStream: end})
}

// expect reads frames until match accepts one, and returns it; it fails
// the test when the connection ends or nothing matches within 5s.
func (x *attacker) expect(what string, match func(http2.Frame) bool) http2.Frame {
	x.t.Helper()
	x.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer x.tc.SetReadDeadline(time.Time{})
	for {
		f, err := x.fr.ReadFrame()
		if err != nil {
			x.t.Fatalf("waiting for %s: %v", what, err)
		}
		if match(f) {
			return f
		}
	}
}

func (x *attacker) expectRST(id uint32, code http2.ErrCode) {
	x.t.Helper()
	f := x.expect("RST_STREAM", func(f http2.Frame) bool {
		_, ok := f.(*http2.RSTStreamFrame)
		ga, isGA := f.(*http2.GoAwayFrame)
		if isGA {
			x.t.Fatalf("GOAWAY %v (%s) where RST_STREAM %v on stream %d was due", ga.ErrCode, ga.DebugData(), code, id)
		}
		return ok && f.Header().StreamID == id
	}).(*http2.RSTStreamFrame)
	if f.ErrCode != code {
		x.t.Fatalf("RST_STREAM %v on stream %d, want %v", f.ErrCode, id, code)
	}
}

func (x *attacker) expectGoAway(code http2.ErrCode) {
	x.t.Helper()
	f := x.expect("GOAWAY", func(f http2.Frame) bool {
		_, ok := f.(*http2.GoAwayFrame)
		return ok
	}).(*http2.GoAwayFrame)
	if f.ErrCode != code {
		x.t.Fatalf("GOAWAY %v (%s), want %v", f.ErrCode, f.DebugData(), code)
	}
}

// expectStatus waits for the response HEADERS on stream id.
func (x *attacker) expectStatus(id uint32, status string) {
	x.t.Helper()
	f := x.expect("response HEADERS", func(f http2.Frame) bool {
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == id {
			x.t.Fatalf("RST_STREAM %v on stream %d where a response was due", rst.ErrCode, id)
		}
		mh, ok := f.(*http2.MetaHeadersFrame)
		return ok && mh.StreamID == id
	}).(*http2.MetaHeadersFrame)
	if got := f.PseudoValue("status"); got != status {
		x.t.Fatalf("stream %d answered %s, want %s", id, got, status)
	}
}

// servedWith waits for Serve to return and checks it ended with a
// connection error of code.
func (x *attacker) servedWith(code http2.ErrCode) {
	x.t.Helper()
	select {
	case err := <-x.served:
		x.served <- err // for the cleanup
		if !errors.Is(err, http2.ConnectionError(code)) {
			x.t.Fatalf("Serve returned %v, want a connection error %v", err, code)
		}
	case <-time.After(10 * time.Second):
		x.t.Fatal("the server kept the connection")
	}
}

func TestHostileControlFramesQueuedPastTheCapCloseTheConnection(t *testing.T) {
	// A stream floods the connection with data the attacker never reads,
	// so the server's writer blocks; then DATA on closed streams, each
	// answered with RST_STREAM, queue control frames until the cap.
	x := newAttacker(t, Config{}, func(ctx context.Context, req *Request, s *Stream) {
		if req.Authority == "flood:1" {
			s.Accept()
			s.ReadFrom(zeroReader{})
			return
		}
		s.Reject(403, "http_request_denied", "no")
	})
	x.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: maxWindow})
	x.fr.WriteWindowUpdate(0, maxWindow-initialWindow)
	x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: x.block(hf(":method", "CONNECT"), hf(":authority", "flood:1")), EndHeaders: true})
	const closed = 100
	for i := range closed {
		x.connect(uint32(3+2*i), true)
	}
	time.Sleep(200 * time.Millisecond) // the refusals are answered and the flood fills the socket
	for i := 0; ; i++ {
		x.tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if err := x.fr.WriteData(uint32(3+2*(i%closed)), false, []byte{0}); err != nil {
			break
		}
		if i > 1_000_000 {
			t.Fatal("the server still reads after a million RST_STREAMs it could not send")
		}
	}
	x.servedWith(http2.ErrCodeEnhanceYourCalm)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestHostileRapidResetGetsGoAway(t *testing.T) {
	x := newAttacker(t, Config{MaxStreams: 100}, func(ctx context.Context, req *Request, s *Stream) {
		<-ctx.Done() // a dial that only the reset ends
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := uint32(1); id < 2*4*resetBurst; id += 2 {
			if x.tryConnect(id, false) != nil || x.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
				return
			}
		}
	}()
	x.expectGoAway(http2.ErrCodeEnhanceYourCalm)
	x.tc.Close()
	<-done
}

func TestHostileResetCancelsTheHandlersContextAndNothingFollowsIt(t *testing.T) {
	answered := make(chan error, 1)
	x := newAttacker(t, Config{}, func(ctx context.Context, req *Request, s *Stream) {
		<-ctx.Done()
		// The peer reset the stream: nothing may be sent on it now.
		answered <- s.Reject(502, "destination_unavailable", "too late")
	})
	x.connect(1, false)
	x.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	select {
	case err := <-answered:
		if err == nil {
			t.Fatal("a handler answered a stream its peer had reset")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RST_STREAM did not cancel the handler's context")
	}
	x.fr.WritePing(false, [8]byte{1})
	x.expect("the PING's answer", func(f http2.Frame) bool {
		if f.Header().StreamID == 1 {
			t.Fatalf("%v on stream 1 after its RST_STREAM", f.Header().Type)
		}
		p, ok := f.(*http2.PingFrame)
		return ok && p.IsAck()
	})
}

func TestHostileFloodsGetGoAway(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(x *attacker, i int) error
	}{
		{"PING", func(x *attacker, i int) error { return x.fr.WritePing(false, [8]byte{byte(i)}) }},
		{"SETTINGS", func(x *attacker, i int) error { return x.fr.WriteSettings() }},
		{"empty DATA", func(x *attacker, i int) error { return x.fr.WriteData(1, false, nil) }},
		{"PRIORITY", func(x *attacker, i int) error {
			return x.fr.WritePriority(3, http2.PriorityParam{StreamDep: 1, Weight: byte(i)})
		}},
		{"unknown frames", func(x *attacker, i int) error { return x.fr.WriteRawFrame(0xfe, 0, 0, nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newAttacker(t, Config{}, holdHandler)
			x.connect(1, false)
			go func() {
				for i := 0; i < 100*junkBurst; i++ {
					if tc.send(x, i) != nil {
						return
					}
				}
			}()
			x.expectGoAway(http2.ErrCodeEnhanceYourCalm)
		})
	}
}

func TestHostileSettingsWithTooManyParametersAreRefused(t *testing.T) {
	x := newAttacker(t, Config{}, holdHandler)
	var many []http2.Setting
	for i := range maxSettingsPerFrame + 1 {
		many = append(many, http2.Setting{ID: 0x100 + http2.SettingID(i), Val: 1})
	}
	x.fr.WriteSettings(many...)
	x.expectGoAway(http2.ErrCodeProtocol)
}

func TestHostileContinuation(t *testing.T) {
	t.Run("CONTINUATION without HEADERS is a connection error", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.fr.WriteContinuation(1, true, x.block(hf(":method", "CONNECT")))
		x.expectGoAway(http2.ErrCodeProtocol)
	})
	t.Run("a header block far over the limit in CONTINUATIONs ends the connection", func(t *testing.T) {
		x := newAttacker(t, Config{MaxHeaderBytes: 4 << 10}, holdHandler)
		big := x.block(hf("x-junk", strings.Repeat("a", 3<<10)))
		x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: x.block(hf(":method", "CONNECT"), hf(":authority", "a:1"))})
		for range 10 {
			if x.fr.WriteContinuation(1, false, big) != nil {
				break
			}
		}
		x.expectGoAway(http2.ErrCodeProtocol)
	})
	t.Run("a header list over the limit is answered 431", func(t *testing.T) {
		x := newAttacker(t, Config{MaxHeaderBytes: 4 << 10}, holdHandler)
		big := strings.Repeat("b", 2<<10)
		x.connect(1, false, hf("x-big1", big), hf("x-big2", big), hf("x-big3", big))
		x.expectStatus(1, "431")
	})
}

func TestHostileWindowUpdates(t *testing.T) {
	t.Run("connection window overflow", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.fr.WriteWindowUpdate(0, maxWindow)
		x.expectGoAway(http2.ErrCodeFlowControl)
	})
	t.Run("stream window overflow", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.connect(1, false)
		x.expectStatus(1, "200")
		x.fr.WriteWindowUpdate(1, maxWindow)
		x.expectRST(1, http2.ErrCodeFlowControl)
	})
	t.Run("a zero increment on a stream", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.connect(1, false)
		x.expectStatus(1, "200")
		x.fr.WriteWindowUpdate(1, 0)
		x.expectRST(1, http2.ErrCodeProtocol)
	})
	t.Run("a zero increment on the connection", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.fr.WriteWindowUpdate(0, 0)
		x.expectGoAway(http2.ErrCodeProtocol)
	})
}

func TestHostileDataBeyondTheConnectionWindow(t *testing.T) {
	// Restored once Serve has returned (cleanups run last first).
	w := connWindow
	t.Cleanup(func() { connWindow = w })
	connWindow = 128 << 10
	x := newAttacker(t, Config{StreamWindow: 1 << 20}, holdHandler)
	x.connect(1, false)
	x.expectStatus(1, "200")
	x.fr.WriteData(1, false, make([]byte, 200<<10))
	x.expectGoAway(http2.ErrCodeFlowControl)
}

func TestHostileStreamStates(t *testing.T) {
	t.Run("DATA on a half-closed (remote) stream is STREAM_CLOSED", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.connect(1, true)
		x.fr.WriteData(1, true, []byte("late"))
		x.expectRST(1, http2.ErrCodeStreamClosed)
	})
	t.Run("DATA after the client's RST_STREAM is STREAM_CLOSED", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.connect(1, false)
		x.fr.WriteRSTStream(1, http2.ErrCodeCancel)
		x.fr.WriteData(1, true, []byte("late"))
		x.expectRST(1, http2.ErrCodeStreamClosed)
	})
	t.Run("HEADERS on a closed stream is STREAM_CLOSED", func(t *testing.T) {
		x := newAttacker(t, Config{}, func(ctx context.Context, req *Request, s *Stream) {
			s.Reject(403, "http_request_denied", "no")
		})
		x.connect(1, true)
		x.expect("the end of stream 1", func(f http2.Frame) bool {
			d, ok := f.(*http2.DataFrame)
			return ok && d.StreamID == 1 && d.StreamEnded()
		})
		x.connect(1, true)
		x.expectGoAway(http2.ErrCodeStreamClosed)
	})
	t.Run("HEADERS on an open CONNECT stream is PROTOCOL_ERROR", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.connect(1, false)
		x.expectStatus(1, "200")
		x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: x.block(hf("x-trailer", "1")), EndHeaders: true, EndStream: true})
		x.expectRST(1, http2.ErrCodeProtocol)
	})
	t.Run("a stream that depends on itself is PROTOCOL_ERROR", func(t *testing.T) {
		x := newAttacker(t, Config{}, holdHandler)
		x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: x.block(hf(":method", "CONNECT"), hf(":authority", "a:1")),
			Priority:      http2.PriorityParam{StreamDep: 1, Weight: 16}})
		x.expectRST(1, http2.ErrCodeProtocol)
		x.fr.WritePriority(3, http2.PriorityParam{StreamDep: 3})
		x.expectRST(3, http2.ErrCodeProtocol)
	})
	t.Run("frames on idle streams are connection errors", func(t *testing.T) {
		for _, send := range []func(x *attacker){
			func(x *attacker) { x.fr.WriteData(5, false, []byte("x")) },
			func(x *attacker) { x.fr.WriteRSTStream(5, http2.ErrCodeCancel) },
			func(x *attacker) { x.fr.WriteWindowUpdate(5, 1) },
		} {
			x := newAttacker(t, Config{}, holdHandler)
			send(x)
			x.expectGoAway(http2.ErrCodeProtocol)
		}
	})
}

func TestHostileMalformedRequests(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []hpack.HeaderField
	}{
		{"connection-specific field: connection", []hpack.HeaderField{hf("connection", "keep-alive")}},
		{"connection-specific field: proxy-connection", []hpack.HeaderField{hf("proxy-connection", "keep-alive")}},
		{"connection-specific field: keep-alive", []hpack.HeaderField{hf("keep-alive", "300")}},
		{"connection-specific field: transfer-encoding", []hpack.HeaderField{hf("transfer-encoding", "chunked")}},
		{"connection-specific field: upgrade", []hpack.HeaderField{hf("upgrade", "websocket")}},
		{"te other than trailers", []hpack.HeaderField{hf("te", "gzip")}},
		{"CONNECT with :path", []hpack.HeaderField{hf(":path", "/")}},
		{"a field name in upper case", []hpack.HeaderField{hf("X-Upper", "1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newAttacker(t, Config{}, holdHandler)
			fields := append([]hpack.HeaderField{hf(":method", "CONNECT"), hf(":authority", "a:1")}, tc.fields...)
			// Pseudo fields first.
			var pseudo, regular []hpack.HeaderField
			for _, f := range fields {
				if strings.HasPrefix(f.Name, ":") {
					pseudo = append(pseudo, f)
				} else {
					regular = append(regular, f)
				}
			}
			x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: x.block(append(pseudo, regular...)...), EndHeaders: true})
			x.expectRST(1, http2.ErrCodeProtocol)
		})
	}
}

func TestHostileTooManyStreamsAreRefused(t *testing.T) {
	x := newAttacker(t, Config{MaxStreams: 2}, holdHandler)
	for _, id := range []uint32{1, 3} {
		x.connect(id, false)
		x.expectStatus(id, "200")
	}
	x.connect(5, false)
	x.expectRST(5, http2.ErrCodeRefusedStream)
	// A stream counts until its handler returns: a reset one frees its
	// slot only then.
	x.fr.WriteRSTStream(1, http2.ErrCodeCancel)
	deadline := time.Now().Add(5 * time.Second)
	for id := uint32(7); ; id += 2 {
		x.connect(id, false)
		got := x.expect("an answer", func(f http2.Frame) bool {
			return f.Header().StreamID == id && (f.Header().Type == http2.FrameHeaders || f.Header().Type == http2.FrameRSTStream)
		})
		if _, ok := got.(*http2.MetaHeadersFrame); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a stream freed by its reset never let another in")
		}
	}
}
