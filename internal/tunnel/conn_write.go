package tunnel

import (
	"fmt"
	"io"
	"runtime"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Writing is a role, not a goroutine: one goroutine at a time holds it and
// alone uses the fields of Conn "owned by the writer role". A stream
// goroutine that finds the connection quiet (no one writing, nothing
// queued) takes the role and writes its own frame; otherwise it queues the
// frame, and whoever holds the role, or writeLoop, writes everything queued
// in one batch, control frames first. run and readLoop never take the role:
// run queues its frames, so it never waits on the socket.

type frameKind uint8

const (
	framePreface frameKind = iota
	frameSettings
	frameSettingsAck
	framePing
	framePingAck
	frameWindowUpdate
	frameRST
	frameGoAway
	frameHeaders
	frameData
)

// outFrame is a frame waiting for the writer.
type outFrame struct {
	kind     frameKind
	stream   *Stream // HEADERS, DATA, RST
	streamID uint32  // WINDOW_UPDATE, RST without a stream, GOAWAY (last stream ID)
	settings []http2.Setting
	ping     [8]byte
	incr     uint32
	code     http2.ErrCode
	debug    string // GOAWAY
	fields   []hpack.HeaderField
	data     []byte
	room     []byte        // DATA: if set, 9 bytes of header room followed by data, in one buffer
	end      bool          // END_STREAM
	done     chan struct{} // DATA, GOAWAY: closed once written or dropped (nil: nobody waits)
}

func (f *outFrame) isCtrl() bool { return f.kind < frameHeaders }

// queueCtrl queues a control frame for the writer. Only run queues them
// (and the constructors, before run starts), so the count of queued
// control frames is run's to check.
func (c *Conn) queueCtrl(f *outFrame) {
	c.ctrlQueued.Add(1)
	c.wmu.Lock()
	c.ctrl = append(c.ctrl, f)
	c.wmu.Unlock()
	c.poke()
}

// enqueue queues f behind the frames already waiting. If mayWrite is set
// and no one is writing and nothing waits, it queues nothing and instead
// gives the caller the writer role: the caller must then call writeNow(f),
// after releasing any lock it holds. Only stream goroutines may write.
func (c *Conn) enqueue(f *outFrame, mayWrite bool) (own bool) {
	c.wmu.Lock()
	if mayWrite && !c.writing && len(c.ctrl) == 0 && len(c.data) == 0 {
		c.writing = true
		c.wmu.Unlock()
		return true
	}
	c.data = append(c.data, f)
	c.wmu.Unlock()
	c.poke()
	return false
}

// writeNow writes f and flushes, as the holder of the writer role, which it
// then gives back. It saves the hand-off to the write loop when the
// connection is otherwise quiet.
func (c *Conn) writeNow(f *outFrame) error {
	err := c.writeFrame(f)
	if err == nil {
		err = c.gather()
	}
	if err == nil {
		err = c.flush()
	}
	c.releaseWriter()
	if err != nil {
		c.writeFailed(err)
		return ErrLinkClosed
	}
	return nil
}

// writeFailed closes the socket after a failed write, so readLoop fails
// too and run ends the connection; the writer never touches run's state.
func (c *Conn) writeFailed(err error) {
	c.writeErr.CompareAndSwap(nil, &err)
	c.log.Debug("tunnel write failed", "remote", c.nc.RemoteAddr().String(), "err", err)
	rawConn(c.nc).Close()
}

// gatherBelow is the size under which a batch waits for frames that
// goroutines ready to run are about to queue, before it is written.
const gatherBelow = 64 << 10

// gather lets the goroutines that are ready to run go first when the batch
// is small, and then writes the frames they queued meanwhile, so that the
// frames of many busy streams leave in one write, not one write each. It
// costs nothing when no other goroutine is ready (a quiet link).
func (c *Conn) gather() error {
	if c.buffered() >= gatherBelow {
		return nil
	}
	runtime.Gosched()
	return c.writeQueued()
}

// buffered is how much the writer has buffered and not yet sent.
func (c *Conn) buffered() int {
	n := c.bw.Buffered()
	if c.batch != nil {
		n += c.batch.batched()
	}
	return n
}

// writeQueued writes the queued frames into the buffers, control frames
// first, until none is left, as the writer. On error the frames not
// written are released.
func (c *Conn) writeQueued() error {
	c.wmu.Lock()
	for len(c.ctrl) > 0 || len(c.data) > 0 {
		ctrl, data := c.ctrl, c.data
		c.ctrl, c.data = c.spareCtrl[:0], c.spareData[:0]
		c.wmu.Unlock()
		for i, f := range ctrl {
			if err := c.writeFrame(f); err != nil {
				c.release(ctrl[i+1:])
				c.release(data)
				return err
			}
		}
		for i, f := range data {
			if err := c.writeFrame(f); err != nil {
				c.release(data[i+1:])
				return err
			}
		}
		clear(ctrl)
		clear(data)
		c.wmu.Lock()
		c.spareCtrl, c.spareData = ctrl, data
	}
	c.wmu.Unlock()
	return nil
}

// releaseWriter gives up the writer role, waking the write loop if frames
// arrived meanwhile.
func (c *Conn) releaseWriter() {
	c.wmu.Lock()
	c.writing = false
	waiting := len(c.ctrl) > 0 || len(c.data) > 0
	c.wmu.Unlock()
	if waiting {
		c.poke()
	}
}

func (c *Conn) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued frames, control frames first, gathering
// everything queued at once into one flush.
func (c *Conn) writeLoop() {
	defer c.loops.Done()
	for {
		c.wmu.Lock()
		if c.writing || len(c.ctrl) == 0 && len(c.data) == 0 {
			// Nothing to do, or a stream goroutine is writing; it pokes
			// when it is done if frames are waiting.
			c.wmu.Unlock()
			select {
			case <-c.wake:
				continue
			case <-c.done:
				c.drain()
				return
			}
		}
		c.writing = true
		c.wmu.Unlock()
		err := c.writeQueued()
		if err == nil {
			err = c.gather()
		}
		if err == nil {
			err = c.flush()
		}
		c.releaseWriter()
		if err != nil {
			c.writeFailed(err)
			<-c.done
			c.drain()
			return
		}
	}
}

// flush writes everything buffered: the frames into TLS records, and the
// records, gathered beneath TLS, to the socket.
func (c *Conn) flush() error {
	if c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return err
		}
	}
	if c.batching {
		c.batching = false
		return c.batch.endBatch()
	}
	return nil
}

