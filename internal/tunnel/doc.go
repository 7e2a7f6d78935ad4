// Package tunnel carries many TCP connections over one HTTP/2 connection.
//
// Each carried connection is one standard HTTP/2 CONNECT stream (RFC 9113
// §8.5): the client sends HEADERS with :method CONNECT and :authority
// host:port, the server answers :status 200 and the stream becomes a byte
// pipe in both directions. END_STREAM on either side is a half-close, so a
// carried connection behaves like TCP with CloseWrite. Because the framing is
// the standard one, any HTTP/2 client can use a tunnel server as a proxy.
//
// The package implements the HTTP/2 connection itself, on top of the frame
// codec and HPACK of golang.org/x/net/http2, because a tunnel needs what a
// general HTTP library does not give: true half-close in both directions,
// no buffer held by an idle stream, DATA payloads read straight into the
// buffers they are delivered from, and few system calls and thread
// hand-offs per frame.
//
// # Flow control
//
// Each stream has its own receive window (Config.StreamWindow), so a stalled
// reader on one stream never slows another. Connection-level credit is given
// back as soon as data is received into a stream's buffer: the stream windows
// and the stream limit bound memory, and one paused reader can never use up
// the connection's window.
//
// # Who owns what
//
// One goroutine per connection, run, owns the connection's state: the
// stream table and each stream's RFC 9113 §5.1 state, the flow-control
// windows of both sides, the settings, pings, GOAWAY, and the limits that
// keep a hostile peer in check. Nothing else reads or writes that state.
// The other goroutines talk to run through two bounded queues, and run
// never waits for any of them:
//
//   - readLoop reads frames and hands them to run, a DATA frame in pieces
//     as they arrive, read straight into the buffers they are delivered
//     from. It owns the framer and the HPACK decoder.
//   - Stream goroutines (and Dial, Ping, Close, Shutdown) send requests:
//     open a stream, give me send credit, I consumed this much, I sent
//     END_STREAM, reset this stream, my handler returned.
//
// run delivers data into a stream's receive buffer under the stream's own
// lock (the reader consumes under it), queues the frames it must send for
// the writer, and wakes goroutines with non-blocking sends. A stream spends
// send credit from a budget run grants out of the peer's windows (an atomic
// counter), so a busy stream asks run for credit a few times per megabyte,
// not per frame.
//
// # Writing
//
// Writing is a role held by one goroutine at a time. A stream goroutine
// that finds the connection quiet (no one writing, nothing queued) writes
// its own frame; otherwise it queues the frame, and the write loop writes
// everything queued in one batch. run and readLoop never take the role: run
// queues its control frames, and its only writes are non-blocking writes of
// arriving data to an idle relay's TCP destination (Stream.WriteTo), so it
// never waits on a write. Before it writes a small batch, the writer yields
// once to the goroutines ready to run, and adds the frames they queue
// meanwhile to the same write.
//
// # Sizes
//
// DATA frames go up to a megabyte. Senders size their read buffers from how
// full the last read came and read no more than they may send; receivers
// read a frame in pieces, each what has arrived, and deliver each piece at
// once, so a large frame never delays data. Buffers come from pools and
// are held only while they hold data.
//
// # A hostile peer
//
// A server is hardened as golang.org/x/net/http2's is: control frames
// queued and not yet written are capped (a peer that provokes them and does
// not read is closed with ENHANCE_YOUR_CALM); PING, SETTINGS, PRIORITY,
// empty DATA and unknown frames share a rate budget; a stream counts
// against MaxStreams until its handler has returned, and each handler has
// its own context, cancelled when the peer resets the stream, so a rapid
// reset stops the dial at once and a peer that keeps resetting or asking
// for refused streams is sent GOAWAY; frames on closed streams get
// STREAM_CLOSED; malformed requests, connection-specific header fields and
// HEADERS on a CONNECT stream get PROTOCOL_ERROR; both windows are
// enforced both ways.
//
// # Goroutines
//
// A connection runs run, readLoop and writeLoop; Close (or the death of the
// connection) ends them and waits for them. Streams start no goroutines.
// Server handlers run one goroutine per stream, which Serve waits for
// before it returns; when a stream fails, a ReadFrom waiting on its source
// is woken, so a handler relaying a silent target returns at once.
package tunnel
