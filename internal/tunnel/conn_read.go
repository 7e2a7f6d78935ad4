package tunnel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/net/http2"
)

// inKind says what readLoop hands run.
type inKind uint8

const (
	inData      inKind = iota // a piece of a DATA frame
	inFrame                   // a frame other than DATA
	inStreamErr               // a frame the framer refused as a stream error
	inEnd                     // readLoop ended: err says why
)

// inMsg is one message from readLoop to run. Frames come in order; a DATA
// frame comes as one or more pieces, each delivered at once, so a large
// frame never waits for its end.
type inMsg struct {
	kind inKind
	fh   http2.FrameHeader
	f    http2.Frame // inFrame; its payload never points into the framer's buffer
	err  error       // inStreamErr: the http2.StreamError; inEnd: why reading ended

	// inData: the piece's bytes in a pooled buffer (nil buf for none),
	// the flow-controlled length it accounts for, and whether it is the
	// first and the last piece of its frame.
	buf         *[]byte
	p           []byte
	flow        int
	first, last bool

	settings []http2.Setting // SETTINGS: copied out of the framer's buffer
	debug    []byte          // GOAWAY: debug data, copied
}

// readLoop reads frames and hands them to run. It owns the framer and the
// HPACK decoder, and knows nothing of the connection's state.
func (c *Conn) readLoop() {
	defer c.loops.Done()
	err := c.readFrames()
	c.toRun(inMsg{kind: inEnd, err: err})
}

// toRun hands m to run, waiting while run is behind. It reports false if
// the connection has ended.
func (c *Conn) toRun(m inMsg) bool {
	select {
	case c.in <- m:
		return true
	case <-c.done:
		if m.buf != nil {
			putBuf(m.buf, c.large)
		}
		return false
	}
}

var errStop = errors.New("connection ended")

func (c *Conn) readFrames() error {
	if c.isServer {
		c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var preface [len(http2.ClientPreface)]byte
		if _, err := io.ReadFull(c.nc, preface[:]); err != nil {
			return fmt.Errorf("read client preface: %w", err)
		}
		if string(preface[:]) != http2.ClientPreface {
			return connErrorf(http2.ErrCodeProtocol, "bad client preface: not HTTP/2")
		}
		c.nc.SetReadDeadline(time.Time{})
	}
	first := true
	for {
		fh, err := c.fr.ReadFrameHeader()
		if err != nil {
			if errors.Is(err, http2.ErrFrameTooLarge) {
				return connErrorf(http2.ErrCodeFrameSize, "frame of %d bytes exceeds %d", fh.Length, c.cfg.MaxFrameSize)
			}
			return fmt.Errorf("read: %w", err)
		}
		if first && fh.Type != http2.FrameSettings {
			return connErrorf(http2.ErrCodeProtocol, "first frame is %v, not SETTINGS", fh.Type)
		}
		first = false
		if fh.Type == http2.FrameData {
			if err := c.readData(fh); err != nil {
				return err
			}
			continue
		}
		f, err := c.fr.ReadFrameForHeader(fh)
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				if !c.toRun(inMsg{kind: inStreamErr, fh: fh, err: se}) {
					return errStop
				}
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return connErrorf(http2.ErrCode(ce), "bad %v frame: %v", fh.Type, c.fr.ErrorDetail())
			}
			return fmt.Errorf("read: %w", err)
		}
		m := inMsg{kind: inFrame, fh: fh, f: f}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.NumSettings() > maxSettingsPerFrame {
				return connErrorf(http2.ErrCodeProtocol, "SETTINGS with %d parameters", f.NumSettings())
			}
			f.ForeachSetting(func(s http2.Setting) error {
				m.settings = append(m.settings, s)
				return nil
			})
			m.f = nil
		case *http2.GoAwayFrame:
			m.debug = bytes.Clone(f.DebugData())
			m.f = &http2.GoAwayFrame{FrameHeader: f.FrameHeader, LastStreamID: f.LastStreamID, ErrCode: f.ErrCode}
		case *http2.UnknownFrame, *http2.PriorityUpdateFrame:
			m.f = nil
		}
		if !c.toRun(m) {
			return errStop
		}
	}
}