// drain releases the frames that will never be written, once the
// connection has ended. A writer still holding the role releases its own.
func (c *Conn) drain() {
	c.wmu.Lock()
	ctrl, data := c.ctrl, c.data
	c.ctrl, c.data = nil, nil
	c.wmu.Unlock()
	c.release(ctrl)
	c.release(data)
}

// release closes the done channels of frames that will not be written.
func (c *Conn) release(frames []*outFrame) {
	for _, f := range frames {
		if f.isCtrl() {
			c.ctrlQueued.Add(-1)
		}
		if f.done != nil {
			close(f.done)
		}
	}
}

// writeFrame writes one frame into the buffers, as the writer.
func (c *Conn) writeFrame(f *outFrame) error {
	if c.batch != nil && !c.batching {
		c.batch.startBatch()
		c.batching = true
	}
	if f.isCtrl() {
		c.ctrlQueued.Add(-1)
	}
	switch f.kind {
	case framePreface:
		_, err := io.WriteString(c.bw, http2.ClientPreface)
		return err
	case frameSettings:
		return c.wfr.WriteSettings(f.settings...)
	case frameSettingsAck:
		return c.wfr.WriteSettingsAck()
	case framePing:
		return c.wfr.WritePing(false, f.ping)
	case framePingAck:
		return c.wfr.WritePing(true, f.ping)
	case frameWindowUpdate:
		return c.wfr.WriteWindowUpdate(f.streamID, f.incr)
	case frameGoAway:
		var debug []byte
		if f.debug != "" {
			debug = []byte(f.debug)
		}
		err := c.wfr.WriteGoAway(f.streamID, f.code, debug)
		if err == nil {
			err = c.flush()
		}
		if f.done != nil {
			close(f.done)
		}
		return err
	case frameRST:
		s := f.stream
		if s == nil {
			return c.wfr.WriteRSTStream(f.streamID, f.code)
		}
		// A stream whose HEADERS were never written is idle for the peer,
		// and RST_STREAM on an idle stream is a connection error.
		if !s.opened.Load() {
			return nil
		}
		return c.wfr.WriteRSTStream(s.id, f.code)
	case frameHeaders:
		s := f.stream
		if s.reset.Load() {
			return nil
		}
		s.opened.Store(true)
		return c.writeHeaders(s.id, f.fields, f.end)
	case frameData:
		s := f.stream
		var err error
		if !s.reset.Load() {
			err = c.writeData(s.id, f, f.end)
		} else if len(f.data) > 0 {
			c.refund.Add(int64(len(f.data)))
		}
		if f.done != nil {
			close(f.done)
		}
		return err
	}
	return fmt.Errorf("unknown frame kind %d", f.kind)
}

