package tunnel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawExit is the server end of a real TLS link, spoken frame by frame by
// the test, with the client end a Conn over NewBufferedConn as the agent
// runs it.
type rawExit struct {
	tc     *tls.Conn
	fr     *http2.Framer
	client *Conn
}

func newRawExit(t *testing.T, cfg Config) *rawExit {
	t.Helper()
	srvTLS, cliTLS := tlsPair(t)
	raw, sraw := tcpPair(t)
	x := &rawExit{tc: tls.Server(sraw, srvTLS)}
	t.Cleanup(func() { x.tc.Close() })
	hs := make(chan error, 1)
	go func() { hs <- x.tc.Handshake() }()
	ctc := tls.Client(NewBufferedConn(raw), cliTLS)
	if err := ctc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-hs; err != nil {
		t.Fatal(err)
	}
	var err error
	if x.client, err = NewClientConn(ctc, cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.client.Close() })
	var preface [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(x.tc, preface[:]); err != nil {
		t.Fatal(err)
	}
	x.fr = http2.NewFramer(x.tc, x.tc)
	x.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := x.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return x
}

// accept reads frames until a request arrives, answers it 200 and returns
// its stream ID.
func (x *rawExit) accept(t *testing.T) uint32 {
	t.Helper()
	for {
		f, err := x.fr.ReadFrame()
		if err != nil {
			t.Errorf("raw exit: %v", err)
			return 0
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			x.fr.WriteSettingsAck()
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok {
			var block bytes.Buffer
			hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			x.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: mh.StreamID, BlockFragment: block.Bytes(), EndHeaders: true})
			return mh.StreamID
		}
	}
}

// dial opens a stream through the raw exit.
func (x *rawExit) dial(t *testing.T) *Stream {
	t.Helper()
	ids := make(chan uint32, 1)
	go func() { ids <- x.accept(t) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := x.client.Dial(ctx, "example.com:443", nil)
	if err != nil {
		t.Fatal(err)
	}
	if id := <-ids; id != s.ID() {
		t.Fatalf("raw exit saw stream %d, client opened %d", id, s.ID())
	}
	return s
}

// dataHeader is a DATA frame header announcing n bytes of payload.
func dataHeader(id uint32, n int) []byte {
	h := make([]byte, frameHeaderLen)
	putFrameHeader(h, id, n, false)
	return h
}

func TestLargeFrameIsDeliveredAsItArrives(t *testing.T) {
	x := newRawExit(t, Config{})
	s := x.dial(t)
	defer s.Close()

	// One 512 KiB frame, of which only the first 100 KiB is sent: the
	// receiver must pass those on now, not wait for the frame's end.
	const size, first = 512 << 10, 100 << 10
	payload := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	if _, err := x.tc.Write(append(dataHeader(s.ID(), size), payload[:first]...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(s, got[:first]); err != nil {
		t.Fatalf("the first %d bytes of a frame still arriving were not delivered: %v", first, err)
	}
	if _, err := x.tc.Write(payload[first:]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, got[first:]); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("payload delivered in pieces differs from what was sent")
	}
}

func TestFrameOverTheWindowIsRefusedWhole(t *testing.T) {
	// A stream window of 64 KiB and a peer that sends 128 KiB at once:
	// none of it may reach the reader.
	x := newRawExit(t, Config{StreamWindow: initialWindow})
	s := x.dial(t)
	defer s.Close()
	if _, err := x.tc.Write(append(dataHeader(s.ID(), 128<<10), make([]byte, 128<<10)...)); err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := s.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, ErrStreamReset) {
		t.Fatalf("Read = %d, %v; want 0 bytes and a stream reset", n, err)
	}
	// The peer is told why.
	for {
		f, err := x.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.StreamID != s.ID() || rst.ErrCode != http2.ErrCodeFlowControl {
				t.Fatalf("got RST_STREAM %d %v, want %d FLOW_CONTROL_ERROR", rst.StreamID, rst.ErrCode, s.ID())
			}
			return
		}
	}
}

func TestPaddedFramesDeliverOnlyTheirData(t *testing.T) {
	x := newRawExit(t, Config{StreamWindow: initialWindow})
	s := x.dial(t)
	defer s.Close()
	// Padded frames (41,039 bytes of the 65,535-byte window, padding
	// included), one with the padded flag and no padding, the last
	// carrying END_STREAM.
	var want []byte
	send := func(data []byte, pad int, end bool) {
		t.Helper()
		want = append(want, data...)
		if err := x.fr.WriteDataPadded(s.ID(), end, data, make([]byte, pad)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		send(bytes.Repeat([]byte{byte('a' + i)}, 10000), 255, false)
	}
	send([]byte("no padding"), 0, false)
	send([]byte("end"), 0, true)
	s.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read: %v (after %d bytes)", err, len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d: padding leaked into or corrupted the data", len(got), len(want))
	}
}