// readData reads a DATA frame's payload straight into buffers the stream
// delivers from, and hands them to run in pieces as they arrive, each piece
// what could be read without waiting on the socket: the receiver forwards
// as fast as the link brings data, and in as few writes as the link's reads
// allow.
func (c *Conn) readData(fh http2.FrameHeader) error {
	if fh.StreamID == 0 {
		return connErrorf(http2.ErrCodeProtocol, "DATA on stream 0")
	}
	r := c.nc
	n := int(fh.Length)
	pad := 0
	if fh.Flags.Has(http2.FlagDataPadded) {
		if n == 0 {
			return connErrorf(http2.ErrCodeFrameSize, "padded DATA without a pad length")
		}
		var b [1]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		pad = int(b[0])
		n--
		if pad > n {
			return connErrorf(http2.ErrCodeProtocol, "DATA padding exceeds payload")
		}
		n -= pad
	}
	// The pad length byte and the padding count against flow control
	// too; they go with the last piece.
	extra := int(fh.Length) - n
	first := true
	for left := n; left > 0; {
		buf := getBuf(c.pieceSize(left), c.large)
		got, err := c.readPiece((*buf)[:min(left, cap(*buf))])
		if err != nil {
			putBuf(buf, c.large)
			return fmt.Errorf("read: %w", err)
		}
		left -= got
		flow := got
		last := left == 0 && pad == 0
		if last {
			flow += extra
		}
		if !c.toRun(inMsg{kind: inData, fh: fh, buf: buf, p: (*buf)[:got], flow: flow, first: first, last: last}) {
			return errStop
		}
		first = false
	}
	if pad > 0 {
		if _, err := io.CopyN(io.Discard, r, int64(pad)); err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
	if n == 0 || pad > 0 {
		if !c.toRun(inMsg{kind: inData, fh: fh, flow: extra, first: first, last: true}) {
			return errStop
		}
	}
	return nil
}

// pieceSize is how large a buffer to read the next piece of a frame into,
// with left bytes of its payload to come: about what the link has already
// brought in, so a piece rarely needs a second buffer and a trickle never
// holds a large one.
func (c *Conn) pieceSize(left int) int {
	if c.batch == nil {
		return min(left, c.large.size)
	}
	// TLS may hold up to a record decrypted and another partly read.
	return min(left, c.large.size, c.batch.Buffered()+32<<10)
}

// readPiece reads into p until it is full or the next read would have to
// wait on the socket (when the connection is a bufferedConn), and returns
// how much it read.
func (c *Conn) readPiece(p []byte) (int, error) {
	if c.batch == nil {
		return io.ReadFull(c.nc, p)
	}
	got := 0
	for got < len(p) {
		k, err := c.nc.Read(p[got:])
		got += k
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return got, err
		}
		if c.batch.Buffered() == 0 {
			break
		}
	}
	return got, nil
}

// handleIn is run's side of readLoop: one frame, or a piece of one.
func (c *Conn) handleIn(m *inMsg) error {
	switch m.kind {
	case inData:
		return c.handleData(m)
	case inStreamErr:
		return c.handleStreamError(m)
	case inEnd:
		if werr := c.writeErr.Load(); werr != nil {
			return fmt.Errorf("write: %w", *werr)
		}
		if m.err == nil || errors.Is(m.err, errStop) {
			return errClosedLocally
		}
		return m.err
	}
	switch m.fh.Type {
	case http2.FrameSettings:
		return c.handleSettings(m)
	case http2.FrameHeaders:
		mh := m.f.(*http2.MetaHeadersFrame)
		if c.isServer {
			return c.handleRequest(mh)
		}
		return c.handleResponse(mh)
	case http2.FrameWindowUpdate:
		return c.handleWindowUpdate(m.f.(*http2.WindowUpdateFrame))
	case http2.FramePing:
		f := m.f.(*http2.PingFrame)
		if f.IsAck() {
			c.pingAck(f.Data)
			return nil
		}
		if !c.own.junk.take(time.Now()) {
			return connErrorf(http2.ErrCodeEnhanceYourCalm, "PING flood")
		}
		c.queueCtrl(&outFrame{kind: framePingAck, ping: f.Data})
		return nil
	case http2.FrameRSTStream:
		f := m.f.(*http2.RSTStreamFrame)
		return c.handlePeerReset(f.StreamID, f.ErrCode)
	case http2.FrameGoAway:
		c.handleGoAway(m.f.(*http2.GoAwayFrame), m.debug)
		return nil
	case http2.FramePushPromise:
		return connErrorf(http2.ErrCodeProtocol, "PUSH_PROMISE with push disabled")
	case http2.FrameContinuation:
		return connErrorf(http2.ErrCodeProtocol, "unexpected CONTINUATION")
	case http2.FramePriority:
		if f := m.f.(*http2.PriorityFrame); f.StreamDep == f.StreamID {
			// RFC 9113 §5.3.1: a stream error of type PROTOCOL_ERROR.
			c.resetByID(f.StreamID, http2.ErrCodeProtocol, "stream depends on itself")
			return nil
		}
	}
	// PRIORITY, PRIORITY_UPDATE and frames of unknown types are ignored,
	// within the junk budget.
	if !c.own.junk.take(time.Now()) {
		return connErrorf(http2.ErrCodeEnhanceYourCalm, "flood of %v frames", m.fh.Type)
	}
	return nil
}

// handleStreamError answers a frame the framer refused as a stream error
// (malformed header fields, a zero window increment).
func (c *Conn) handleStreamError(m *inMsg) error {
	var se http2.StreamError
	errors.As(m.err, &se)
	if m.fh.Type == http2.FrameHeaders && c.isServer && se.StreamID%2 == 1 && se.StreamID > c.own.maxPeerID {
		// The request opened the stream, malformed: it is refused.
		c.own.maxPeerID = se.StreamID
	}
	c.resetByID(se.StreamID, se.Code, fmt.Sprintf("bad %v frame: %v", m.fh.Type, se.Cause))
	return nil
}