func (c *Conn) writeHeaders(id uint32, fields []hpack.HeaderField, end bool) error {
	if ts := c.peerTableSize.Load(); ts < 4096 {
		c.henc.SetMaxDynamicTableSizeLimit(ts)
	}
	c.hbuf.Reset()
	for _, hf := range fields {
		if err := c.henc.WriteField(hf); err != nil {
			return err
		}
	}
	block := c.hbuf.Bytes()
	max := int(c.peerMaxFrame.Load())
	first := true
	for len(block) > 0 || first {
		n := min(len(block), max)
		frag := block[:n]
		block = block[n:]
		var err error
		if first {
			err = c.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: end, EndHeaders: len(block) == 0})
			first = false
		} else {
			err = c.wfr.WriteContinuation(id, len(block) == 0, frag)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeData writes one DATA frame without copying the payload into the
// framer. A frame whose payload has header room in front of it goes to TLS
// in one write, straight from its buffer; others go through the buffered
// writer, which gathers small frames into full TLS records.
func (c *Conn) writeData(id uint32, f *outFrame, end bool) error {
	p := f.data
	if f.room != nil && c.bw.Buffered() == 0 {
		hdr := f.room[:9]
		putFrameHeader(hdr, id, len(p), end)
		_, err := c.nc.Write(f.room[:9+len(p)])
		return err
	}
	var hdr [9]byte
	putFrameHeader(hdr[:], id, len(p), end)
	if _, err := c.bw.Write(hdr[:]); err != nil {
		return err
	}
	_, err := c.bw.Write(p)
	return err
}

func putFrameHeader(hdr []byte, id uint32, n int, end bool) {
	hdr[0], hdr[1], hdr[2] = byte(n>>16), byte(n>>8), byte(n)
	hdr[3] = byte(http2.FrameData)
	hdr[4] = 0
	if end {
		hdr[4] = byte(http2.FlagDataEndStream)
	}
	hdr[5], hdr[6], hdr[7], hdr[8] = byte(id>>24)&0x7f, byte(id>>16), byte(id>>8), byte(id)
}

// maxPayload is the largest DATA payload to send: the peer's limit, and
// ours, rounded so that header and payload fill whole 16 KiB TLS records.
func (c *Conn) maxPayload() int {
	m := min(int(c.peerMaxFrame.Load()), c.cfg.MaxFrameSize)
	if m >= minFrameSize {
		m = (m+9)/minFrameSize*minFrameSize - 9
	}
	return m
}