// countingReader is an endless source that counts what was read from it.
type countingReader struct{ n atomic.Int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n.Add(int64(len(p)))
	return len(p), nil
}

func TestReadFromTakesNoMoreThanItMaySend(t *testing.T) {
	// The server's stream window is 64 KiB and nothing reads there: the
	// client's ReadFrom must leave the rest in its source, holding no
	// buffer of data it cannot send.
	const window = initialWindow
	p := newPair(t, Config{}, Config{StreamWindow: window}, nil)
	cs, ss := p.dial(t)
	defer ss.Close()
	src := &countingReader{}
	done := make(chan error, 1)
	go func() {
		_, err := cs.ReadFrom(src)
		done <- err
	}()
	waitFor(t, "the window to fill", func() bool { return ss.BytesReceived() >= window })
	time.Sleep(100 * time.Millisecond) // room for a read beyond the window, if there were one
	if n := src.n.Load(); n > window {
		t.Fatalf("ReadFrom read %d bytes from its source with a %d-byte window", n, window)
	}
	cs.Close()
	if err := <-done; err == nil {
		t.Fatal("ReadFrom returned nil after Close")
	}
}

func TestFramesSplitAnyWayArriveIntact(t *testing.T) {
	// 12 MiB in frames of random sizes up to the 1 MiB maximum, some
	// padded, written to the socket in random pieces with pauses: whatever
	// the pieces the receiver delivers, the bytes must arrive in order.
	const total = 12 << 20
	x := newRawExit(t, Config{StreamWindow: 16 << 20})
	s := x.dial(t)
	defer s.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, total)
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	var wire []byte
	for sent := 0; sent < total; {
		n := min(total-sent, 1+rng.IntN(1<<20-1))
		data := want[sent : sent+n]
		sent += n
		end := sent == total
		if rng.IntN(4) == 0 && n < 1<<20-256 {
			pad := rng.IntN(256)
			h := dataHeader(s.ID(), 1+n+pad)
			h[4] |= byte(http2.FlagDataPadded)
			if end {
				h[4] |= byte(http2.FlagDataEndStream)
			}
			wire = append(append(append(append(wire, h...), byte(pad)), data...), make([]byte, pad)...)
			continue
		}
		h := dataHeader(s.ID(), n)
		if end {
			h[4] |= byte(http2.FlagDataEndStream)
		}
		wire = append(append(wire, h...), data...)
	}
	go func() {
		for len(wire) > 0 {
			k := min(len(wire), 1+rng.IntN(300<<10))
			if _, err := x.tc.Write(wire[:k]); err != nil {
				return
			}
			wire = wire[k:]
			if rng.IntN(8) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	s.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatalf("read %d of %d bytes: %v", len(got), total, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d, or other bytes", len(got), total)
	}
}

func TestClosingASourceDoesNotWaitForAStuckLink(t *testing.T) {
	// The raw exit grants ample credit and then reads nothing: the link's
	// socket fills and its writer blocks. A stream whose frames queue
	// behind that writer, and whose source then goes quiet, must still let
	// its source be closed at once: Close on a Go socket waits for a read
	// in progress, so ReadFrom may never wait for its frames inside one.
	x := newRawExit(t, Config{})
	x.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	x.fr.WriteWindowUpdate(0, 1<<30)
	hog := x.dial(t)
	s := x.dial(t)
	go hog.Write(make([]byte, 256<<20)) // blocks once the link's socket is full
	waitFor(t, "the link's writer to block", func() bool { return hog.BytesSent() > 1<<20 })
	time.Sleep(100 * time.Millisecond)

	src, feeder := tcpPair(t)
	if _, err := feeder.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.ReadFrom(src)
		done <- err
	}()
	waitFor(t, "the stream's frame to queue", func() bool { return s.BytesSent() >= 1000 })
	time.Sleep(100 * time.Millisecond) // ReadFrom finds the source empty

	closed := make(chan struct{})
	go func() {
		src.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
		t.Fatal("closing the source waited for the stuck link")
	}
	x.tc.Close() // the peer goes, so the blocked writer fails at once
	<-done
}
